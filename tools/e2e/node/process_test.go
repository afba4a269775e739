package node

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// The test binary doubles as a container's binary: NODE_TEST_HELPER says
// what it does.
func TestMain(m *testing.M) {
	switch os.Getenv("NODE_TEST_HELPER") {
	case "":
		os.Exit(m.Run())
	case "exit":
		c := os.Getenv("CODE")
		if f, ok := strings.CutPrefix(c, "file:"); ok {
			b, err := os.ReadFile(f)
			if err != nil {
				os.Exit(98)
			}
			c = string(b)
		}
		code, _ := strconv.Atoi(c)
		os.Exit(code)
	case "alloc":
		mb, _ := strconv.Atoi(os.Getenv("MB"))
		b := make([]byte, mb<<20)
		for i := range b {
			b[i] = 1
		}
		time.Sleep(2 * time.Second)
		os.Exit(int(b[len(b)/2]) - 1)
	case "sleep":
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	os.Exit(99)
}

func TestRepository(t *testing.T) {
	for in, want := range map[string]string{
		"europe-west4-docker.pkg.dev/aerie-dev/aerie/trainer@sha256:b280": "europe-west4-docker.pkg.dev/aerie-dev/aerie/trainer",
		"ghcr.io/x/trainer:v1":              "ghcr.io/x/trainer",
		"localhost:5000/trainer":            "localhost:5000/trainer",
		"localhost:5000/trainer:v2@sha256:": "localhost:5000/trainer",
		"alpine":                            "alpine",
	} {
		if got := repository(in); got != want {
			t.Errorf("repository(%q) = %q, want %q", in, got, want)
		}
	}
	imgs := Images{"ghcr.io/x/trainer": "/bin/trainer"}
	if p, ok := imgs.Lookup("ghcr.io/x/trainer@sha256:ab"); !ok || p != "/bin/trainer" {
		t.Errorf("Lookup by repository = %q, %v, want /bin/trainer", p, ok)
	}
	if _, ok := imgs.Lookup("ghcr.io/x/other"); ok {
		t.Error("Lookup(ghcr.io/x/other) found a binary, want none")
	}
}

func TestMountsRewrite(t *testing.T) {
	c := &corev1.Container{Name: "pytorch", VolumeMounts: []corev1.VolumeMount{
		{Name: "run", MountPath: "/etc/aerie/run"},
		{Name: "tmp", MountPath: "/tmp"},
		{Name: "nested", MountPath: "/etc/aerie/run/extra/"},
	}}
	m, err := newMounts(c, map[string]string{"run": "/n/p/run", "tmp": "/n/p/tmp", "nested": "/n/p/nested"})
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		"--run=/etc/aerie/run/run.yaml": "--run=/n/p/run/run.yaml",
		"/etc/aerie/run":                "/n/p/run",
		"/etc/aerie/running":            "/etc/aerie/running",
		"/etc/aerie/run/extra/a":        "/n/p/nested/a",
		"/tmp:/usr/tmp":                 "/n/p/tmp:/usr/tmp",
		"x/tmp/y":                       "x/tmp/y",
		"train":                         "train",
	} {
		if got := m.rewrite(in); got != want {
			t.Errorf("rewrite(%q) = %q, want %q", in, got, want)
		}
	}
	if d, ok := m.dir("/tmp/ckpt"); !ok || d != "/n/p/tmp/ckpt" {
		t.Errorf("dir(/tmp/ckpt) = %q, %v, want /n/p/tmp/ckpt", d, ok)
	}
	if _, err := newMounts(&corev1.Container{VolumeMounts: []corev1.VolumeMount{{Name: "gone", MountPath: "/x"}}}, nil); err == nil {
		t.Error("newMounts with a mount of a missing volume: no error")
	}
}

func TestLimitsEnv(t *testing.T) {
	c := &corev1.Container{Resources: corev1.ResourceRequirements{
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1500m"), corev1.ResourceMemory: resource.MustParse("100Mi")},
		Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("80Mi")},
	}}
	l := limitsOf(c)
	if diff := cmp.Diff(Limits{MemoryBytes: 100 << 20, RequestBytes: 80 << 20, CPUMilli: 1500}, l); diff != "" {
		t.Errorf("limitsOf diff (-want +got):\n%s", diff)
	}
	none := func(string) bool { return false }
	if diff := cmp.Diff([]string{"GOMAXPROCS=2", "GOMEMLIMIT=" + strconv.Itoa(100<<20/10*9)}, l.env(none)); diff != "" {
		t.Errorf("env diff (-want +got):\n%s", diff)
	}
	if got := l.env(func(string) bool { return true }); len(got) != 0 {
		t.Errorf("env with the pod's own settings = %q, want none", got)
	}
}

func TestCommandFor(t *testing.T) {
	got, err := commandFor(&corev1.Container{Command: []string{"/ko-app/trainer", "train"}, Args: []string{"--x"}}, "/b/trainer")
	if err != nil || !cmp.Equal(got, []string{"train", "--x"}) {
		t.Errorf("commandFor = %q, %v, want [train --x]", got, err)
	}
	if _, err := commandFor(&corev1.Container{Name: "c", Command: []string{"sh", "-c", "x"}}, "/b/trainer"); err == nil {
		t.Error("commandFor(sh) with the trainer's binary: no error")
	}
}

// run starts the test binary as a container process doing what.
func run(t *testing.T, what string, l Limits, env ...string) *process {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p, err := start(self, nil, append([]string{"NODE_TEST_HELPER=" + what}, env...), dir, filepath.Join(dir, "log"), l)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.stop(time.Second) })
	return p
}

func wait(t *testing.T, p *process) exit {
	t.Helper()
	select {
	case <-p.done:
		return p.result()
	case <-time.After(30 * time.Second):
		t.Fatal("process did not exit in 30 s")
		return exit{}
	}
}

func TestProcessExit(t *testing.T) {
	for _, tt := range []struct {
		code       string
		wantCode   int32
		wantReason string
	}{{"0", 0, "Completed"}, {"3", 3, "Error"}, {"130", 130, "Error"}} {
		t.Run(tt.code, func(t *testing.T) {
			e := wait(t, run(t, "exit", Limits{}, "CODE="+tt.code))
			if e.Code != tt.wantCode || e.Reason != tt.wantReason {
				t.Errorf("exit = %d %s, want %d %s", e.Code, e.Reason, tt.wantCode, tt.wantReason)
			}
		})
	}
}

// SIGKILL is reported as 137, which the operator's ExitCode policy retries.
func TestProcessSIGKILL(t *testing.T) {
	p := run(t, "sleep", Limits{})
	if err := p.signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e := wait(t, p)
	if e.Code != 137 || e.Signal != syscall.SIGKILL || e.Reason != "Error" {
		t.Errorf("exit = %d %v %s, want 137 killed Error", e.Code, e.Signal, e.Reason)
	}
}

func TestProcessMemory(t *testing.T) {
	t.Run("under the limit: peak recorded", func(t *testing.T) {
		e := wait(t, run(t, "alloc", Limits{MemoryBytes: 256 << 20}, "MB=64"))
		if e.Code != 0 {
			t.Fatalf("exit = %d %s, want 0", e.Code, e.Reason)
		}
		if e.PeakRSS < 64<<20 || e.PeakRSS > 200<<20 {
			t.Errorf("PeakRSS = %d MiB, want about the 64 MiB touched", e.PeakRSS>>20)
		}
	})
	t.Run("over the limit: OOMKilled", func(t *testing.T) {
		e := wait(t, run(t, "alloc", Limits{MemoryBytes: 48 << 20}, "MB=128"))
		if e.Code != 137 || e.Reason != "OOMKilled" {
			t.Errorf("exit = %d %s, want 137 OOMKilled", e.Code, e.Reason)
		}
	})
}
