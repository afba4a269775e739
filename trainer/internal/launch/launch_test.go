package launch

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/aerie-ml/aerie/internal/exitcode"
	"github.com/aerie-ml/aerie/trainer/internal/dist"
	"github.com/aerie-ml/aerie/trainer/internal/progress"
)

// The test binary doubles as a replica: Run starts it with envRole set.
const envRole = "AERIE_LAUNCH_TEST_ROLE"

func TestMain(m *testing.M) {
	if role := os.Getenv(envRole); role != "" {
		os.Exit(replica(role))
	}
	os.Exit(m.Run())
}

func replica(role string) int {
	ctx := context.Background()
	env, err := dist.EnvFrom(os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return exitcode.Of(err)
	}
	switch role {
	case "hello":
		fmt.Printf("hello from %d of %d\nargs %q", env.Rank, env.WorldSize, os.Args[1:])
		fmt.Fprintf(os.Stderr, "stderr of %d\n", env.Rank)
		return 0
	case "step-fail":
		// A step line as the trainer logs it under a drawing launcher,
		// then the failure of "fail".
		fmt.Fprintf(os.Stderr, `{"level":"INFO","msg":"step","rank":%d,"step":1,"total":10,"epoch":1,"epochs":1,"loss":1.5,"accuracy":0.5,"imagesPerSecond":100}`+"\n", env.Rank)
		return replica("fail")
	case "fail":
		// Rank 1 fails as a trainer that lost its peer; the others would
		// run forever but stop on SIGTERM as the trainer does.
		if env.Rank == 1 {
			time.Sleep(200 * time.Millisecond)
			return exitcode.PeerLost
		}
		ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM)
		defer stop()
		<-ctx.Done()
		return exitcode.Interrupted
	case "stubborn":
		signal.Ignore(syscall.SIGTERM)
		if env.Rank == 0 {
			return exitcode.Data
		}
		time.Sleep(time.Hour)
		return 0
	case "allreduce":
		c, err := dist.Join(ctx, dist.Config{Env: env})
		if err == nil {
			buf := []float32{float32(env.Rank + 1)}
			if err = c.AllReduce(ctx, buf); err == nil {
				fmt.Printf("sum %v\n", buf[0])
				err = c.Close(ctx)
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		return exitcode.Of(err)
	}
	return 99
}

func withRole(reps []Replica, role string) []Replica {
	for i := range reps {
		reps[i].Env = append(reps[i].Env, envRole+"="+role)
	}
	return reps
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := strings.Split(strings.TrimSpace(s.b.String()), "\n")
	sort.Strings(l)
	return l
}

func TestRunPrefixesOutput(t *testing.T) {
	reps, err := Local(3, []string{"train", "--epochs=1"})
	if err != nil {
		t.Fatal(err)
	}
	var out, errs syncBuffer
	if err := Run(context.Background(), withRole(reps, "hello"), Options{Stdout: &out, Stderr: &errs}); err != nil {
		t.Fatalf("Run: %v", err)
	}
	want := []string{
		`[rank 0] args ["train" "--epochs=1"]`, `[rank 0] hello from 0 of 3`,
		`[rank 1] args ["train" "--epochs=1"]`, `[rank 1] hello from 1 of 3`,
		`[rank 2] args ["train" "--epochs=1"]`, `[rank 2] hello from 2 of 3`,
	}
	if diff := cmp.Diff(want, out.lines()); diff != "" {
		t.Errorf("stdout (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"[rank 0] stderr of 0", "[rank 1] stderr of 1", "[rank 2] stderr of 2"}, errs.lines()); diff != "" {
		t.Errorf("stderr (-want +got):\n%s", diff)
	}
}

func TestRunFirstFailureWins(t *testing.T) {
	tests := []struct {
		role  string
		world int
		want  int
		rank  int
	}{
		{"fail", 3, exitcode.PeerLost, 1},
		{"stubborn", 2, exitcode.Data, 0}, // rank 1 ignores SIGTERM: SIGKILL after the grace period
	}
	for _, tt := range tests {
		t.Run(tt.role, func(t *testing.T) {
			reps, err := Local(tt.world, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = Run(context.Background(), withRole(reps, tt.role), Options{Grace: time.Second})
			if got := exitcode.Of(err); got != tt.want || !strings.Contains(fmt.Sprint(err), fmt.Sprintf("rank %d exited with code %d", tt.rank, tt.want)) {
				t.Errorf("Run() = %v (code %d), want rank %d's code %d", err, got, tt.rank, tt.want)
			}
		})
	}
}

// TestRunLogsAboveTheBar: on a terminal, the launcher's own log record
// (here: a rank failed) is printed as text on a line of its own above the
// job's bar, not appended to the bar.
func TestRunLogsAboveTheBar(t *testing.T) {
	reps, err := Local(2, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	bar := progress.NewAggregate(&out, 100)
	log := slog.New(slog.NewJSONHandler(bar.Writer(-1), nil))
	err = Run(context.Background(), withRole(reps, "step-fail"), Options{Bar: bar, Log: log, Grace: time.Second})
	if exitcode.Of(err) != exitcode.PeerLost {
		t.Fatalf("Run() = %v, want rank 1's failure", err)
	}
	out.mu.Lock()
	screen := out.b.String()
	out.mu.Unlock()
	if !strings.Contains(screen, "2 ranks epoch 1/1") {
		t.Fatalf("no bar for the job drawn:\n%q", screen)
	}
	found := false
	for _, line := range strings.Split(screen, "\n") {
		if !strings.Contains(line, "a rank failed") {
			continue
		}
		found = true
		// What the terminal shows: the text after the last line erase.
		if i := strings.LastIndex(line, "\r\x1b[K"); i >= 0 {
			line = line[i+len("\r\x1b[K"):]
		}
		if !strings.HasPrefix(line, "INFO a rank failed; stopping the others rank=1") {
			t.Errorf("the launcher's log record shares a line with the bar: %q", line)
		}
	}
	if !found {
		t.Errorf("no launcher log line about the failed rank in:\n%q", screen)
	}
}

func TestRunForwardsCancellation(t *testing.T) {
	reps, err := Local(2, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Rank 1 of role "fail" exits by itself; use a world of 1 so only the
	// waiting rank 0 remains and only the cancellation can stop it.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	err = Run(ctx, withRole(reps[:1], "fail"), Options{})
	if got := exitcode.Of(err); got != exitcode.Interrupted {
		t.Errorf("Run() = %v (code %d), want %d", err, got, exitcode.Interrupted)
	}
}

func TestRunDistributed(t *testing.T) {
	reps, err := Local(3, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	if err := Run(context.Background(), withRole(reps, "allreduce"), Options{Stdout: &out, Stderr: &out}); err != nil {
		t.Fatalf("Run: %v\n%s", err, out.lines())
	}
	if diff := cmp.Diff([]string{"[rank 0] sum 6", "[rank 1] sum 6", "[rank 2] sum 6"}, out.lines()); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
}

func TestOverlay(t *testing.T) {
	job, err := Overlay("testdata/job", []string{"--output=/tmp/x"})
	if err != nil {
		t.Fatalf("Overlay: %v", err)
	}
	defer os.RemoveAll(job.Dir)
	if job.Name != "demo" || len(job.Replicas) != 3 {
		t.Fatalf("Overlay = %s with %d replicas, want demo with 3", job.Name, len(job.Replicas))
	}
	port, tok := "", ""
	for r, rep := range job.Replicas {
		if rep.Rank != r {
			t.Errorf("replica %d has rank %d", r, rep.Rank)
		}
		typ := "master"
		if r > 0 {
			typ = "worker"
		}
		run := filepath.Join(job.Dir, typ, "run", "run.yaml")
		if diff := cmp.Diff([]string{"train", "--run=" + run, "--output=/tmp/x"}, rep.Args); diff != "" {
			t.Errorf("rank %d args (-want +got):\n%s", r, diff)
		}
		b, err := os.ReadFile(run)
		if err != nil || !strings.Contains(string(b), "kind: TrainingRun") {
			t.Errorf("rank %d: run declaration %s = %q, %v", r, run, b, err)
		}
		env := map[string]string{}
		for _, kv := range rep.Env {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
		if port == "" {
			port, tok = env[dist.EnvMasterPort], env[dist.EnvToken]
		}
		want := map[string]string{
			"GOMAXPROCS": "1", "AERIE_RUN": "demo",
			dist.EnvMasterAddr: "127.0.0.1", dist.EnvMasterPort: port, dist.EnvWorldSize: "3",
			dist.EnvRank: fmt.Sprint(r), dist.EnvToken: tok,
		}
		if diff := cmp.Diff(want, env); diff != "" {
			t.Errorf("rank %d env (-want +got):\n%s", r, diff)
		}
		if tok == "" || port == "" {
			t.Errorf("rank %d: empty token or port", r)
		}
	}
}

func TestOverlayErrors(t *testing.T) {
	_, err := Overlay("testdata/nojob", nil)
	if got := exitcode.Of(err); got != exitcode.Config || !strings.Contains(fmt.Sprint(err), "renders 0 PyTorchJobs") {
		t.Errorf("Overlay(nojob) = %v (code %d), want a Config error about the missing PyTorchJob", err, got)
	}
}

func TestReplacePath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"--run=/etc/aerie/run/run.yaml", "--run=/tmp/l/run.yaml"},
		{"/etc/aerie/run/run.yaml", "/tmp/l/run.yaml"},
		{"/etc/aerie/run", "/tmp/l"},
		{"--run=/etc/aerie/running/x", "--run=/etc/aerie/running/x"},
		{"x/etc/aerie/run/a", "x/etc/aerie/run/a"},
	}
	for _, tt := range tests {
		if got := replacePath(tt.in, "/etc/aerie/run", "/tmp/l"); got != tt.want {
			t.Errorf("replacePath(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
