//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	kubeflowv1 "github.com/kubeflow/training-operator/pkg/apis/kubeflow.org/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/aerie-ml/aerie/tools/e2e/cluster"
	"github.com/aerie-ml/aerie/tools/e2e/node"
)

var clusterQueues = schema.GroupVersionResource{Group: "kueue.x-k8s.io", Version: "v1beta2", Resource: "clusterqueues"}

// TestKueueSharesCapacity is two teams sharing the cluster through Kueue's
// real controller manager, with apps/teams' ClusterQueues cut down to one
// CPU each (the cohort aerie: two CPUs) and runs of one replica of one CPU:
//
//  1. platform declares three runs and research one, in one commit;
//  2. fair share: Kueue settles on one job of each team, and platform's
//     other two wait suspended, without pods (a platform job that borrowed
//     research's CPU before research's job was queued is preempted for it);
//  3. borrowing: once research's job finishes, platform borrows research's
//     idle CPU and a second platform job starts while its first still runs;
//  4. capacity freed: the last job starts only when one of those finishes,
//     and every job succeeds.
//
// The admitted jobs' trainer processes are held stopped (SIGSTOP) until the
// test has seen each state, so the states do not depend on how fast the
// trainer is. Flux reconciles the jobs once more while they run: the
// rendered runPolicy.suspend: true must not suspend an admitted job again.
func TestKueueSharesCapacity(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	step := stepper(t)

	env := newTrainEnv(t, ctx)
	dataURI, digest := writeDataset(t, ctx, env.store, 40)
	platform := []string{"platform-a", "platform-b", "platform-c"}
	for _, name := range platform {
		writeRun(t, env.runs, name, "platform", 1, dataURI, digest)
	}
	writeRun(t, env.runs, "research-a", "research", 1, dataURI, digest)
	run(t, env.repo, env.aerie, "run", "render", "--repo", env.repo, "--revision", strings.Repeat("e2", 20))
	nominalCPU(t, filepath.Join(env.repo, "clusters", "dev", "teams.yaml"), 1)
	step("runs of platform (3) and research (1) declared; each team's nominal quota 1 CPU")

	p := startGitOps(t, ctx, env.repo, step)
	cp := p.cp
	pods := recordPods(t, ctx, cp)
	for _, name := range platformKustomizations {
		waitReady(t, ctx, cp, kustomizations, "flux-system", name, 5*time.Minute)
	}
	step("Flux applied Kueue, the teams' queues and the 4 jobs")
	n := env.startNode(t, ctx, cp)
	hold := holdTrainers(t, ctx, pods, n)
	startOperator(t, ctx, cp)
	startKueue(t, ctx, cp)
	step("node, training operator and Kueue started")

	// 2. One job of each team, the rest waiting.
	waitQueues(t, ctx, cp, queueCounts{"platform": {admitted: 1, pending: 2}, "research": {admitted: 1}})
	first := admittedJobs(t, ctx, cp, platform)[0]
	pods.waitRunning(t, first, 1, 3*time.Minute)
	pods.waitRunning(t, "research-a", 1, 3*time.Minute)
	step("fair share: %s and research-a admitted and running; 2 platform jobs pending", first)
	waiting := without(platform, first)
	for _, job := range waiting {
		hold.wake(job) // a preempted run handles its SIGTERM only if it runs
	}
	checkWaiting(t, ctx, cp, waiting)
	step("%v wait suspended, without pods", waiting)
	status := run(t, env.repo, env.aerie, "run", "status", "--repo", env.repo, "--kubeconfig", cp.Kubeconfig, "--team", "platform")
	for _, job := range waiting {
		if !slices.ContainsFunc(strings.Split(status, "\n"), func(l string) bool {
			// NAME TEAM PHASE ...
			f := strings.Fields(l)
			return len(f) >= 3 && f[0] == job && f[1] == "platform" && f[2] == "Suspended"
		}) {
			t.Errorf("aerie run status does not show %s Suspended:\n%s", job, status)
		}
	}
	step("aerie run status shows them Suspended")

	// A job Flux suspended again would be unsuspended by Kueue at once, but
	// its generation would show both changes.
	admitted := map[string]int64{}
	for _, job := range []string{first, "research-a"} {
		admitted[job] = waitJob(t, ctx, cp, job, time.Minute, "found", func(*kubeflowv1.PyTorchJob) bool { return true }).Generation
	}
	requestReconcile(t, ctx, cp, "jobs")
	for job, gen := range admitted {
		j := waitJob(t, ctx, cp, job, time.Minute, "found", func(*kubeflowv1.PyTorchJob) bool { return true })
		if s := j.Spec.RunPolicy.Suspend; s == nil || *s || j.Generation != gen {
			t.Errorf("%s after Flux reconciled the jobs again: generation %d (was %d), want unchanged and unsuspended: Flux must leave runPolicy.suspend to Kueue", job, j.Generation, gen)
		}
	}
	step("Flux reconciled the jobs again and left the admitted ones alone")

	// 3. Research's job finishes; platform borrows its CPU.
	hold.release("research-a")
	waitJob(t, ctx, cp, "research-a", 3*time.Minute, "Succeeded", func(j *kubeflowv1.PyTorchJob) bool { return hasCondition(j, kubeflowv1.JobSucceeded) })
	freed := pods.lastExit("research-a")
	waitQueues(t, ctx, cp, queueCounts{"platform": {admitted: 2, pending: 1, borrowedCPU: 1}, "research": {}})
	second := without(admittedJobs(t, ctx, cp, platform), first)[0]
	pods.waitRunning(t, second, 1, 3*time.Minute)
	step("borrowing: %s started %.1fs after research-a exited, while %s still runs", second, pods.runningSince(second, freed).Sub(freed).Seconds(), first)
	last := without(waiting, second)
	checkWaiting(t, ctx, cp, last)

	// 4. The first platform job finishes; the last one starts. It may have
	// run before, borrowing research's CPU until Kueue reclaimed it: wait
	// for a run after those.
	ranBefore := pods.ran(last[0])
	hold.release(first)
	waitJob(t, ctx, cp, first, 3*time.Minute, "Succeeded", func(j *kubeflowv1.PyTorchJob) bool { return hasCondition(j, kubeflowv1.JobSucceeded) })
	freed = pods.lastExit(first)
	started := pods.waitRunning(t, last[0], ranBefore+1, 3*time.Minute)
	if started.Before(freed) {
		t.Errorf("%s started at %s, before %s freed its CPU at %s", last[0], started, first, freed)
	}
	step("capacity freed: %s started %.1fs after %s exited", last[0], started.Sub(freed).Seconds(), first)
	hold.releaseAll()
	for _, job := range append([]string{second}, last...) {
		waitJob(t, ctx, cp, job, 3*time.Minute, "Succeeded", func(j *kubeflowv1.PyTorchJob) bool { return hasCondition(j, kubeflowv1.JobSucceeded) })
	}
	step("all 4 jobs Succeeded")
	for _, job := range platform {
		if as := pods.attempts(job); len(as) > 1 {
			step("reclaim: %s ran %d times: it had borrowed research's CPU before research-a was queued, and Kueue preempted it for research-a", job, len(as))
		}
	}
}

// nominalCPU patches every ClusterQueue the teams Kustomization at path
// applies to a nominal CPU quota of cpu cores.
func nominalCPU(t *testing.T, path string, cpu int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// teams is the file's last document.
	b = append(bytes.TrimRight(b, "\n"), fmt.Sprintf(`
  # e2e: a cluster of %[1]d CPU per team.
  patches:
    - target: {group: kueue.x-k8s.io, kind: ClusterQueue}
      patch: |
        - op: test
          path: /spec/resourceGroups/0/flavors/0/resources/0/name
          value: cpu
        - op: replace
          path: /spec/resourceGroups/0/flavors/0/resources/0/nominalQuota
          value: "%[1]d"
`, cpu)...)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// queueCounts are the ClusterQueue states a test waits for, by name.
type queueCounts map[string]struct{ admitted, pending, borrowedCPU int64 }

// waitQueues polls the ClusterQueues' status until every one named in want
// has exactly its admitted and pending workloads and borrowed CPU.
func waitQueues(t *testing.T, ctx context.Context, cp *cluster.ControlPlane, want queueCounts) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	var last string
	for {
		var got []string
		ok := true
		for name, w := range want {
			u, err := cp.Dynamic.Resource(clusterQueues).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			admitted, _, _ := unstructured.NestedInt64(u.Object, "status", "admittedWorkloads")
			pending, _, _ := unstructured.NestedInt64(u.Object, "status", "pendingWorkloads")
			borrowed := borrowedCPU(u)
			ok = ok && admitted == w.admitted && pending == w.pending && borrowed == w.borrowedCPU
			got = append(got, fmt.Sprintf("%s: %d admitted, %d pending, %d CPU borrowed", name, admitted, pending, borrowed))
		}
		if ok {
			return
		}
		last = strings.Join(got, "; ")
		if time.Now().After(deadline) {
			t.Fatalf("ClusterQueues not as wanted (%v) after 3m: %s", want, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func borrowedCPU(cq *unstructured.Unstructured) int64 {
	flavors, _, _ := unstructured.NestedSlice(cq.Object, "status", "flavorsUsage")
	var cores int64
	for _, f := range flavors {
		res, _, _ := unstructured.NestedSlice(f.(map[string]any), "resources")
		for _, r := range res {
			m := r.(map[string]any)
			if m["name"] == "cpu" {
				if q, err := resource.ParseQuantity(fmt.Sprint(m["borrowed"])); err == nil {
					cores += q.Value()
				}
			}
		}
	}
	return cores
}

// checkWaiting checks that each job is suspended and, once the operator has
// removed whatever pods a preemption left, has none.
func checkWaiting(t *testing.T, ctx context.Context, cp *cluster.ControlPlane, jobs []string) {
	t.Helper()
	for _, job := range jobs {
		j := waitJob(t, ctx, cp, job, time.Minute, "found", func(*kubeflowv1.PyTorchJob) bool { return true })
		if s := j.Spec.RunPolicy.Suspend; s == nil || !*s {
			t.Errorf("%s waits for quota but runPolicy.suspend = %v, want true", job, s)
		}
		waitGone(t, ctx, time.Minute, job+"'s pods", func() (bool, error) {
			l, err := cp.Client.CoreV1().Pods(j.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "training.kubeflow.org/job-name=" + job})
			return err == nil && len(l.Items) == 0, err
		})
	}
}

// requestReconcile asks kustomize-controller to reconcile the Kustomization
// name now and waits until it has.
func requestReconcile(t *testing.T, ctx context.Context, cp *cluster.ControlPlane, name string) {
	t.Helper()
	at := time.Now().Format(time.RFC3339Nano)
	ks := cp.Dynamic.Resource(kustomizations).Namespace("flux-system")
	patch := fmt.Sprintf(`{"metadata":{"annotations":{"reconcile.fluxcd.io/requestedAt":%q}}}`, at)
	if _, err := ks.Patch(ctx, name, "application/merge-patch+json", []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitGone(t, ctx, 2*time.Minute, "the reconcile request of Kustomization "+name, func() (bool, error) {
		u, err := ks.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		handled, _, _ := unstructured.NestedString(u.Object, "status", "lastHandledReconcileAt")
		ready, _ := condition(u, "Ready")
		return handled == at && ready == "True", nil
	})
}

// admittedJobs returns the jobs among names that Kueue has unsuspended.
func admittedJobs(t *testing.T, ctx context.Context, cp *cluster.ControlPlane, names []string) []string {
	t.Helper()
	var out []string
	for _, name := range names {
		j := waitJob(t, ctx, cp, name, time.Minute, "found", func(*kubeflowv1.PyTorchJob) bool { return true })
		if s := j.Spec.RunPolicy.Suspend; s != nil && !*s {
			out = append(out, name)
		}
	}
	if len(out) == 0 {
		t.Fatalf("none of %v unsuspended", names)
	}
	return out
}

func without(names []string, drop string) []string {
	var out []string
	for _, n := range names {
		if n != drop {
			out = append(out, n)
		}
	}
	return out
}

// runningSince is when the test first saw one of job's pods running at or
// after since: a job Kueue preempted ran before, and that run does not count.
// ran counts job's pods seen running so far.
func (r *podRecorder) ran(job string) int {
	n := 0
	for _, a := range r.attempts(job) {
		if !a.running.IsZero() {
			n++
		}
	}
	return n
}

// lastExit is when job's last pod exited.
func (r *podRecorder) lastExit(job string) time.Time {
	as := r.attempts(job)
	if len(as) == 0 {
		return time.Time{}
	}
	return as[len(as)-1].exited
}

func (r *podRecorder) runningSince(job string, since time.Time) time.Time {
	var first time.Time
	for _, a := range r.attempts(job) {
		if !a.running.Before(since) && (first.IsZero() || a.running.Before(first)) {
			first = a.running
		}
	}
	return first
}

// trainerHold stops every trainer process (SIGSTOP) as soon as the test sees
// its pod running, until the test releases its job, so admitted jobs hold
// their quota for as long as the test needs.
type trainerHold struct {
	pods *podRecorder
	node *node.Node

	mu       sync.Mutex
	stopped  map[string]bool // pod UIDs
	released map[string]bool
	all      bool
}

func holdTrainers(t *testing.T, ctx context.Context, pods *podRecorder, n *node.Node) *trainerHold {
	h := &trainerHold{pods: pods, node: n, stopped: map[string]bool{}, released: map[string]bool{}}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			h.stopNew()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { cancel(); <-done; h.releaseAll() })
	return h
}

func (h *trainerHold) stopNew() {
	type proc struct{ job, ns, pod, uid string }
	var running []proc
	h.pods.mu.Lock()
	for _, uid := range h.pods.order {
		if a := h.pods.pods[uid]; !a.running.IsZero() && a.exit == nil {
			running = append(running, proc{a.job, a.ns, a.pod, string(uid)})
		}
	}
	h.pods.mu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range running {
		if h.all || h.released[p.job] || h.stopped[p.uid] {
			continue
		}
		if err := h.node.Signal(p.ns, p.pod, kubeflowv1.PyTorchJobDefaultContainerName, syscall.SIGSTOP); err != nil {
			continue
		}
		h.stopped[p.uid] = true
	}
}

// release lets job's processes run (SIGCONT) and stops holding it.
func (h *trainerHold) release(job string) {
	h.mu.Lock()
	h.released[job] = true
	h.mu.Unlock()
	h.cont(func(j string) bool { return j == job })
}

// wake lets job's current processes run, and still holds its next ones.
func (h *trainerHold) wake(job string) {
	h.cont(func(j string) bool { return j == job })
}

// releaseAll lets every process run and holds no more.
func (h *trainerHold) releaseAll() {
	h.mu.Lock()
	h.all = true
	h.mu.Unlock()
	h.cont(func(string) bool { return true })
}

func (h *trainerHold) cont(match func(job string) bool) {
	for _, a := range h.pods.all() {
		if match(a.job) && a.exit == nil {
			_ = h.node.Signal(a.ns, a.pod, kubeflowv1.PyTorchJobDefaultContainerName, syscall.SIGCONT)
		}
	}
}
