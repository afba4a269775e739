//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/gittestserver"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/aerie-ml/aerie/tools/e2e/cluster"
)

// rendezvousToken is the Secret Terraform writes (cluster-secrets), as the
// tests provide it.
const rendezvousToken = "e2e-rendezvous-token"

// stepper returns a logger of the test's milestones, each with the seconds
// since the test began: the figures the tier reports come from these.
func stepper(t *testing.T) func(format string, args ...any) {
	began := time.Now()
	return func(format string, args ...any) {
		t.Logf("[%6.1fs] %s", time.Since(began).Seconds(), fmt.Sprintf(format, args...))
	}
}

// gitOps is a control plane that Flux syncs from a local git server.
type gitOps struct {
	cp  *cluster.ControlPlane
	git *gittestserver.GitServer
	// Committed is when the repository was committed to the git server.
	Committed time.Time
}

// startGitOps is the GitOps path on one machine:
//
//  1. etcd and kube-apiserver on loopback; Flux's CRDs from the controllers'
//     own modules;
//  2. repo (a directory holding clusters/ and apps/) committed as aerie.git,
//     and mirrors of the training operator's and Kueue's manifests (from the
//     Go module cache: the same files as the upstream tags), served by
//     gittestserver;
//  3. the real source-controller and kustomize-controller, pointed at
//     clusters/dev exactly as bootstrap would, except that the optional
//     ConfigMap flux-system/cluster-vars sends the operator's and Kueue's
//     GitRepositories to mirrors of their tags (from the recipes' modules), and the Secret Terraform would write is created here;
//  4. stand-ins for what kube-controller-manager would write (standIns).
//
// It returns once the root sync is applied; the caller waits for the
// Kustomizations it cares about.
func startGitOps(t *testing.T, ctx context.Context, repo string, step func(string, ...any)) *gitOps {
	t.Helper()
	cp := cluster.Start(t)
	step("kube-apiserver ready")

	for _, m := range []string{"source-controller", "kustomize-controller"} {
		dir := moduleDir(t, filepath.Join("recipes", m), "github.com/fluxcd/"+m)
		files, _ := filepath.Glob(filepath.Join(dir, "config", "crd", "bases", "*.yaml"))
		if len(files) == 0 {
			t.Fatalf("no CRDs in %s/config/crd/bases", dir)
		}
		for _, f := range files {
			applyFile(t, ctx, cp, f)
		}
	}
	waitCRDs(t, ctx, cp, "gitrepositories.source.toolkit.fluxcd.io", "kustomizations.kustomize.toolkit.fluxcd.io")
	step("Flux CRDs established")

	git, err := gittestserver.NewTempGitServer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(git.Root()) })
	if err := git.StartHTTP(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(git.StopHTTP)
	opDir, opVersion := operatorModule(t)
	mirror := t.TempDir()
	if err := os.CopyFS(filepath.Join(mirror, "manifests"), os.DirFS(filepath.Join(opDir, "manifests"))); err != nil {
		t.Fatal(err)
	}
	if err := git.InitRepo(mirror, "master", "kubeflow/training-operator.git"); err != nil {
		t.Fatal(err)
	}
	tagHead(t, filepath.Join(git.Root(), "kubeflow/training-operator.git"), opVersion)
	kueueDir, kueueVersion := moduleVersion(t, filepath.Join("recipes", "kueue"), "sigs.k8s.io/kueue")
	kueueMirror := t.TempDir()
	if err := os.CopyFS(filepath.Join(kueueMirror, "config"), os.DirFS(filepath.Join(kueueDir, "config"))); err != nil {
		t.Fatal(err)
	}
	if err := git.InitRepo(kueueMirror, "main", "kubernetes-sigs/kueue.git"); err != nil {
		t.Fatal(err)
	}
	tagHead(t, filepath.Join(git.Root(), "kubernetes-sigs/kueue.git"), kueueVersion)
	committed := time.Now()
	if err := git.InitRepo(repo, "main", "aerie.git"); err != nil {
		t.Fatal(err)
	}
	step("git server: aerie.git, kubeflow/training-operator.git@%s, kubernetes-sigs/kueue.git@%s", opVersion, kueueVersion)

	// The controllers, out of cluster.
	scBin := cluster.Binary(t, "E2E_SOURCE_CONTROLLER")
	kcBin := cluster.Binary(t, "E2E_KUSTOMIZE_CONTROLLER")
	env := []string{"KUBECONFIG=" + cp.Kubeconfig, "RUNTIME_NAMESPACE=flux-system"}
	storage := "127.0.0.1:" + strconv.Itoa(cluster.FreePort(t))
	// source-controller refuses a storage path that does not exist.
	if err := os.MkdirAll(filepath.Join(cp.Dir, "artifacts"), 0o755); err != nil {
		t.Fatal(err)
	}
	cluster.RunEnv(t, ctx, cp.Dir, "source-controller", env, scBin,
		"--storage-path="+filepath.Join(cp.Dir, "artifacts"),
		"--storage-addr="+storage, "--storage-adv-addr="+storage,
		"--metrics-addr=127.0.0.1:"+strconv.Itoa(cluster.FreePort(t)),
		"--health-addr=127.0.0.1:"+strconv.Itoa(cluster.FreePort(t)),
		"--log-level=debug")
	cluster.RunEnv(t, ctx, cp.Dir, "kustomize-controller", env, kcBin,
		// A Kustomization waiting on dependsOn retries every 30 s by
		// default; the tier's chain of five would spend minutes idle.
		"--requeue-dependency=2s",
		"--metrics-addr=127.0.0.1:"+strconv.Itoa(cluster.FreePort(t)),
		"--health-addr=127.0.0.1:"+strconv.Itoa(cluster.FreePort(t)),
		"--log-level=debug")
	step("source-controller and kustomize-controller started")

	// What bootstrap and Terraform put in the cluster, then the root sync.
	apply(t, ctx, cp, fmt.Sprintf(`
apiVersion: v1
kind: Namespace
metadata: {name: flux-system}
---
apiVersion: v1
kind: Secret
metadata: {name: cluster-secrets, namespace: flux-system}
stringData: {rendezvous_token: %s}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cluster-vars, namespace: flux-system}
data:
  training_operator_git_url: %s/kubeflow/training-operator.git
  kueue_git_url: %s/kubernetes-sigs/kueue.git
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: flux-system, namespace: flux-system}
spec:
  interval: 1m
  url: %s/aerie.git
  ref: {branch: main}
  # Bootstrap's own sync objects point at GitHub; the test's replace them.
  ignore: /clusters/*/flux-system/
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: flux-system, namespace: flux-system}
spec:
  interval: 10m
  path: ./clusters/dev
  prune: true
  sourceRef: {kind: GitRepository, name: flux-system}
`, rendezvousToken, git.HTTPAddress(), git.HTTPAddress(), git.HTTPAddress()))

	stopStandIns := standIns(t, ctx, cp)
	t.Cleanup(stopStandIns)
	return &gitOps{cp: cp, git: git, Committed: committed}
}

// startOperator runs the real training operator controller out of cluster,
// with the arguments Flux applied to its Deployment, as its ServiceAccount
// (so the RBAC Flux applied, apps/training-operator/base/rbac.yaml and each
// team's apps/teams/tenant/rbac.yaml, must be enough). It returns the process and its arguments.
func startOperator(t *testing.T, ctx context.Context, cp *cluster.ControlPlane) (*exec.Cmd, []string) {
	t.Helper()
	dep, err := cp.Client.AppsV1().Deployments("kubeflow").Get(ctx, "training-operator", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	args := slices.Clone(dep.Spec.Template.Spec.Containers[0].Args)
	args = append(args,
		"--metrics-bind-address=0",
		"--health-probe-bind-address=127.0.0.1:"+strconv.Itoa(cluster.FreePort(t)),
		"--webhook-server-port="+strconv.Itoa(cluster.FreePort(t)))
	certDir := "/tmp/k8s-webhook-server/serving-certs" // fixed in the operator (pkg/cert)
	go mountWebhookCert(ctx, t, cp, "kubeflow", "training-operator-webhook-cert", certDir)
	t.Cleanup(func() { os.RemoveAll(certDir) })
	asOperator := cp.KubeconfigAs(t, "system:serviceaccount:kubeflow:training-operator")
	cmd := cluster.RunEnv(t, ctx, cp.Dir, "training-operator",
		[]string{"KUBECONFIG=" + asOperator, "MY_POD_NAMESPACE=kubeflow"},
		cluster.Binary(t, "E2E_TRAINING_OPERATOR"), args...)
	return cmd, args
}

// platformKustomizations are the cluster's Flux Kustomizations, in the
// order they become Ready.
var platformKustomizations = []string{"flux-system", "infrastructure", "training-operator", "queueing", "kueue", "teams", "jobs"}

// startKueue runs Kueue's real controller manager out of cluster with the
// configuration Flux applied (the Deployment's ConfigMap) and its arguments,
// as its ServiceAccount (so apps/kueue's upstream RBAC must be enough). Only
// what a pod would get from its own network and volumes changes: loopback
// probe and webhook addresses, no metrics listener, the test's cert
// directory (filled from the Secret Kueue's cert rotator writes, as the
// Deployment's volume would be), and no leader election for its one
// replica. The API server calls no webhook (cluster.Start), so Kueue
// admits jobs through its job reconciler alone: the jobs are rendered
// suspended, and it unsuspends each one it admits.
func startKueue(t *testing.T, ctx context.Context, cp *cluster.ControlPlane) *exec.Cmd {
	t.Helper()
	dep, err := cp.Client.AppsV1().Deployments("kueue-system").Get(ctx, "kueue-controller-manager", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var configMap string
	for _, v := range dep.Spec.Template.Spec.Volumes {
		if v.Name == "manager-config" && v.ConfigMap != nil {
			configMap = v.ConfigMap.Name
		}
	}
	cm, err := cp.Client.CoreV1().ConfigMaps("kueue-system").Get(ctx, configMap, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("Kueue's configuration (volume manager-config of its Deployment): %v", err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(cm.Data["controller_manager_config.yaml"]), &cfg); err != nil || cfg == nil {
		t.Fatalf("ConfigMap kueue-system/%s: controller_manager_config.yaml: %v", configMap, err)
	}
	dir := t.TempDir()
	certDir := filepath.Join(dir, "certs")
	cfg["health"] = map[string]any{"healthProbeBindAddress": "127.0.0.1:" + strconv.Itoa(cluster.FreePort(t))}
	cfg["metrics"] = map[string]any{"bindAddress": "0"}
	cfg["webhook"] = map[string]any{"host": "127.0.0.1", "port": cluster.FreePort(t), "certDir": certDir}
	cfg["leaderElection"] = map[string]any{"leaderElect": false}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "controller_manager_config.yaml")
	if err := os.WriteFile(config, b, 0o600); err != nil {
		t.Fatal(err)
	}
	var args []string
	for _, c := range dep.Spec.Template.Spec.Containers {
		if c.Name != "manager" {
			continue
		}
		for _, a := range c.Args {
			if !strings.HasPrefix(a, "--config=") {
				args = append(args, a)
			}
		}
	}
	args = append(args, "--config="+config)
	go mountWebhookCert(ctx, t, cp, "kueue-system", "kueue-webhook-server-cert", certDir)
	asKueue := cp.KubeconfigAs(t, "system:serviceaccount:kueue-system:kueue-controller-manager")
	return cluster.RunEnv(t, ctx, cp.Dir, "kueue", []string{"KUBECONFIG=" + asKueue},
		cluster.Binary(t, "E2E_KUEUE"), args...)
}
