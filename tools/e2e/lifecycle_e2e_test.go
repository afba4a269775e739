//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"
	kubeflowv1 "github.com/kubeflow/training-operator/pkg/apis/kubeflow.org/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/aerie-ml/aerie/internal/dataset"
	"github.com/aerie-ml/aerie/internal/manifest"
	"github.com/aerie-ml/aerie/internal/runspec"
	"github.com/aerie-ml/aerie/internal/store"
	"github.com/aerie-ml/aerie/tools/e2e/cluster"
	"github.com/aerie-ml/aerie/tools/e2e/node"
)

// fashionClasses are Fashion-MNIST's class names, in label order.
var fashionClasses = []string{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"}

// The bucket the rendered runs write to (the dev output URI), served by
// the in-process GCS emulator.
const bucket = "aerie-dev-training"

// trainerImage is the repository of the trainer image; the node runs the
// trainer binary this test builds for it.
const trainerImage = "europe-west4-docker.pkg.dev/aerie-dev/aerie/trainer"

// trainerImageRef is the digest reference the test's runs declare.
var trainerImageRef = func() string {
	sum := sha256.Sum256([]byte("aerie e2e trainer"))
	return trainerImage + "@sha256:" + hex.EncodeToString(sum[:])
}()

// TestLifecycle is a training run's whole life on the platform, with real
// trainer processes:
//
//  1. two runs are declared under apps/jobs/runs/ of a copy of this
//     repository, rendered by aerie run render, and committed to the git server:
//     "lifecycle" (a master and a worker) and "baddata" (one replica whose
//     dataset's manifest checks out, so the run renders, but one of whose
//     shards was truncated in the store after ingest);
//  2. Flux applies them (startGitOps); the training operator creates the
//     pods; the node (tools/e2e/node) runs them as trainer processes that
//     read the dataset from and write checkpoints and the model to a gs://
//     bucket in fake-gcs-server;
//  3. lifecycle: once a checkpoint is committed, the master's process is
//     SIGKILLed. The node reports exit code 137 (retryable), the worker
//     exits with the retryable PeerLost, the operator replaces both pods
//     (restartPolicy ExitCode), and the new master resumes from the last
//     committed checkpoint, which the model's lineage names. The job
//     reaches Succeeded, cleanPodPolicy All removes its pods, and the TTL
//     removes the job;
//  4. baddata: the trainer exits with the permanent Data code and the job
//     fails at once, without a restart;
//  5. aerie run status shows Running, Restarting, Succeeded and Failed as
//     they happen.
//
// The test logs the tier's figures from its own clock: commit to pods
// running, kill to restart, and the job's memory used / requested.
//
// The test's copy of clusters/dev/jobs.yaml patches the rendered one-day
// ttlSecondsAfterFinished down to seconds, as a cluster overlay would.
func TestLifecycle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	step := stepper(t)

	env := newTrainEnv(t, ctx)
	aerie, repo, runs, out := env.aerie, env.repo, env.runs, env.store
	dataURI, digest := writeDataset(t, ctx, out, 80)
	step("dataset %s in the emulator", dataURI)

	badURI, badDigest := writeDataset(t, ctx, out, 40)
	truncateShard(t, ctx, out, badDigest)
	// The runs are team platform's: their trainers write its part of the
	// store (store.TeamRoot), the prefix only its identity may write.
	teamOut, err := store.Open(ctx, store.TeamRoot(out.URI(""), "platform"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { teamOut.Close() })
	writeRun(t, runs, "lifecycle", "platform", 2, dataURI, digest)
	writeRun(t, runs, "baddata", "platform", 1, badURI, badDigest)
	run(t, repo, aerie, "run", "render", "--repo", repo, "--revision", strings.Repeat("e2", 20))
	shortTTL(t, filepath.Join(repo, "clusters", "dev", "jobs.yaml"), 5)
	step("runs lifecycle and baddata declared and rendered")

	p := startGitOps(t, ctx, repo, step)
	cp := p.cp
	pods := recordPods(t, ctx, cp)
	for _, name := range platformKustomizations {
		waitReady(t, ctx, cp, kustomizations, "flux-system", name, 5*time.Minute)
		step("Kustomization %s Ready", name)
	}

	n := env.startNode(t, ctx, cp)
	operator, _ := startOperator(t, ctx, cp)
	startKueue(t, ctx, cp)
	step("node, training operator and Kueue started")

	status := func(job, want string) {
		t.Helper()
		got := run(t, repo, aerie, "run", "status", "--repo", repo, "--kubeconfig", cp.Kubeconfig)
		for _, line := range strings.Split(got, "\n") {
			// NAME TEAM PHASE ...
			if f := strings.Fields(line); len(f) >= 3 && f[0] == job {
				if f[1] != "platform" || f[2] != want {
					t.Errorf("aerie run status: %s is platform's %s, want %s:\n%s", job, strings.Join(f[1:3], " "), want, got)
				} else {
					step("aerie run status: %s", line)
				}
				return
			}
		}
		t.Errorf("aerie run status does not list %s (want %s):\n%s", job, want, got)
	}

	// Both replicas run, and the job says so.
	running := pods.waitRunning(t, "lifecycle", 2, 3*time.Minute)
	step("lifecycle: master and worker running, %.1fs after the commit", running.Sub(p.Committed).Seconds())
	waitJob(t, ctx, cp, "lifecycle", time.Minute, "Running", func(j *kubeflowv1.PyTorchJob) bool { return hasCondition(j, kubeflowv1.JobRunning) })
	status("lifecycle", "Running")

	// The permanent failure: one attempt, exit code 3, the job Failed.
	waitJob(t, ctx, cp, "baddata", 3*time.Minute, "Failed", func(j *kubeflowv1.PyTorchJob) bool { return hasCondition(j, kubeflowv1.JobFailed) })
	status("baddata", "Failed")
	if got := pods.attempts("baddata"); len(got) != 1 || got[0].exit == nil || *got[0].exit != 3 {
		t.Errorf("baddata: attempts %v, want one that exited with 3 (exitcode.Data)", got)
	}
	step("baddata: Failed after one attempt with exit code 3")

	// The kill: once a checkpoint is committed, SIGKILL the master.
	first := waitCheckpoint(t, ctx, teamOut, "lifecycle", 2*time.Minute)
	restarting := make(chan error, 1)
	go func() {
		restarting <- watchJob(ctx, cp, "lifecycle", func(j *kubeflowv1.PyTorchJob) bool { return hasCondition(j, kubeflowv1.JobRestarting) })
	}()
	killed := time.Now()
	if err := n.Signal(runspec.TeamNamespace("platform"), "lifecycle-master-0", kubeflowv1.PyTorchJobDefaultContainerName, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	step("lifecycle: master SIGKILLed after checkpoint step %d", first)
	if err := <-restarting; err != nil {
		t.Fatalf("lifecycle never Restarting: %v", err)
	}
	// Freeze the operator so the transient Restarting phase holds still
	// while aerie run status reads it.
	if err := operator.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	status("lifecycle", "Restarting")
	if err := operator.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	// Only the dead master wrote checkpoints: the newest committed one now
	// is where the job must resume.
	resumeAt := latestCheckpoint(t, ctx, teamOut, "lifecycle")
	restarted := pods.waitRunning(t, "lifecycle", 4, 3*time.Minute)
	step("lifecycle: both replicas restarted, %.1fs after the kill", restarted.Sub(killed).Seconds())

	done := waitJob(t, ctx, cp, "lifecycle", 5*time.Minute, "Succeeded", func(j *kubeflowv1.PyTorchJob) bool { return hasCondition(j, kubeflowv1.JobSucceeded) })
	step("lifecycle: Succeeded")
	status("lifecycle", "Succeeded")

	var exits []string
	for _, a := range pods.attempts("lifecycle") {
		exits = append(exits, a.String())
	}
	if want := []string{"lifecycle-master-0:137", "lifecycle-master-0:0", "lifecycle-worker-0:130", "lifecycle-worker-0:0"}; !slices.Equal(sorted(exits), sorted(want)) {
		t.Errorf("lifecycle attempts (pod:exit code) = %v, want %v: the killed master (137), the worker that lost it (130, exitcode.PeerLost), and both again to success", exits, want)
	}
	m := readModel(t, ctx, teamOut, "lifecycle")
	for _, prefix := range []string{"models/", "checkpoints/"} {
		if objs, err := out.List(ctx, prefix); err != nil || len(objs) != 0 {
			t.Errorf("%s holds %d objects (err %v), want none: runs write under teams/<team>/ only", out.URI(prefix), len(objs), err)
		}
	}
	if want := teamOut.URI(fmt.Sprintf("checkpoints/lifecycle/%012d/", resumeAt)); m.Lineage.ResumedFrom != want {
		t.Errorf("model lineage resumedFrom = %q, want the last checkpoint before the kill, %q", m.Lineage.ResumedFrom, want)
	}
	if m.Lineage.WorldSize != 2 {
		t.Errorf("model lineage worldSize = %d, want 2", m.Lineage.WorldSize)
	}
	step("lifecycle: model %s, resumed from step %d", m.Run, resumeAt)

	// Memory used / requested: the runs that succeeded, as the node saw them.
	var used, requested int64
	for _, u := range n.Usage() {
		if u.Job == "lifecycle" && u.ExitCode == 0 {
			used += u.PeakRSSBytes
			requested += u.RequestBytes
			step("lifecycle: %s peak RSS %d MiB of %d MiB requested", u.Pod, u.PeakRSSBytes>>20, u.RequestBytes>>20)
		}
	}
	if requested == 0 {
		t.Error("the node recorded no successful lifecycle container")
	} else {
		step("lifecycle: memory used / requested = %.0f%%", 100*float64(used)/float64(requested))
	}

	// cleanPodPolicy All and the TTL clean up.
	waitGone(t, ctx, 2*time.Minute, "lifecycle's pods", func() (bool, error) {
		l, err := cp.Client.CoreV1().Pods(runspec.TeamNamespace("platform")).List(ctx, metav1.ListOptions{LabelSelector: "training.kubeflow.org/job-name=lifecycle"})
		return err == nil && len(l.Items) == 0, err
	})
	waitGone(t, ctx, 2*time.Minute, "PyTorchJob lifecycle", func() (bool, error) {
		_, err := cp.Dynamic.Resource(pytorchJobs).Namespace(runspec.TeamNamespace("platform")).Get(ctx, "lifecycle", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
	step("lifecycle: pods removed, and the job %.1fs after it completed (TTL)", time.Since(done.Status.CompletionTime.Time).Seconds())
}

// trainEnv is what a test that trains needs besides the cluster: the aerie
// and trainer binaries (the trainer built in the background), a bucket in
// fake-gcs-server, and a copy of this repository's clusters/, apps/ and
// models/ with no runs in apps/jobs/runs/ (runs).
type trainEnv struct {
	aerie, repo, runs string
	store             store.Store
	work              string
	trainer           chan string // its path, or "error: ..."
	emulator          string      // STORAGE_EMULATOR_HOST=host:port
}

func newTrainEnv(t *testing.T, ctx context.Context) *trainEnv {
	t.Helper()
	e := &trainEnv{work: t.TempDir(), trainer: make(chan string, 1)}
	e.aerie = buildCommand(t, e.work, "./tools/aerie/cmd/aerie")
	go func() { e.trainer <- buildCommandErr(e.work, "./trainer/cmd/trainer") }()

	gcs, err := fakestorage.NewServerWithOptions(fakestorage.Options{NoListener: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gcs.Stop)
	gcs.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: bucket})
	gcsHTTP := httptest.NewServer(gcs.HTTPHandler())
	t.Cleanup(gcsHTTP.Close)
	host := strings.TrimPrefix(gcsHTTP.URL, "http://")
	e.emulator = "STORAGE_EMULATOR_HOST=" + host
	t.Setenv("STORAGE_EMULATOR_HOST", host)
	if e.store, err = store.Open(ctx, "gs://"+bucket); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.store.Close() })

	e.repo = t.TempDir()
	for _, top := range []string{"clusters", "apps", "models"} {
		if err := os.CopyFS(filepath.Join(e.repo, top), os.DirFS(filepath.Join(repoRoot, top))); err != nil {
			t.Fatal(err)
		}
	}
	e.runs = filepath.Join(e.repo, "apps", "jobs", "runs")
	if err := os.RemoveAll(e.runs); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(e.runs, 0o755); err != nil {
		t.Fatal(err)
	}
	return e
}

// startNode starts the node, with the trainer binary for trainerImage and
// the bucket where Workload Identity would give the pods Google's.
func (e *trainEnv) startNode(t *testing.T, ctx context.Context, cp *cluster.ControlPlane) *node.Node {
	t.Helper()
	trainer := <-e.trainer
	if strings.HasPrefix(trainer, "error: ") {
		t.Fatal(trainer)
	}
	n, err := node.Start(ctx, node.Config{Name: "e2e-node", Client: cp.Client, Dir: filepath.Join(e.work, "node"),
		Images: node.Images{trainerImage: trainer}, Env: []string{e.emulator}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Stop)
	return n
}

// buildCommand builds the command package pkg (relative to the repository
// root) into dir and returns the binary's path.
func buildCommand(t *testing.T, dir, pkg string) string {
	t.Helper()
	p := buildCommandErr(dir, pkg)
	if strings.HasPrefix(p, "error: ") {
		t.Fatal(p)
	}
	return p
}

// buildCommandErr is buildCommand for a goroutine: it returns the path, or
// "error: " and what went wrong.
func buildCommandErr(dir, pkg string) string {
	bin := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Sprintf("error: go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// run runs a command in dir and returns its standard output.
func run(t *testing.T, dir, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", filepath.Base(bin), strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// writeDataset stores a dataset of perClass training images (and a quarter
// as many test images) per Fashion-MNIST class, each class a distinct
// brightness so that the model learns something, and returns its URI and
// digest.
func writeDataset(t *testing.T, ctx context.Context, s store.Store, perClass int) (uri, digest string) {
	t.Helper()
	dir := t.TempDir()
	shape := dataset.Shape{Height: 28, Width: 28, Channels: 1}
	w, err := dataset.NewWriter(dir, fashionClasses, shape, 256<<10)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	pixels := make([]byte, shape.Bytes())
	for _, split := range []struct {
		name string
		n    int
	}{{"train", perClass}, {"test", perClass / 4}} {
		for c := range fashionClasses {
			for range split.n {
				for i := range pixels {
					pixels[i] = byte(c*20 + rng.IntN(60))
				}
				if err := w.Add(split.name, c, pixels); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	_, m, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	prefix, _, err := dataset.Upload(ctx, s, "e2e", dir, m)
	if err != nil {
		t.Fatal(err)
	}
	return s.URI(prefix), dataset.Digest(m)
}

// truncateShard cuts the first train shard of dataset digest to half its
// size, as a damaged upload would leave it.
func truncateShard(t *testing.T, ctx context.Context, s store.Store, digest string) {
	t.Helper()
	key := path.Join(store.DatasetPrefix("e2e", digest), dataset.ShardFile("train", 0))
	r, err := s.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, key, bytes.NewReader(b[:len(b)/2]), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

// writeRun declares a run of team's with workers replicas of the small
// model that checkpoints every few steps and trains long enough to be
// killed midway.
func writeRun(t *testing.T, dir, name, team string, workers int, dataURI, digest string) {
	t.Helper()
	doc := fmt.Sprintf(`apiVersion: aerie.dev/v1alpha1
kind: TrainingRun
metadata:
  name: %s
spec:
  team: %s
  model:
    architecture: small
    epochs: 8
    batchSize: 32
  dataset:
    uri: %s
    sha256: %s
  workers:
    count: %d
  resources:
    cpu: 1
    memory: 1Gi
  output:
    uri: gs://%s
  checkpoint:
    everySteps: 4
  gates:
    minTestAccuracy: 0.1
    minClassAccuracy: 0
  image: %s
  deadline: 10m
  maxRestarts: 2
`, name, team, dataURI, digest, workers, bucket, trainerImageRef)
	if err := os.WriteFile(filepath.Join(dir, name+".yaml"), []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
}

// shortTTL adds a patch to the jobs Kustomization at path that keeps
// finished jobs for seconds rather than the rendered day.
func shortTTL(t *testing.T, path string, seconds int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b = append(bytes.TrimRight(b, "\n"), fmt.Sprintf(`
  # e2e: finished jobs live for seconds, so the test sees the TTL act.
  patches:
    - target: {group: kubeflow.org, kind: PyTorchJob}
      patch: |
        - op: replace
          path: /spec/runPolicy/ttlSecondsAfterFinished
          value: %d
`, seconds)...)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// attempt is one pod of a job, as the test saw it.
type attempt struct {
	job     string
	ns, pod string
	uid     types.UID
	running time.Time // when the test first saw its container running
	exit    *int32    // its container's exit code, once terminated
	exited  time.Time // when the test first saw it terminated
}

func (a attempt) String() string {
	if a.exit == nil {
		return a.pod + ":running"
	}
	return a.pod + ":" + strconv.Itoa(int(*a.exit))
}

// podRecorder keeps every training pod the test has seen, by UID: pods are
// deleted and replaced as the job restarts, and cleaned up when it ends.
type podRecorder struct {
	mu    sync.Mutex
	pods  map[types.UID]*attempt
	order []types.UID
}

func recordPods(t *testing.T, ctx context.Context, cp *cluster.ControlPlane) *podRecorder {
	r := &podRecorder{pods: map[types.UID]*attempt{}}
	// Every namespace: each team's jobs run in its own.
	f := informers.NewSharedInformerFactory(cp.Client, 0)
	inf := f.Core().V1().Pods().Informer()
	see := func(obj any) {
		pod, ok := obj.(*corev1.Pod)
		if !ok {
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		a, ok := r.pods[pod.UID]
		if !ok {
			a = &attempt{job: pod.Labels["training.kubeflow.org/job-name"], ns: pod.Namespace, pod: pod.Name, uid: pod.UID}
			r.pods[pod.UID] = a
			r.order = append(r.order, pod.UID)
		}
		for _, cs := range pod.Status.ContainerStatuses {
			if cs.Name != kubeflowv1.PyTorchJobDefaultContainerName {
				continue
			}
			if cs.State.Running != nil && a.running.IsZero() {
				a.running = time.Now()
			}
			if term := cs.State.Terminated; term != nil && a.exit == nil {
				code := term.ExitCode
				a.exit, a.exited = &code, time.Now()
			}
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    see,
		UpdateFunc: func(_, obj any) { see(obj) },
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); inf.Run(ctx.Done()) }()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

// all returns every pod in the order they were created.
func (r *podRecorder) all() []attempt {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]attempt, 0, len(r.order))
	for _, uid := range r.order {
		out = append(out, *r.pods[uid])
	}
	return out
}

// attempts returns job's pods in the order they were created.
func (r *podRecorder) attempts(job string) []attempt {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []attempt
	for _, uid := range r.order {
		if r.pods[uid].job == job {
			out = append(out, *r.pods[uid])
		}
	}
	return out
}

// waitRunning waits until n of job's pods have been seen running and
// returns when the last of them was.
func (r *podRecorder) waitRunning(t *testing.T, job string, n int, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var last time.Time
		count := 0
		as := r.attempts(job)
		for _, a := range as {
			if !a.running.IsZero() {
				count++
				if a.running.After(last) {
					last = a.running
				}
			}
		}
		if count >= n {
			return last
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d of %d pods seen running after %s: %v", job, count, n, timeout, as)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func hasCondition(j *kubeflowv1.PyTorchJob, typ kubeflowv1.JobConditionType) bool {
	for _, c := range j.Status.Conditions {
		if c.Type == typ && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// watchJob watches the PyTorchJob name (in whichever team's namespace: run
// names are unique) until cond holds for one of its versions, seeing every
// update in order.
func watchJob(ctx context.Context, cp *cluster.ControlPlane, name string, cond func(*kubeflowv1.PyTorchJob) bool) error {
	ri := cp.Dynamic.Resource(pytorchJobs)
	lw := &cache.ListWatch{
		ListFunc: func(o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = "metadata.name=" + name
			return ri.List(ctx, o)
		},
		WatchFunc: func(o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = "metadata.name=" + name
			return ri.Watch(ctx, o)
		},
	}
	var convErr error
	_, err := watchtools.UntilWithSync(ctx, lw, &unstructured.Unstructured{}, nil, func(ev watch.Event) (bool, error) {
		u, ok := ev.Object.(*unstructured.Unstructured)
		if !ok || ev.Type == watch.Deleted {
			return false, nil
		}
		var j kubeflowv1.PyTorchJob
		if convErr = runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &j); convErr != nil {
			return false, convErr
		}
		return cond(&j), nil
	})
	return err
}

// waitJob polls the PyTorchJob name (in whichever team's namespace) until
// cond holds, for at most timeout, and returns it. A job that fails while the test waits for something else
// ends the wait at once.
func waitJob(t *testing.T, ctx context.Context, cp *cluster.ControlPlane, name string, timeout time.Duration, what string, cond func(*kubeflowv1.PyTorchJob) bool) *kubeflowv1.PyTorchJob {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		u, err := getJob(ctx, cp, name)
		if err == nil {
			var j kubeflowv1.PyTorchJob
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &j); err != nil {
				t.Fatal(err)
			}
			if cond(&j) {
				return &j
			}
			b, _ := json.Marshal(j.Status)
			last = string(b)
			if what != "Failed" && hasCondition(&j, kubeflowv1.JobFailed) {
				t.Fatalf("PyTorchJob %s failed while the test waited for %s: %s", name, what, last)
			}
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("PyTorchJob %s not %s after %s: %s", name, what, timeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// getJob returns the PyTorchJob name from whichever namespace holds it.
func getJob(ctx context.Context, cp *cluster.ControlPlane, name string) (*unstructured.Unstructured, error) {
	l, err := cp.Dynamic.Resource(pytorchJobs).List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name})
	if err != nil {
		return nil, err
	}
	switch len(l.Items) {
	case 0:
		return nil, apierrors.NewNotFound(pytorchJobs.GroupResource(), name)
	case 1:
		return &l.Items[0], nil
	}
	return nil, fmt.Errorf("%d PyTorchJobs named %s", len(l.Items), name)
}

// committedSteps lists the steps of run's committed checkpoints in s.
func committedSteps(ctx context.Context, s store.Store, run string) ([]int64, error) {
	objs, err := s.List(ctx, "checkpoints/"+run+"/")
	if err != nil {
		return nil, err
	}
	var steps []int64
	for _, o := range objs {
		rest := strings.TrimPrefix(o.Key, "checkpoints/"+run+"/")
		dir, file, ok := strings.Cut(rest, "/")
		if !ok || file != "COMMITTED" {
			continue
		}
		if n, err := strconv.ParseInt(dir, 10, 64); err == nil {
			steps = append(steps, n)
		}
	}
	slices.Sort(steps)
	return steps, nil
}

// waitCheckpoint waits for run's first committed checkpoint and returns its
// step.
func waitCheckpoint(t *testing.T, ctx context.Context, s store.Store, run string, timeout time.Duration) int64 {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		steps, err := committedSteps(ctx, s, run)
		if err != nil {
			t.Fatal(err)
		}
		if len(steps) > 0 {
			return steps[len(steps)-1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no committed checkpoint in %s after %s", run, s.URI("checkpoints/"+run+"/"), timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func latestCheckpoint(t *testing.T, ctx context.Context, s store.Store, run string) int64 {
	t.Helper()
	steps, err := committedSteps(ctx, s, run)
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) == 0 {
		t.Fatalf("%s: no committed checkpoint", run)
	}
	return steps[len(steps)-1]
}

// readModel reads the manifest of run's only model version.
func readModel(t *testing.T, ctx context.Context, s store.Store, run string) *manifest.Manifest {
	t.Helper()
	objs, err := s.List(ctx, "models/"+run+"/")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range objs {
		if strings.HasSuffix(o.Key, "/manifest.json") {
			keys = append(keys, o.Key)
		}
	}
	if len(keys) != 1 {
		t.Fatalf("%s: model manifests %v, want one", s.URI("models/"+run+"/"), keys)
	}
	rc, err := s.Get(ctx, keys[0])
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Parse(b)
	if err != nil {
		t.Fatalf("%s: %v", s.URI(keys[0]), err)
	}
	return m
}

// waitGone polls gone until it reports true, for at most timeout.
func waitGone(t *testing.T, ctx context.Context, timeout time.Duration, what string, gone func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := gone()
		if ok {
			return
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			t.Fatalf("%s still there after %s (%v)", what, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
