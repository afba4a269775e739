//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	gogit "github.com/go-git/go-git/v5"
	kubeflowv1 "github.com/kubeflow/training-operator/pkg/apis/kubeflow.org/v1"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/aerie-ml/aerie/internal/runspec"
	"github.com/aerie-ml/aerie/tools/e2e/cluster"
	"github.com/aerie-ml/aerie/tools/manifests"
)

const repoRoot = "../.."

var (
	kustomizations = schema.GroupVersionResource{Group: "kustomize.toolkit.fluxcd.io", Version: "v1", Resource: "kustomizations"}
	crds           = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	pytorchJobs    = schema.GroupVersionResource{Group: "kubeflow.org", Version: "v1", Resource: "pytorchjobs"}
	workloads      = schema.GroupVersionResource{Group: "kueue.x-k8s.io", Version: "v1beta2", Resource: "workloads"}
)

// TestFluxSyncsClusterDev is the whole GitOps path on one machine
// (startGitOps) with this repository's working tree: Flux applies
// infrastructure, the operator and then the jobs, the test checks what
// landed, and the real training operator controller creates each job's pods
// and services with the trainer's env contract. No node runs here: the pods
// stay Pending (TestLifecycle runs them).
//
// Without kubelet and kube-controller-manager, the test writes what they
// would: the operator Deployment's status (the operator runs out of cluster
// in its stead) and the ResourceQuota's initial status.
func TestFluxSyncsClusterDev(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	step := stepper(t)

	repo := t.TempDir()
	for _, top := range []string{"clusters", "apps"} {
		if err := os.CopyFS(filepath.Join(repo, top), os.DirFS(filepath.Join(repoRoot, top))); err != nil {
			t.Fatal(err)
		}
	}
	p := startGitOps(t, ctx, repo, step)
	cp := p.cp
	for _, name := range platformKustomizations {
		waitReady(t, ctx, cp, kustomizations, "flux-system", name, 5*time.Minute)
		step("Kustomization %s Ready", name)
	}

	// What Flux applied.
	waitCRDs(t, ctx, cp, "pytorchjobs.kubeflow.org")
	if _, err := cp.Client.CoreV1().Namespaces().Get(ctx, "kubeflow", metav1.GetOptions{}); err != nil {
		t.Errorf("namespace kubeflow: %v", err)
	}
	for _, team := range teams {
		checkTeamNamespace(t, ctx, cp, runspec.TeamNamespace(team))
	}
	want := renderedJobs(t)
	if len(want) == 0 {
		t.Fatal("apps/jobs renders no PyTorchJob")
	}
	for _, j := range want {
		u, err := cp.Dynamic.Resource(pytorchJobs).Namespace(j.Namespace).Get(ctx, j.Name, metav1.GetOptions{})
		if err != nil {
			t.Errorf("PyTorchJob %s/%s: %v", j.Namespace, j.Name, err)
			continue
		}
		if by := u.GetLabels()["kustomize.toolkit.fluxcd.io/name"]; by != "jobs" {
			t.Errorf("PyTorchJob %s applied by Kustomization %q, want jobs", j.Name, by)
		}
		checkTeamIdentity(t, ctx, cp, j)
	}
	step("Flux applied the CRDs, the teams' namespaces with their quota, limits, policies, secret and service account, and %d PyTorchJobs", len(want))
	if t.Failed() {
		return
	}

	_, args := startOperator(t, ctx, cp)
	step("training operator started: %s", strings.Join(args, " "))
	startKueue(t, ctx, cp)
	step("Kueue started")

	for _, j := range want {
		checkReplicas(t, ctx, cp, j)
		step("PyTorchJob %s: pods and services with MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK", j.Name)
	}
	checkAdmitted(t, ctx, cp, want)
	step("Kueue admitted every job through its team's ClusterQueue")
	checkOperatorScope(t, ctx, cp)
	step("the operator's ServiceAccount may create pods in the teams' namespaces only")
}

// teams are apps/teams' teams.
var teams = []string{"platform", "research"}

// checkTeamNamespace checks what Flux applied in a team's namespace ns:
// apps/teams/tenant's quota, limits, policies and substituted secret.
func checkTeamNamespace(t *testing.T, ctx context.Context, cp *cluster.ControlPlane, ns string) {
	t.Helper()
	if _, err := cp.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
		t.Errorf("namespace %s: %v", ns, err)
		return
	}
	q, err := cp.Client.CoreV1().ResourceQuotas(ns).Get(ctx, "training", metav1.GetOptions{})
	if err != nil {
		t.Errorf("ResourceQuota %s/training: %v", ns, err)
	} else if got := q.Spec.Hard[corev1.ResourceRequestsCPU]; got.Cmp(resource.MustParse("16")) != 0 {
		t.Errorf("ResourceQuota %s/training requests.cpu = %s, want apps/teams/tenant's 16", ns, got.String())
	}
	if _, err := cp.Client.CoreV1().LimitRanges(ns).Get(ctx, "training", metav1.GetOptions{}); err != nil {
		t.Errorf("LimitRange %s/training: %v", ns, err)
	}
	for _, np := range []string{"default-deny", "trainer"} {
		if _, err := cp.Client.NetworkingV1().NetworkPolicies(ns).Get(ctx, np, metav1.GetOptions{}); err != nil {
			t.Errorf("NetworkPolicy %s/%s: %v", ns, np, err)
		}
	}
	sec, err := cp.Client.CoreV1().Secrets(ns).Get(ctx, "aerie-rendezvous", metav1.GetOptions{})
	if err != nil {
		t.Errorf("Secret %s/aerie-rendezvous: %v", ns, err)
	} else if got := string(sec.Data["token"]); got != rendezvousToken {
		t.Errorf("Secret %s/aerie-rendezvous token = %q, want the substituted %q", ns, got, rendezvousToken)
	}
}

// checkTeamIdentity checks that each replica of j runs as its team's
// service account, which the teams Kustomization applied with the Workload
// Identity annotation naming the team's Google service account.
func checkTeamIdentity(t *testing.T, ctx context.Context, cp *cluster.ControlPlane, j *kubeflowv1.PyTorchJob) {
	t.Helper()
	team := j.Labels["aerie.dev/team"]
	for rt, spec := range j.Spec.PyTorchReplicaSpecs {
		if want := runspec.TeamNamespace(team); j.Namespace != want {
			t.Errorf("PyTorchJob %s in namespace %s, want its team's %s", j.Name, j.Namespace, want)
		}
		name := spec.Template.Spec.ServiceAccountName
		if want := "aerie-trainer-" + team; name != want {
			t.Errorf("PyTorchJob %s %s runs as service account %q, want its team's %q", j.Name, rt, name, want)
			continue
		}
		sa, err := cp.Client.CoreV1().ServiceAccounts(j.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Errorf("PyTorchJob %s: ServiceAccount %s/%s: %v", j.Name, j.Namespace, name, err)
			continue
		}
		if by := sa.Labels["kustomize.toolkit.fluxcd.io/name"]; by != "teams" {
			t.Errorf("ServiceAccount %s applied by Kustomization %q, want teams", name, by)
		}
		if gsa := sa.Annotations["iam.gke.io/gcp-service-account"]; !strings.HasPrefix(gsa, "team-"+team+"@") {
			t.Errorf("ServiceAccount %s maps to Google service account %q, want team-%s@<project>.iam.gserviceaccount.com", name, gsa, team)
		}
	}
}

// checkAdmitted checks that Kueue admitted each job through the
// ClusterQueue of its team (aerie.dev/team): the jobs are rendered
// suspended, so their pods exist only because Kueue admitted them.
func checkAdmitted(t *testing.T, ctx context.Context, cp *cluster.ControlPlane, jobs []*kubeflowv1.PyTorchJob) {
	t.Helper()
	wls, err := cp.Dynamic.Resource(workloads).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	byJob := map[string]string{}
	for _, wl := range wls.Items {
		cq, _, _ := unstructured.NestedString(wl.Object, "status", "admission", "clusterQueue")
		for _, o := range wl.GetOwnerReferences() {
			if o.Kind == kubeflowv1.PyTorchJobKind {
				byJob[wl.GetNamespace()+"/"+o.Name] = cq
			}
		}
	}
	for _, j := range jobs {
		if team := j.Labels["aerie.dev/team"]; byJob[j.Namespace+"/"+j.Name] != team {
			t.Errorf("PyTorchJob %s/%s: admitted by ClusterQueue %q, want its team's, %q", j.Namespace, j.Name, byJob[j.Namespace+"/"+j.Name], team)
		}
	}
}

// checkOperatorScope asks the API server what the operator's ServiceAccount
// may do: create pods in the teams' namespaces, and nowhere else.
func checkOperatorScope(t *testing.T, ctx context.Context, cp *cluster.ControlPlane) {
	may := map[string]bool{"default": false, "flux-system": false, "kube-system": false}
	for _, team := range teams {
		may[runspec.TeamNamespace(team)] = true
	}
	for ns, want := range may {
		r, err := cp.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:               "system:serviceaccount:kubeflow:training-operator",
			Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:kubeflow"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: "create", Resource: "pods"},
		}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if r.Status.Allowed != want {
			t.Errorf("training-operator may create pods in %s: %v (%s), want %v", ns, r.Status.Allowed, r.Status.Reason, want)
		}
	}
}

// standIns writes what the missing node components would: each
// ResourceQuota's first status, as the quota controller does (quota
// admission refuses every pod and PyTorchJob of a team's namespace until it
// exists), and the training-operator's and Kueue's Deployments' available
// status (their pods are the processes the tests run, or nothing). It
// returns a function that stops them.
func standIns(t *testing.T, ctx context.Context, cp *cluster.ControlPlane) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			time.Sleep(250 * time.Millisecond)
			if qs, err := cp.Client.CoreV1().ResourceQuotas("").List(ctx, metav1.ListOptions{}); err == nil {
				for i := range qs.Items {
					initQuotaStatus(ctx, cp, &qs.Items[i])
				}
			}
			for _, dep := range standInDeployments {
				markAvailable(ctx, cp, dep[0], dep[1])
			}
		}
	}()
	return func() { cancel(); <-done }
}

// initQuotaStatus writes q's first status, nothing used, if it has none.
func initQuotaStatus(ctx context.Context, cp *cluster.ControlPlane, q *corev1.ResourceQuota) {
	if len(q.Status.Hard) > 0 {
		return
	}
	q.Status.Hard = q.Spec.Hard.DeepCopy()
	q.Status.Used = corev1.ResourceList{}
	for r := range q.Spec.Hard {
		q.Status.Used[r] = resource.MustParse("0")
	}
	_, _ = cp.Client.CoreV1().ResourceQuotas(q.Namespace).UpdateStatus(ctx, q, metav1.UpdateOptions{})
}

// standInDeployments are the controllers that run out of cluster, or not
// at all, in the tier: namespace, name.
var standInDeployments = [][2]string{{"kubeflow", "training-operator"}, {"kueue-system", "kueue-controller-manager"}}

// markAvailable writes the available status a Deployment's controller and
// kubelet would, once per generation.
func markAvailable(ctx context.Context, cp *cluster.ControlPlane, ns, name string) {
	d, err := cp.Client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil || d.Status.ObservedGeneration == d.Generation {
		return
	}
	n := int32(1)
	if d.Spec.Replicas != nil {
		n = *d.Spec.Replicas
	}
	now := metav1.Now()
	d.Status = appsv1.DeploymentStatus{
		ObservedGeneration: d.Generation,
		Replicas:           n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n,
		Conditions: []appsv1.DeploymentCondition{
			{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable", LastUpdateTime: now, LastTransitionTime: now},
			{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable", LastUpdateTime: now, LastTransitionTime: now},
		},
	}
	_, _ = cp.Client.AppsV1().Deployments(ns).UpdateStatus(ctx, d, metav1.UpdateOptions{})
}

// mountWebhookCert does what a Deployment's secret volume would: copy the
// certificates a controller's cert rotator writes into its Secret ns/name to
// the directory its webhook server reads. Without them neither the operator
// nor Kueue starts its job controllers.
func mountWebhookCert(ctx context.Context, t *testing.T, cp *cluster.ControlPlane, ns, name, dir string) {
	for ctx.Err() == nil {
		time.Sleep(250 * time.Millisecond)
		s, err := cp.Client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil || len(s.Data["tls.crt"]) == 0 {
			continue
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Errorf("mount webhook cert: %v", err)
			return
		}
		for _, k := range []string{"ca.crt", "tls.crt", "tls.key"} {
			if err := os.WriteFile(filepath.Join(dir, k), s.Data[k], 0o600); err != nil {
				t.Errorf("mount webhook cert: %v", err)
				return
			}
		}
		return
	}
}

// checkReplicas waits for the operator to create job's pods and services and
// checks the trainer's env contract on each pod.
func checkReplicas(t *testing.T, ctx context.Context, cp *cluster.ControlPlane, job *kubeflowv1.PyTorchJob) {
	t.Helper()
	world := 0
	type replica struct {
		name string
		rank int
	}
	var want []replica
	master := job.Spec.PyTorchReplicaSpecs[kubeflowv1.PyTorchJobReplicaTypeMaster]
	workers := job.Spec.PyTorchReplicaSpecs[kubeflowv1.PyTorchJobReplicaTypeWorker]
	if master != nil && master.Replicas != nil {
		for i := 0; i < int(*master.Replicas); i++ {
			want = append(want, replica{fmt.Sprintf("%s-master-%d", job.Name, i), world})
			world++
		}
	}
	if workers != nil && workers.Replicas != nil {
		for i := 0; i < int(*workers.Replicas); i++ {
			want = append(want, replica{fmt.Sprintf("%s-worker-%d", job.Name, i), world})
			world++
		}
	}
	port := "23456"
	if master != nil {
		for _, c := range master.Template.Spec.Containers {
			for _, p := range c.Ports {
				if p.Name == kubeflowv1.PyTorchJobDefaultPortName {
					port = strconv.Itoa(int(p.ContainerPort))
				}
			}
		}
	}
	for _, r := range want {
		var pod *corev1.Pod
		deadline := time.Now().Add(3 * time.Minute)
		for {
			p, err := cp.Client.CoreV1().Pods(job.Namespace).Get(ctx, r.name, metav1.GetOptions{})
			if err == nil {
				pod = p
				break
			}
			if !apierrors.IsNotFound(err) || time.Now().After(deadline) {
				t.Fatalf("pod %s/%s: %v", job.Namespace, r.name, err)
			}
			time.Sleep(250 * time.Millisecond)
		}
		// The operator creates a replica's headless service after its pod.
		for {
			_, err := cp.Client.CoreV1().Services(job.Namespace).Get(ctx, r.name, metav1.GetOptions{})
			if err == nil {
				break
			}
			if !apierrors.IsNotFound(err) || time.Now().After(deadline) {
				t.Fatalf("service %s/%s: %v", job.Namespace, r.name, err)
			}
			time.Sleep(250 * time.Millisecond)
		}
		var env map[string]string
		for _, c := range pod.Spec.Containers {
			if c.Name == kubeflowv1.PyTorchJobDefaultContainerName {
				env = map[string]string{}
				for _, e := range c.Env {
					env[e.Name] = e.Value
				}
			}
		}
		if env == nil {
			t.Errorf("pod %s: no container named %s", r.name, kubeflowv1.PyTorchJobDefaultContainerName)
			continue
		}
		for k, v := range map[string]string{
			"MASTER_ADDR": job.Name + "-master-0",
			"MASTER_PORT": port,
			"WORLD_SIZE":  strconv.Itoa(world),
			"RANK":        strconv.Itoa(r.rank),
		} {
			if env[k] != v {
				t.Errorf("pod %s: %s = %q, want %q", r.name, k, env[k], v)
			}
		}
	}
}

// renderedJobs are the PyTorchJobs apps/jobs renders, built in process.
func renderedJobs(t *testing.T) []*kubeflowv1.PyTorchJob {
	t.Helper()
	objs, err := manifests.Kustomize(filepath.Join(repoRoot, "apps", "jobs"))
	if err != nil {
		t.Fatal(err)
	}
	var jobs []*kubeflowv1.PyTorchJob
	for _, o := range objs {
		if o.Kind != kubeflowv1.PyTorchJobKind {
			continue
		}
		var j kubeflowv1.PyTorchJob
		if err := yaml.Unmarshal(o.YAML, &j); err != nil {
			t.Fatalf("%s: %v", o.ID(), err)
		}
		jobs = append(jobs, &j)
	}
	return jobs
}

func waitReady(t *testing.T, ctx context.Context, cp *cluster.ControlPlane, gvr schema.GroupVersionResource, ns, name string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		u, err := cp.Dynamic.Resource(gvr).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			status, msg := condition(u, "Ready")
			if status == "True" {
				return
			}
			last = status + ": " + msg
		} else {
			last = err.Error()
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("%s %s/%s not Ready after %s: %s", gvr.Resource, ns, name, timeout, last)
}

func condition(u *unstructured.Unstructured, typ string) (status, message string) {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == typ {
			s, _ := m["status"].(string)
			msg, _ := m["message"].(string)
			return s, msg
		}
	}
	return "Unknown", "no " + typ + " condition yet"
}

func waitCRDs(t *testing.T, ctx context.Context, cp *cluster.ControlPlane, names ...string) {
	t.Helper()
	for _, n := range names {
		deadline := time.Now().Add(time.Minute)
		for {
			u, err := cp.Dynamic.Resource(crds).Get(ctx, n, metav1.GetOptions{})
			if err == nil {
				if s, _ := condition(u, "Established"); s == "True" {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("CRD %s not established: %v", n, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// apply creates the objects of a multi-document YAML, as the test's own
// stand-in for bootstrap and Terraform.
func apply(t *testing.T, ctx context.Context, cp *cluster.ControlPlane, docs string) {
	t.Helper()
	for _, doc := range strings.Split(docs, "\n---\n") {
		var u unstructured.Unstructured
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatalf("%v in:\n%s", err, doc)
		}
		if len(u.Object) == 0 {
			continue
		}
		gvk := u.GroupVersionKind()
		gvr := schema.GroupVersionResource{Group: gvk.Group, Version: gvk.Version, Resource: strings.ToLower(gvk.Kind) + "s"}
		if gvk.Kind == "GitRepository" {
			gvr.Resource = "gitrepositories"
		}
		var err error
		if u.GetNamespace() == "" {
			_, err = cp.Dynamic.Resource(gvr).Create(ctx, &u, metav1.CreateOptions{})
		} else {
			_, err = cp.Dynamic.Resource(gvr).Namespace(u.GetNamespace()).Create(ctx, &u, metav1.CreateOptions{})
		}
		if err != nil {
			t.Fatalf("create %s %s: %v", gvk.Kind, u.GetName(), err)
		}
	}
}

func applyFile(t *testing.T, ctx context.Context, cp *cluster.ControlPlane, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	apply(t, ctx, cp, strings.TrimPrefix(string(data), "---\n"))
}

// moduleDir returns the module cache directory of module as required by
// the recipe in dir (relative to this package).
func moduleDir(t *testing.T, dir, module string) string {
	t.Helper()
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", module)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		t.Fatalf("go list -m %s in %s: %v %s: run make e2e-bins", module, dir, err, out)
	}
	return strings.TrimSpace(string(out))
}

// moduleVersion is moduleDir with the module's version.
func moduleVersion(t *testing.T, dir, module string) (string, string) {
	t.Helper()
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}} {{.Version}}", module)
	cmd.Dir = dir
	out, err := cmd.Output()
	f := strings.Fields(string(out))
	if err != nil || len(f) != 2 {
		t.Fatalf("go list -m %s in %s: %v %s: run make e2e-bins", module, dir, err, out)
	}
	return f[0], f[1]
}

// operatorModule is the training-operator module the main module requires:
// its manifests are what the upstream v1.8.1 tag holds.
func operatorModule(t *testing.T) (dir, version string) {
	t.Helper()
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}} {{.Version}}", "github.com/kubeflow/training-operator")
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	f := strings.Fields(string(out))
	if err != nil || len(f) != 2 {
		t.Fatalf("go list -m github.com/kubeflow/training-operator: %v %s", err, out)
	}
	return f[0], f[1]
}

// tagHead creates the lightweight tag name at the bare repository's HEAD.
func tagHead(t *testing.T, path, name string) {
	t.Helper()
	r, err := gogit.PlainOpen(path)
	if err != nil {
		t.Fatal(err)
	}
	head, err := r.Head()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.CreateTag(name, head.Hash(), nil); err != nil {
		t.Fatal(err)
	}
}
