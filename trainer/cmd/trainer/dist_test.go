package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aerie-ml/aerie/internal/exitcode"
	"github.com/aerie-ml/aerie/internal/model"
	"github.com/aerie-ml/aerie/trainer/internal/launch"
)

// The distributed tests run the trainer as real processes: this test binary
// re-executes itself as `trainer` when envAsMain is set.
const envAsMain = "AERIE_TRAINER_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(envAsMain) == "1" {
		main()
	}
	os.Exit(m.Run())
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// launchTrain runs `trainer train args` as n local ranks.
func launchTrain(t *testing.T, n int, args []string) (string, error) {
	t.Helper()
	reps, err := launch.Local(n, append([]string{"train"}, args...))
	if err != nil {
		t.Fatal(err)
	}
	for i := range reps {
		reps[i].Env = append(reps[i].Env, envAsMain+"=1", "GOMAXPROCS=1")
	}
	var out syncBuf
	err = launch.Run(context.Background(), reps, launch.Options{Exe: os.Args[0], Stdout: &out, Stderr: &out, Grace: 5 * time.Second})
	return out.String(), err
}

// weights reads the one model version under out.
func weights(t *testing.T, out string) map[string][]float32 {
	t.Helper()
	versions, _ := filepath.Glob(filepath.Join(out, "models/t/*/model.safetensors"))
	if len(versions) != 1 {
		t.Fatalf("model versions under %s: %v, want one", out, versions)
	}
	f, err := os.Open(versions[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ts, _, err := model.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	w := map[string][]float32{}
	for _, tn := range ts {
		w[tn.Name] = tn.Float32s()
	}
	return w
}

// relDiff is max|a−b| / max|a| over every parameter tensor.
func relDiff(t *testing.T, a, b map[string][]float32) float64 {
	t.Helper()
	worst := 0.0
	for name, av := range a {
		bv := b[name]
		if len(av) != len(bv) {
			t.Fatalf("tensor %s: %d vs %d values", name, len(av), len(bv))
		}
		var d, m float64
		for i := range av {
			d = max(d, math.Abs(float64(av[i])-float64(bv[i])))
			m = max(m, math.Abs(float64(av[i])))
		}
		if m > 0 {
			worst = max(worst, d/m)
		}
	}
	return worst
}

// distData ingests the training data of the distributed tests into a
// file:// store (in the dataset format: shards of 32 samples, so a rank's
// part of an epoch spans several shards and windows).
func distData(t *testing.T, nTrain int) []string {
	t.Helper()
	uri, digest := synthetic(t, nTrain, 60)
	// Batch 24 splits evenly over 1, 2 and 3 ranks; dropout and the
	// augmentations are on: all are functions of the seed and the
	// sample's index, so the ranks draw what one process would.
	return []string{"--arch=small", "--batch-size=24", "--lr=0.01", "--seed=3", "--dropout=true",
		"--rotation=10", "--crop-padding=4", "--flip", "--brightness=0.1", "--contrast=0.2", "--erasing=0.25",
		"--val-fraction=0.2", "--name=t", "--data=" + uri, "--dataset-sha256=" + digest}
}

// TestWorkersEquivalent is issue 4 §3: K steps on 1, 2 and 3 worker
// processes, same global batch and seed, give the same parameters within
// 1e-5 relative (only the order of the float32 sums differs).
func TestWorkersEquivalent(t *testing.T) {
	if testing.Short() {
		t.Skip("trains three times in real processes")
	}
	// 16 steps. Over many more steps the rounding differences of the sums
	// can grow: a ReLU or max-pool that flips on one example turns 1e-7
	// into 1e-3 (measured: 160 steps, 3 workers vs 1, 8e-3).
	args := append(distData(t, 240), "--epochs=2")
	var ref map[string][]float32
	for _, n := range []int{1, 2, 3} {
		out := t.TempDir()
		log, err := launchTrain(t, n, append(args, "--output="+out))
		if err != nil {
			t.Fatalf("%d workers: %v\n%s", n, err, log)
		}
		w := weights(t, out)
		if ref == nil {
			ref = w
			continue
		}
		d := relDiff(t, ref, w)
		t.Logf("%d workers vs 1: max relative difference %.2g", n, d)
		if d > 1e-5 {
			t.Errorf("%d workers vs 1: parameters differ by %.3g relative, want <= 1e-5", n, d)
		}
	}
}

// TestKillAndResume is issue 4 §5: a rank is SIGKILLed mid-epoch, the
// other rank exits with the retryable code, and a restart, with the same or
// another WORLD_SIZE, resumes from the newest checkpoint (so it loses at
// most one checkpoint interval) and ends where an uninterrupted run ends.
func TestKillAndResume(t *testing.T) {
	if testing.Short() {
		t.Skip("trains three times in real processes")
	}
	tests := []struct {
		name           string
		first, restart int
		clean          int
		tolerance      float64
	}{
		// Same ranks, same sums: the resume is exact.
		{"same world size", 2, 2, 2, 0},
		// Steps after the restart sum over 3 shards instead of 2 (measured
		// 2.8e-7 on this configuration).
		{"world size 2 then 3", 2, 3, 2, 1e-5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			killAndResume(t, tt.first, tt.restart, tt.clean, tt.tolerance)
		})
	}
}

func killAndResume(t *testing.T, first, restart, clean int, tolerance float64) {
	const every = 20
	args := append(distData(t, 2400), "--epochs=2", "--checkpoint-every="+strconv.Itoa(every))
	out := t.TempDir()

	// First attempt, started by hand so its last rank can be killed.
	reps, err := launch.Local(first, append([]string{"train"}, append(args, "--output="+out)...))
	if err != nil {
		t.Fatal(err)
	}
	type proc struct {
		cmd  *exec.Cmd
		out  syncBuf
		done chan struct{}
	}
	procs := make([]*proc, len(reps))
	for i, rep := range reps {
		p := &proc{done: make(chan struct{})}
		p.cmd = exec.Command(os.Args[0], rep.Args...)
		p.cmd.Env = append(append(os.Environ(), rep.Env...), envAsMain+"=1", "GOMAXPROCS=1")
		p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { _ = p.cmd.Wait(); close(p.done) }()
		procs[i] = p
		t.Cleanup(func() { _ = p.cmd.Process.Kill(); <-p.done })
	}
	// Kill once the second checkpoint is committed: mid-epoch (80 steps).
	deadline := time.Now().Add(3 * time.Minute)
	for newestCheckpoint(out) < 2*every {
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint at step %d after 3 minutes:\n%s", 2*every, procs[0].out.String())
		}
		select {
		case <-procs[0].done:
			t.Fatalf("rank 0 ended before the kill:\n%s", procs[0].out.String())
		case <-time.After(5 * time.Millisecond):
		}
	}
	victim := procs[len(procs)-1]
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for _, p := range procs[:len(procs)-1] {
		<-p.done
		if code := p.cmd.ProcessState.ExitCode(); code != exitcode.PeerLost {
			t.Fatalf("a rank exited %d after its peer was killed, want %d:\n%s", code, exitcode.PeerLost, p.out.String())
		}
	}
	committed := newestCheckpoint(out)

	log, err := launchTrain(t, restart, append(args, "--output="+out))
	if err != nil {
		t.Fatalf("restart on %d workers: %v\n%s", restart, err, log)
	}
	resumed := resumedStep(log)
	t.Logf("killed after checkpoint %d; the restart on %d workers resumed at step %d", committed, restart, resumed)
	if resumed != committed {
		t.Errorf("restart resumed at step %d, want the newest checkpoint, step %d", resumed, committed)
	}

	ref := t.TempDir()
	log, err = launchTrain(t, clean, append(args, "--output="+ref))
	if err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, log)
	}
	d := relDiff(t, weights(t, ref), weights(t, out))
	t.Logf("resumed vs uninterrupted on %d workers: max relative difference %.2g", clean, d)
	if d > tolerance {
		t.Errorf("resumed run differs from the uninterrupted one by %.3g relative, want <= %g", d, tolerance)
	}
}

// newestCheckpoint is the highest committed checkpoint step under out.
func newestCheckpoint(out string) int64 {
	dirs, _ := filepath.Glob(filepath.Join(out, "checkpoints/t/*/COMMITTED"))
	var newest int64
	for _, d := range dirs {
		if s, err := strconv.ParseInt(strings.TrimLeft(filepath.Base(filepath.Dir(d)), "0"), 10, 64); err == nil {
			newest = max(newest, s)
		}
	}
	return newest
}

// resumedStep finds the "resuming" line of rank 0 in the launcher's output.
func resumedStep(log string) int64 {
	for _, line := range strings.Split(log, "\n") {
		i := strings.IndexByte(line, '{')
		if !strings.HasPrefix(line, "[rank 0]") || i < 0 {
			continue
		}
		var l struct {
			Msg  string `json:"msg"`
			Step int64  `json:"step"`
		}
		if json.Unmarshal([]byte(line[i:]), &l) == nil && l.Msg == "resuming" {
			return l.Step
		}
	}
	return -1
}
