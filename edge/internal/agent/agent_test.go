package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"golang.org/x/sys/unix"

	"github.com/aerie-ml/aerie/edge/internal/config"
	"github.com/aerie-ml/aerie/edge/internal/emulation"
	"github.com/aerie-ml/aerie/edge/internal/gittest"
	"github.com/aerie-ml/aerie/edge/internal/gpio"
	"github.com/aerie-ml/aerie/edge/internal/modeltest"
	"github.com/aerie-ml/aerie/edge/internal/reconcile"
	"github.com/aerie-ml/aerie/edge/internal/status"
	"github.com/aerie-ml/aerie/internal/devicestatus"
	"github.com/aerie-ml/aerie/internal/pins"
	"github.com/aerie-ml/aerie/internal/store"
)

// Environment of the re-executed test binary acting as the agent.
const (
	childConfig = "AERIE_EDGE_TEST_CONFIG" // run the agent once with this config
	childStall  = "AERIE_EDGE_TEST_STALL"  // stall the weights download, touching this file
	childFsize  = "AERIE_EDGE_TEST_FSIZE"  // RLIMIT_FSIZE: writes past this many bytes fail, as on a full disk
)

func TestMain(m *testing.M) {
	if cfgPath := os.Getenv(childConfig); cfgPath != "" {
		os.Exit(runChild(cfgPath))
	}
	os.Exit(m.Run())
}

func runChild(cfgPath string) int {
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	cfg, err := config.Parse(cfgPath, b)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if n, err := strconv.ParseUint(os.Getenv(childFsize), 10, 64); err == nil {
		// The Go runtime ignores SIGXFSZ, so writes fail with EFBIG.
		if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &unix.Rlimit{Cur: n, Max: n}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
	}
	opts := Options{Once: true, Log: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	if marker := os.Getenv(childStall); marker != "" {
		opts.OpenStore = func(ctx context.Context, uri string) (reconcile.Store, error) {
			st, err := store.Open(ctx, uri)
			return stallingStore{st, marker}, err
		}
	}
	if err := Run(context.Background(), cfg, opts); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// stallingStore hands out half of model.safetensors, then signals the
// parent through a marker file and blocks until it is killed.
type stallingStore struct {
	store.Store
	marker string
}

func (s stallingStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	r, err := s.Store.Get(ctx, key)
	if err != nil || !strings.HasSuffix(key, "model.safetensors") {
		return r, err
	}
	return &stallReader{r: r, marker: s.marker, left: 4096}, nil
}

type stallReader struct {
	r      io.ReadCloser
	marker string
	left   int
}

func (s *stallReader) Read(p []byte) (int, error) {
	if s.left == 0 {
		os.WriteFile(s.marker, nil, 0o644)
		select {} // wait for SIGKILL
	}
	n, err := s.r.Read(p[:min(len(p), s.left)])
	s.left -= n
	return n, err
}

func (s *stallReader) Close() error { return s.r.Close() }

type fixture struct {
	t       *testing.T
	repo    *gittest.Repo
	storeFS string
	st      store.Store
	dataDir string
	cfgPath string
	stderr  io.Writer // also gets the child agent's stderr
}

func newFixture(t *testing.T, extraConfig string) *fixture {
	f := &fixture{t: t, storeFS: t.TempDir(), dataDir: t.TempDir()}
	f.repo = gittest.New(t, filepath.Join(t.TempDir(), "aerie.git"))
	st, err := store.Open(context.Background(), "file://"+f.storeFS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f.st = st
	f.cfgPath = filepath.Join(t.TempDir(), "edge.yaml")
	cfg := fmt.Sprintf(`apiVersion: aerie.dev/v1alpha1
kind: EdgeConfig
device: {id: pi-0001, fleet: quadcopters}
repo: {url: %q, pollInterval: 1s}
dataDir: %s
keepVersions: 2
status: {listen: "127.0.0.1:0"}
%s`, f.repo.URL(), f.dataDir, extraConfig)
	if err := os.WriteFile(f.cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) config() *config.Config {
	b, _ := os.ReadFile(f.cfgPath)
	c, err := config.Parse(f.cfgPath, b)
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

type putter struct{ store.Store }

func (p putter) Put(ctx context.Context, key string, r io.Reader) error {
	return p.Store.Put(ctx, key, r, store.PutOptions{IfNotExists: true})
}

// version writes a model version with weights of the given scale (its
// bytes, hence its version, differ per scale).
func (f *fixture) version(scale float32) modeltest.Version {
	return modeltest.Write(f.t, putter{f.st}, "run", "small", modeltest.CentroidWeights(f.t, scale), nil)
}

func (f *fixture) pin(v modeltest.Version) {
	f.repo.Commit(f.t, map[string]string{"fleets/quadcopters.yaml": fmt.Sprintf(`apiVersion: aerie.dev/v1alpha1
kind: FleetPins
fleet: quadcopters
stable:
  uri: %s
  manifestDigest: %s
  minSelfTestAccuracy: 0.5
`, f.st.URI(v.Key), v.Digest)})
}

func (f *fixture) current() string {
	target, err := os.Readlink(filepath.Join(f.dataDir, "current"))
	if err != nil {
		return ""
	}
	return "sha256:" + filepath.Base(target)
}

// start runs the test binary as the agent.
func (f *fixture) start(stallMarker string, extraEnv ...string) *exec.Cmd {
	f.t.Helper()
	emulation.SkipChildProcesses(f.t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), childConfig+"="+f.cfgPath), extraEnv...)
	if stallMarker != "" {
		cmd.Env = append(cmd.Env, childStall+"="+stallMarker)
	}
	cmd.Stderr = &prefixWriter{t: f.t}
	if f.stderr != nil {
		cmd.Stderr = io.MultiWriter(cmd.Stderr, f.stderr)
	}
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	return cmd
}

// run runs the agent once in a child process.
func (f *fixture) run(stallMarker string, extraEnv ...string) error {
	return f.start(stallMarker, extraEnv...).Wait()
}

// TestFullDisk restarts the agent with a verified model on disk and a
// data dir where no file can grow past 64 bytes: status.json cannot be
// written, and the agent must run the model all the same, without
// leaving temporary files behind.
func TestFullDisk(t *testing.T) {
	f := newFixture(t, "")
	v1 := f.version(1)
	f.pin(v1)
	if err := f.run(""); err != nil {
		t.Fatalf("first run: %v", err)
	}
	before, _ := os.ReadFile(filepath.Join(f.dataDir, "status.json"))
	f.repo.Commit(t, map[string]string{"README.md": "a new head: the pass fetches again\n"})
	// The clone's object store needs the disk too, so the pass itself
	// fails and asks for a retry; what matters is that the agent got past
	// startup with the model loaded instead of exiting on status.json.
	var out strings.Builder
	f.stderr = &out
	f.run("", childFsize+"=64")
	if strings.Contains(out.String(), "restore installed models") || !strings.Contains(out.String(), "write status; the model keeps running") {
		t.Errorf("the agent stopped at startup, or wrote status with a full disk:\n%s", out.String())
	}
	if got := f.current(); got != v1.Digest {
		t.Errorf("current = %s, want v1", got)
	}
	after, _ := os.ReadFile(filepath.Join(f.dataDir, "status.json"))
	if string(after) != string(before) {
		t.Errorf("status.json changed although no write could succeed")
	}
	left, _ := filepath.Glob(filepath.Join(f.dataDir, ".status.json*"))
	left2, _ := filepath.Glob(filepath.Join(f.dataDir, "*.tmp"))
	if len(left)+len(left2) != 0 {
		t.Errorf("temporary files left: %v %v", left, left2)
	}
}

type prefixWriter struct{ t *testing.T }

func (w *prefixWriter) Write(p []byte) (int, error) {
	w.t.Logf("agent: %s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestKillDuringDownload SIGKILLs the agent in the middle of downloading a
// new version, restarts it, and checks that no half-installed version is
// ever active and that the restart reaches the pinned version.
func TestKillDuringDownload(t *testing.T) {
	f := newFixture(t, "")
	v1 := f.version(1)
	f.pin(v1)
	if err := f.run(""); err != nil {
		t.Fatalf("first run: %v", err)
	}
	if got := f.current(); got != v1.Digest {
		t.Fatalf("current = %s, want v1 %s", got, v1.Digest)
	}

	// Weights bigger than the 4 KiB the stalling reader lets through.
	v2 := f.version(2)
	if len(v2.Weights) <= 4096 {
		t.Fatalf("weights are %d bytes; the stall needs more than 4096", len(v2.Weights))
	}
	f.pin(v2)
	marker := filepath.Join(t.TempDir(), "stalled")
	cmd := f.start(marker)
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(marker); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatal("the agent never reached the download")
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	staged, _ := filepath.Glob(filepath.Join(f.dataDir, "staging", "*", "model.safetensors"))
	if len(staged) != 1 {
		t.Fatalf("staging holds %v, want the half-downloaded weights (the kill came mid-download)", staged)
	}
	if got := f.current(); got != v1.Digest {
		t.Fatalf("current after SIGKILL = %s, want still v1", got)
	}
	if _, err := os.Stat(filepath.Join(f.dataDir, "versions", pins.DigestHex(v2.Digest))); err == nil {
		t.Fatal("v2 appears installed after a killed download")
	}

	if err := f.run(""); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if got := f.current(); got != v2.Digest {
		t.Fatalf("current after restart = %s, want v2 %s", got, v2.Digest)
	}
	if left, _ := os.ReadDir(filepath.Join(f.dataDir, "staging")); len(left) != 0 {
		t.Errorf("staging after restart: %v", left)
	}
	var s devicestatus.Status
	b, _ := os.ReadFile(filepath.Join(f.dataDir, "status.json"))
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	if c := s.Condition(meta.ReadyCondition); c == nil || c.Status != "True" || !strings.HasSuffix(s.LastAppliedRevision, v2.Digest) {
		t.Errorf("status after restart: ready %+v, applied %q", c, s.LastAppliedRevision)
	}
}

// TestServe runs the whole agent in process: frames from a dataset, the
// status server, the mission endpoint, GPIO through the in-memory chip and
// status uploaded to the store.
func TestServe(t *testing.T) {
	images, labels := modeltest.Images(300, 6)
	f := newFixture(t, fmt.Sprintf(`frames: {source: dataset, path: %s, loop: true, interval: 5ms}
mission: {http: true}
gpio:
  outputs:
    - {name: footwear, line: 17, classes: [Sandal, Sneaker, Ankle boot], minConfidence: 0.3, debounceFrames: 1}
`, modeltest.Dataset(t, images, labels)))
	cfg := f.config()
	cfg.Store.StatusURI = "file://" + f.storeFS
	v1 := f.version(1)
	f.pin(v1)

	chip := gpio.NewSim()
	addr := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, Options{Chip: chip, Listening: func(a string) { addr <- a }, Log: slog.New(slog.DiscardHandler)})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v", err)
		}
	}()
	base := "http://" + <-addr
	get := func(path string) string {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	waitFor(t, "Ready with v1 and frames classified", func() bool {
		var s devicestatus.Status
		json.Unmarshal([]byte(get("/status")), &s)
		c := s.Condition(meta.ReadyCondition)
		return c != nil && c.Status == "True" && s.Active != nil && s.Active.ManifestDigest == v1.Digest &&
			strings.Contains(get("/metrics"), "aerie_edge_frames_total") && !strings.Contains(get("/metrics"), "aerie_edge_frames_total 0\n")
	})
	waitFor(t, "the footwear line toggled", func() bool { return len(chip.History(17)) > 2 })

	// A mission defers v2; ending it activates v2.
	resp, err := http.Post(base+"/mission", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	v2 := f.version(2)
	f.pin(v2)
	waitFor(t, "v2 pending during the mission", func() bool {
		var s devicestatus.Status
		json.Unmarshal([]byte(get("/status")), &s)
		return s.Pending != nil && s.Pending.ManifestDigest == v2.Digest
	})
	if got := f.current(); got != v1.Digest {
		t.Fatalf("current during mission = %s, want v1", got)
	}
	req, _ := http.NewRequest(http.MethodDelete, base+"/mission", nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	waitFor(t, "v2 active after the mission", func() bool { return f.current() == v2.Digest })
	waitFor(t, "status uploaded to the store", func() bool {
		r, err := f.st.Get(context.Background(), store.DeviceStatusKey("pi-0001"))
		if err != nil {
			return false
		}
		defer r.Close()
		var s devicestatus.Status
		json.NewDecoder(r).Decode(&s)
		return s.Active != nil && s.Active.ManifestDigest == v2.Digest
	})
}

// waitFor polls cond: the agent works asynchronously. The deadline is
// generous (qemu, loaded CI machines); it bounds a hang, it measures nothing.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Minute); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestMissionAcrossRestart takes the HTTP mission lock, stops the agent
// and starts it again with a new version pinned: the lock is still held,
// so the new version waits in pending and v1 keeps running.
func TestMissionAcrossRestart(t *testing.T) {
	f := newFixture(t, "mission: {http: true}\n")
	v1 := f.version(1)
	f.pin(v1)
	cfg := f.config()
	addr := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, Options{Listening: func(a string) { addr <- a }, Log: slog.New(slog.DiscardHandler)})
	}()
	base := "http://" + <-addr
	waitFor(t, "v1 active", func() bool { return f.current() == v1.Digest })
	resp, err := http.Post(base+"/mission", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /mission = %s", resp.Status)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	v2 := f.version(2)
	f.pin(v2)
	if err := Run(context.Background(), cfg, Options{Once: true, Log: slog.New(slog.DiscardHandler)}); err != nil {
		t.Fatal(err)
	}
	if got := f.current(); got != v1.Digest {
		t.Fatalf("current after a restart mid-mission = %s, want v1 (v2 must wait)", got)
	}
	s := status.NewRecorder(filepath.Join(f.dataDir, "status.json"), "", "", nil).Get()
	if c := s.Condition(meta.ReadyCondition); c == nil || c.Reason != devicestatus.MissionActiveReason || s.Pending == nil || s.Pending.ManifestDigest != v2.Digest {
		t.Errorf("status after restart: Ready %+v, pending %+v; want MissionActive with v2 pending", c, s.Pending)
	}
}
