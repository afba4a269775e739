package manifests

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	kustomizev1 "github.com/fluxcd/kustomize-controller/api/v1"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"
	kubeflowv1 "github.com/kubeflow/training-operator/pkg/apis/kubeflow.org/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/aerie-ml/aerie/internal/runspec"
)

const repoRoot = "../.."

// trainingOperator is the Go module whose API types aerie run render uses and
// whose manifests Flux fetches from the upstream Git tag of the same version.
const trainingOperator = "github.com/kubeflow/training-operator"

// operatorModule returns the directory and version of the training-operator
// module in the module cache. The module zip of a version holds the files
// of the upstream Git tag of that name (the proxy builds it from the tag and
// go.sum pins its hash), so its manifests/ is what Flux fetches from
// github.com/kubeflow/training-operator at that tag.
func operatorModule(t testing.TB) (dir, version string) {
	t.Helper()
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}} {{.Version}}", trainingOperator)
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -m %s: %v", trainingOperator, err)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 || f[0] == "" {
		t.Fatalf("go list -m %s = %q; run go mod download", trainingOperator, out)
	}
	return f[0], f[1]
}

// kueueModule returns the directory and version of the Kueue module the
// e2e tier's recipe builds (tools/e2e/recipes/kueue): as for the operator,
// its config/ is what Flux fetches from the upstream tag.
func kueueModule(t testing.TB) (dir, version string) {
	t.Helper()
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}} {{.Version}}", "sigs.k8s.io/kueue")
	cmd.Dir = filepath.Join(repoRoot, "tools", "e2e", "recipes", "kueue")
	out, err := cmd.Output()
	f := strings.Fields(string(out))
	if err != nil || len(f) != 2 || f[0] == "" {
		t.Fatalf("go list -m sigs.k8s.io/kueue in tools/e2e/recipes/kueue = %q, %v; run go mod download there", out, err)
	}
	return f[0], f[1]
}

// newValidator knows the built-in and Flux kinds and the training
// operator's and Kueue's CRDs. Compiling the CRD schemas takes seconds, so tests share
// one.
func newValidator(t testing.TB) *Validator {
	t.Helper()
	validatorOnce.Do(func() { sharedValidator = loadValidator(t) })
	if sharedValidator == nil {
		t.Fatal("validator setup failed")
	}
	return sharedValidator
}

var (
	validatorOnce   sync.Once
	sharedValidator *Validator
)

func loadValidator(t testing.TB) *Validator {
	v, err := NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := operatorModule(t)
	crds, err := filepath.Glob(filepath.Join(dir, "manifests", "base", "crds", "kubeflow.org_*.yaml"))
	if err != nil || len(crds) == 0 {
		t.Fatalf("no CRDs under %s/manifests/base/crds: %v", dir, err)
	}
	kdir, _ := kueueModule(t)
	kcrds, err := filepath.Glob(filepath.Join(kdir, "config", "components", "crd", "bases", "kueue.x-k8s.io_*.yaml"))
	if err != nil || len(kcrds) == 0 {
		t.Fatalf("no CRDs under %s/config/components/crd/bases: %v", kdir, err)
	}
	crds = append(crds, kcrds...)
	for _, f := range crds {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.AddCRD(data); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	return v
}

// TestKustomizationsBuild builds every kustomization under clusters/ and
// apps/ with krusty and validates every object it produces.
func TestKustomizationsBuild(t *testing.T) {
	v := newValidator(t)
	var dirs []string
	for _, top := range []string{"clusters", "apps"} {
		err := filepath.WalkDir(filepath.Join(repoRoot, top), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && d.Name() == "kustomization.yaml" {
				dirs = append(dirs, filepath.Dir(path))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(dirs) < 5 {
		t.Fatalf("found only %d kustomizations: %q", len(dirs), dirs)
	}
	for _, dir := range dirs {
		name, _ := filepath.Rel(repoRoot, dir)
		t.Run(name, func(t *testing.T) {
			objs, err := Kustomize(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range objs {
				if err := v.Validate(o.YAML); err != nil {
					t.Errorf("%s: %v", name, err)
				}
			}
		})
	}
}

// fluxFor renders clusters/<env> as the cluster's Flux would after
// bootstrap: the repository's clusters/ and apps/ as the flux-system source,
// the module cache's training-operator manifests as the upstream source.
func fluxFor(t *testing.T, env string, configVars map[string]string) []Object {
	t.Helper()
	repo := t.TempDir()
	for _, top := range []string{"clusters", "apps"} {
		if err := os.CopyFS(filepath.Join(repo, top), os.DirFS(filepath.Join(repoRoot, top))); err != nil {
			t.Fatal(err)
		}
	}
	opDir, _ := operatorModule(t)
	kueueDir, _ := kueueModule(t)
	f := &Flux{
		Sources: map[string]string{
			"flux-system/flux-system":       repo,
			"flux-system/training-operator": opDir,
			"flux-system/kueue":             kueueDir,
		},
		Vars: map[string]map[string]string{
			// What infra/terraform/modules/flux writes.
			"Secret/flux-system/cluster-secrets": {"rendezvous_token": "test-token"},
		},
	}
	if configVars != nil {
		f.Vars["ConfigMap/flux-system/cluster-vars"] = configVars
	}
	root := &kustomizev1.Kustomization{
		TypeMeta:   metav1.TypeMeta{APIVersion: kustomizev1.GroupVersion.String(), Kind: kustomizev1.KustomizationKind},
		ObjectMeta: metav1.ObjectMeta{Name: "flux-system", Namespace: "flux-system"},
		Spec: kustomizev1.KustomizationSpec{
			Path:      "./clusters/" + env,
			Prune:     true,
			SourceRef: kustomizev1.CrossNamespaceSourceReference{Kind: sourcev1.GitRepositoryKind, Name: "flux-system"},
		},
	}
	objs, err := f.Tree(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func find(objs []Object, kind, namespace, name string) (Object, bool) {
	for _, o := range objs {
		if o.Kind == kind && o.Namespace == namespace && o.Name == name {
			return o, true
		}
	}
	return Object{}, false
}

func mustFind(t *testing.T, objs []Object, kind, namespace, name string) Object {
	t.Helper()
	o, ok := find(objs, kind, namespace, name)
	if !ok {
		t.Fatalf("%s %s/%s: not applied by any Kustomization", kind, namespace, name)
	}
	return o
}

// TestClusters renders each cluster's whole Flux tree and checks that every
// object validates and that the platform contract holds.
func TestClusters(t *testing.T) {
	_, opVersion := operatorModule(t)
	for _, env := range []string{"dev", "prod"} {
		t.Run(env, func(t *testing.T) {
			objs := fluxFor(t, env, nil)
			v := newValidator(t)
			applied := map[string]string{}
			for _, o := range objs {
				if err := v.Validate(o.YAML); err != nil {
					t.Errorf("applied by %s: %v", o.AppliedBy, err)
				}
				if prev, ok := applied[o.ID()]; ok && prev != o.AppliedBy {
					t.Errorf("%s: applied by both %s and %s; they would fight over it", o.ID(), prev, o.AppliedBy)
				}
				applied[o.ID()] = o.AppliedBy
			}

			// The upstream operator at the version aerie run render's API types come from.
			var repo sourcev1.GitRepository
			if err := mustFind(t, objs, "GitRepository", "flux-system", "training-operator").Decode(&repo); err != nil {
				t.Fatal(err)
			}
			if got, want := repo.Spec.URL, "https://github.com/kubeflow/training-operator"; got != want {
				t.Errorf("GitRepository training-operator url = %q, want %q", got, want)
			}
			if repo.Spec.Reference == nil || repo.Spec.Reference.Tag != opVersion {
				t.Errorf("GitRepository training-operator ref = %+v, want tag %s (the go.mod version of %s)", repo.Spec.Reference, opVersion, trainingOperator)
			}

			var infra, jobs kustomizev1.Kustomization
			if err := mustFind(t, objs, "Kustomization", "flux-system", "infrastructure").Decode(&infra); err != nil {
				t.Fatal(err)
			}
			if err := mustFind(t, objs, "Kustomization", "flux-system", "jobs").Decode(&jobs); err != nil {
				t.Fatal(err)
			}
			if jobs.Spec.Path != "./apps/jobs" {
				t.Errorf("jobs path = %q, want ./apps/jobs", jobs.Spec.Path)
			}
			for _, dep := range []string{"infrastructure", "teams"} {
				if !slices.ContainsFunc(jobs.Spec.DependsOn, func(d kustomizev1.DependencyReference) bool { return d.Name == dep }) {
					t.Errorf("jobs dependsOn = %+v, want %s", jobs.Spec.DependsOn, dep)
				}
			}
			checkKueue(t, objs)
			checkTeamIdentities(t, env, objs)
			for _, k := range []*kustomizev1.Kustomization{&infra, &jobs} {
				if !k.Spec.Prune || !k.Spec.Wait || k.Spec.Timeout == nil {
					t.Errorf("Kustomization %s: prune=%v wait=%v timeout=%v, want prune, wait and a timeout", k.Name, k.Spec.Prune, k.Spec.Wait, k.Spec.Timeout)
				}
			}

			// What the infrastructure and operator Kustomizations apply.
			for _, want := range []struct{ kind, ns, name, by string }{
				{"CustomResourceDefinition", "", "pytorchjobs.kubeflow.org", "flux-system/training-operator"},
				{"Namespace", "", "kubeflow", "flux-system/infrastructure"},
				{"RoleBinding", "kubeflow", "training-operator", "flux-system/infrastructure"},
				{"ClusterRole", "", "training-operator", "flux-system/training-operator"},
				{"ClusterRoleBinding", "", "training-operator-watch", "flux-system/infrastructure"},
			} {
				if o := mustFind(t, objs, want.kind, want.ns, want.name); o.AppliedBy != want.by {
					t.Errorf("%s applied by %s, want %s", o.ID(), o.AppliedBy, want.by)
				}
			}
			// The operator's ClusterRole is bound per namespace, not cluster-wide.
			if o, ok := find(objs, "ClusterRoleBinding", "", "training-operator"); ok {
				t.Errorf("ClusterRoleBinding training-operator applied by %s: the operator would act in every namespace", o.AppliedBy)
			}
			// Its cluster-wide role only reads.
			var watch rbacv1.ClusterRole
			if err := mustFind(t, objs, "ClusterRole", "", "training-operator-watch").Decode(&watch); err != nil {
				t.Fatal(err)
			}
			for _, r := range watch.Rules {
				if v := slices.DeleteFunc(slices.Clone(r.Verbs), func(v string) bool { return v == "get" || v == "list" || v == "watch" }); len(v) > 0 {
					t.Errorf("ClusterRole training-operator-watch may %q %q cluster-wide, want only get, list and watch", v, r.Resources)
				}
			}
			checkTeamNamespaces(t, objs)
			var dep appsv1.Deployment
			if err := mustFind(t, objs, "Deployment", "kubeflow", "training-operator").Decode(&dep); err != nil {
				t.Fatal(err)
			}
			c := dep.Spec.Template.Spec.Containers[0]
			if slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--namespace") }) {
				t.Errorf("training-operator args = %q, want no --namespace: it watches every team's namespace", c.Args)
			}
			if c.Resources.Requests.Cpu().IsZero() || !c.Resources.Requests.Cpu().Equal(*c.Resources.Limits.Cpu()) {
				t.Errorf("training-operator resources = %+v, want requests = limits (Autopilot)", c.Resources)
			}

			// Every rendered run's PyTorchJob is applied by the jobs Kustomization.
			if _, err := os.Stat(filepath.Join(repoRoot, "apps", "jobs", "kustomization.yaml")); err == nil {
				var n int
				for _, o := range objs {
					if o.Kind == "PyTorchJob" {
						n++
						var job metav1.PartialObjectMetadata
						if err := yaml.Unmarshal(o.YAML, &job); err != nil {
							t.Fatal(err)
						}
						if want := runspec.TeamNamespace(job.Labels["aerie.dev/team"]); o.AppliedBy != "flux-system/jobs" || o.Namespace != want {
							t.Errorf("%s applied by %s, want flux-system/jobs in its team's namespace %s", o.ID(), o.AppliedBy, want)
						}
					}
				}
				if n == 0 {
					t.Error("apps/jobs renders no PyTorchJob")
				}
			}
		})
	}
}

// checkKueue checks the queueing layer: Kueue at the recipe's version with
// PyTorchJobs enabled, each team's ClusterQueue in the cohort and its
// LocalQueue, and a LocalQueue for every rendered job's queue-name.
func checkKueue(t *testing.T, objs []Object) {
	t.Helper()
	_, kueueVersion := kueueModule(t)
	var repo sourcev1.GitRepository
	if err := mustFind(t, objs, "GitRepository", "flux-system", "kueue").Decode(&repo); err != nil {
		t.Fatal(err)
	}
	if repo.Spec.URL != "https://github.com/kubernetes-sigs/kueue" || repo.Spec.Reference == nil || repo.Spec.Reference.Tag != kueueVersion {
		t.Errorf("GitRepository kueue = %s %+v, want https://github.com/kubernetes-sigs/kueue at tag %s (tools/e2e/recipes/kueue's version)", repo.Spec.URL, repo.Spec.Reference, kueueVersion)
	}
	for _, want := range []struct{ kind, ns, name, by string }{
		{"CustomResourceDefinition", "", "clusterqueues.kueue.x-k8s.io", "flux-system/kueue"},
		{"Deployment", "kueue-system", "kueue-controller-manager", "flux-system/kueue"},
		{"Kustomization", "flux-system", "kueue", "flux-system/queueing"},
		{"ResourceFlavor", "", "default", "flux-system/teams"},
	} {
		if o := mustFind(t, objs, want.kind, want.ns, want.name); o.AppliedBy != want.by {
			t.Errorf("%s applied by %s, want %s", o.ID(), o.AppliedBy, want.by)
		}
	}
	if o, ok := find(objs, "APIService", "", "v1beta1.visibility.kueue.x-k8s.io"); ok {
		t.Errorf("%s applied by %s: nothing serves it", o.ID(), o.AppliedBy)
	}
	var cm corev1.ConfigMap
	if err := mustFind(t, objs, "ConfigMap", "kueue-system", "kueue-manager-config").Decode(&cm); err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Integrations                 struct{ Frameworks []string } `json:"integrations"`
		FairSharing                  *struct{}                     `json:"fairSharing"`
		ManagedJobsNamespaceSelector *metav1.LabelSelector         `json:"managedJobsNamespaceSelector"`
	}
	if err := yaml.Unmarshal([]byte(cm.Data["controller_manager_config.yaml"]), &cfg); err != nil {
		t.Fatalf("kueue-manager-config: %v", err)
	}
	if !slices.Equal(cfg.Integrations.Frameworks, []string{"kubeflow.org/pytorchjob"}) || cfg.FairSharing == nil {
		t.Errorf("Kueue configuration: frameworks %q, fairSharing %v; want only kubeflow.org/pytorchjob, with fair sharing", cfg.Integrations.Frameworks, cfg.FairSharing)
	}
	// Kueue manages the jobs of the teams' namespaces, and no others.
	managed, err := metav1.LabelSelectorAsSelector(cfg.ManagedJobsNamespaceSelector)
	if cfg.ManagedJobsNamespaceSelector == nil || err != nil {
		t.Errorf("Kueue configuration: managedJobsNamespaceSelector %v (%v), want the teams' namespaces", cfg.ManagedJobsNamespaceSelector, err)
	} else {
		for _, ns := range namespaces(objs) {
			if got, want := managed.Matches(labels.Set(ns.Labels)), strings.HasPrefix(ns.Name, runspec.TeamNamespacePrefix); got != want {
				t.Errorf("Kueue manages the jobs of namespace %s: %v, want %v", ns.Name, got, want)
			}
		}
	}

	queues := map[string]bool{}
	for _, o := range objs {
		switch o.Kind {
		case "ClusterQueue":
			var cq struct {
				Spec struct {
					CohortName        string                `json:"cohortName"`
					NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector"`
				} `json:"spec"`
			}
			if err := yaml.Unmarshal(o.YAML, &cq); err != nil {
				t.Fatal(err)
			}
			if cq.Spec.CohortName != "aerie" || o.AppliedBy != "flux-system/teams" {
				t.Errorf("%s: cohort %q applied by %s, want the cohort aerie, by flux-system/teams", o.ID(), cq.Spec.CohortName, o.AppliedBy)
			}
			// Only its team's namespace may submit to it.
			sel, err := metav1.LabelSelectorAsSelector(cq.Spec.NamespaceSelector)
			if cq.Spec.NamespaceSelector == nil || err != nil {
				t.Errorf("%s: namespaceSelector %v (%v), want one matching only %s", o.ID(), cq.Spec.NamespaceSelector, err, runspec.TeamNamespace(o.Name))
				continue
			}
			for _, ns := range namespaces(objs) {
				if got, want := sel.Matches(labels.Set(ns.Labels)), ns.Name == runspec.TeamNamespace(o.Name); got != want {
					t.Errorf("%s: namespaceSelector matches namespace %s: %v, want %v", o.ID(), ns.Name, got, want)
				}
			}
		case "LocalQueue":
			var lq struct {
				Spec struct {
					ClusterQueue string `json:"clusterQueue"`
				} `json:"spec"`
			}
			if err := yaml.Unmarshal(o.YAML, &lq); err != nil {
				t.Fatal(err)
			}
			if _, ok := find(objs, "ClusterQueue", "", lq.Spec.ClusterQueue); !ok || lq.Spec.ClusterQueue != o.Name || o.Namespace != runspec.TeamNamespace(o.Name) {
				t.Errorf("%s: clusterQueue %q; want the team's ClusterQueue, applied here, and the namespace %s", o.ID(), lq.Spec.ClusterQueue, runspec.TeamNamespace(o.Name))
			}
			queues[o.Namespace+"/"+o.Name] = true
		}
	}
	for _, team := range []string{"platform", "research"} {
		if !queues[runspec.TeamNamespace(team)+"/"+team] {
			t.Errorf("no LocalQueue %s in %s", team, runspec.TeamNamespace(team))
		}
	}
	for _, o := range objs {
		if o.Kind != "PyTorchJob" {
			continue
		}
		var job struct {
			Metadata metav1.ObjectMeta `json:"metadata"`
		}
		if err := yaml.Unmarshal(o.YAML, &job); err != nil {
			t.Fatal(err)
		}
		if q := job.Metadata.Labels["kueue.x-k8s.io/queue-name"]; !queues[o.Namespace+"/"+q] {
			t.Errorf("%s: kueue.x-k8s.io/queue-name %q names no LocalQueue in %s", o.ID(), q, o.Namespace)
		}
	}
}

// checkTeamIdentities checks each team's service account: applied by the
// teams Kustomization next to its LocalQueue, mapped by Workload Identity
// to the Google service account infra/terraform/modules/team creates in the
// env's project, and the one every job of the team runs as.
func checkTeamIdentities(t *testing.T, env string, objs []Object) {
	t.Helper()
	tfvars := filepath.Join(repoRoot, "infra", "terraform", "envs", env, "terraform.tfvars")
	b, err := os.ReadFile(tfvars)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^project_id\s*=\s*"([^"]+)"`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("%s: no project_id", tfvars)
	}
	project := string(m[1])
	for _, o := range objs {
		switch o.Kind {
		case "LocalQueue":
			obj := mustFind(t, objs, "ServiceAccount", o.Namespace, "aerie-trainer-"+o.Name)
			if obj.AppliedBy != o.AppliedBy {
				t.Errorf("%s applied by %s, want %s like its team's LocalQueue", obj.ID(), obj.AppliedBy, o.AppliedBy)
			}
			var sa corev1.ServiceAccount
			if err := obj.Decode(&sa); err != nil {
				t.Fatal(err)
			}
			want := "team-" + o.Name + "@" + project + ".iam.gserviceaccount.com"
			if got := sa.Annotations["iam.gke.io/gcp-service-account"]; got != want {
				t.Errorf("ServiceAccount %s/%s: iam.gke.io/gcp-service-account = %q, want %q (modules/team in %s)", sa.Namespace, sa.Name, got, want, tfvars)
			}
		case "PyTorchJob":
			var job kubeflowv1.PyTorchJob
			if err := o.Decode(&job); err != nil {
				t.Fatal(err)
			}
			want := "aerie-trainer-" + job.Labels["kueue.x-k8s.io/queue-name"]
			for rt, spec := range job.Spec.PyTorchReplicaSpecs {
				if got := spec.Template.Spec.ServiceAccountName; got != want {
					t.Errorf("%s %s: serviceAccountName %q, want its team's %q", o.ID(), rt, got, want)
				}
			}
		}
	}
}

// namespaces returns the Namespaces the tree applies, with the label the
// API server gives every namespace, kubernetes.io/metadata.name.
func namespaces(objs []Object) []corev1.Namespace {
	var out []corev1.Namespace
	for _, o := range objs {
		if o.Kind != "Namespace" {
			continue
		}
		var ns corev1.Namespace
		if err := yaml.Unmarshal(o.YAML, &ns); err != nil {
			panic(err) // validated already
		}
		if ns.Labels == nil {
			ns.Labels = map[string]string{}
		}
		ns.Labels[corev1.LabelMetadataName] = ns.Name
		out = append(out, ns)
	}
	return out
}

// checkTeamNamespaces checks that each team (a LocalQueue applied by the
// teams Kustomization) has its namespace team-<team> with everything
// apps/teams/tenant gives one, and that the training operator may act there.
func checkTeamNamespaces(t *testing.T, objs []Object) {
	t.Helper()
	var teams int
	for _, lq := range objs {
		if lq.Kind != "LocalQueue" {
			continue
		}
		teams++
		ns := runspec.TeamNamespace(lq.Name)
		for _, want := range []struct{ kind, ns, name string }{
			{"Namespace", "", ns},
			{"ResourceQuota", ns, "training"},
			{"LimitRange", ns, "training"},
			{"NetworkPolicy", ns, "default-deny"},
			{"NetworkPolicy", ns, "trainer"},
			{"Secret", ns, "aerie-rendezvous"},
			{"RoleBinding", ns, "training-operator"},
		} {
			if o := mustFind(t, objs, want.kind, want.ns, want.name); o.AppliedBy != "flux-system/teams" {
				t.Errorf("%s applied by %s, want flux-system/teams", o.ID(), o.AppliedBy)
			}
		}
		var secret corev1.Secret
		if err := mustFind(t, objs, "Secret", ns, "aerie-rendezvous").Decode(&secret); err != nil {
			t.Fatal(err)
		}
		if got := secret.StringData["token"]; got != "test-token" {
			t.Errorf("Secret %s/aerie-rendezvous token = %q, want the substituted test-token", ns, got)
		}
		var rb rbacv1.RoleBinding
		if err := mustFind(t, objs, "RoleBinding", ns, "training-operator").Decode(&rb); err != nil {
			t.Fatal(err)
		}
		if want := (rbacv1.Subject{Kind: "ServiceAccount", Name: "training-operator", Namespace: "kubeflow"}); rb.RoleRef.Name != "training-operator" || !slices.Equal(rb.Subjects, []rbacv1.Subject{want}) {
			t.Errorf("RoleBinding %s/training-operator binds %s to %+v, want ClusterRole training-operator to %+v", ns, rb.RoleRef.Name, rb.Subjects, want)
		}
	}
	if teams == 0 {
		t.Error("no team's LocalQueue is applied")
	}
}

// TestClusterVarsOverride checks the hook the e2e test uses: the optional
// ConfigMap flux-system/cluster-vars points the operator's source elsewhere.
func TestClusterVarsOverride(t *testing.T) {
	const url = "http://127.0.0.1:8080/kubeflow/training-operator.git"
	objs := fluxFor(t, "dev", map[string]string{"training_operator_git_url": url})
	var repo sourcev1.GitRepository
	if err := mustFind(t, objs, "GitRepository", "flux-system", "training-operator").Decode(&repo); err != nil {
		t.Fatal(err)
	}
	if repo.Spec.URL != url {
		t.Errorf("GitRepository training-operator url = %q, want %q", repo.Spec.URL, url)
	}
}
