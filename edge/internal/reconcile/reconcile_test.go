package reconcile

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/gittestserver"

	"github.com/aerie-ml/aerie/edge/internal/gitsync"
	"github.com/aerie-ml/aerie/edge/internal/gittest"
	"github.com/aerie-ml/aerie/edge/internal/infer"
	"github.com/aerie-ml/aerie/edge/internal/install"
	"github.com/aerie-ml/aerie/edge/internal/modeltest"
	"github.com/aerie-ml/aerie/edge/internal/status"
	"github.com/aerie-ml/aerie/internal/devicestatus"
	"github.com/aerie-ml/aerie/internal/pins"
	"github.com/aerie-ml/aerie/internal/selftest"
	"github.com/aerie-ml/aerie/internal/store"
)

const pinPath = "fleets/quadcopters.yaml"

// countingGit counts fetches, to see the reconciler skip unchanged heads.
type countingGit struct {
	*gitsync.Source
	fetches atomic.Int32
}

func (g *countingGit) Fetch(ctx context.Context, paths ...string) (*gitsync.Snapshot, error) {
	g.fetches.Add(1)
	return g.Source.Fetch(ctx, paths...)
}

type dirStore struct{ modeltest.Dir }

func (dirStore) Close() error { return nil }

type mission struct{ on atomic.Bool }

func (m *mission) Active() bool { return m.on.Load() }

type env struct {
	t       *testing.T
	repo    *gittest.Repo
	store   modeltest.Dir
	git     *countingGit
	r       *Reconciler
	key     ed25519.PrivateKey
	mission *mission
}

func newEnv(t *testing.T, gitURL string, repo *gittest.Repo) *env {
	pub, key, _ := ed25519.GenerateKey(nil)
	e := &env{t: t, repo: repo, store: modeltest.Dir(t.TempDir()), key: key, mission: &mission{}}
	e.git = &countingGit{Source: &gitsync.Source{URL: gitURL, Branch: "main"}}
	rec := status.NewRecorder(filepath.Join(t.TempDir(), "status.json"), "pi-0001", "quadcopters", nil)
	e.r = &Reconciler{
		DeviceID: "pi-0001", Fleet: "quadcopters",
		Git: e.git, PinPath: pinPath, KeysDir: pins.KeysDir,
		OpenStore: func(ctx context.Context, uri string) (Store, error) {
			u, err := url.Parse(uri)
			if err != nil {
				return nil, err
			}
			return dirStore{modeltest.Dir(u.Path)}, nil
		},
		Installer: &install.Installer{Dir: t.TempDir()},
		Keep:      2,
		Slot:      &infer.Slot{},
		Mission:   e.mission,
		Status:    rec,
	}
	if err := e.r.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	repo.Commit(t, map[string]string{"fleets/keys/release.pub": base64.StdEncoding.EncodeToString(pub) + "\n"})
	return e
}

// version writes a model version; scale 0 makes one that fails self-test.
func (e *env) version(scale float32, signed bool) modeltest.Version {
	var key ed25519.PrivateKey
	if signed {
		key = e.key
	}
	return modeltest.Write(e.t, e.store, "run", "small", modeltest.CentroidWeights(e.t, scale), key)
}

func (e *env) pin(stable modeltest.Version, extra string) string {
	return e.repo.Commit(e.t, map[string]string{pinPath: fmt.Sprintf(`apiVersion: aerie.dev/v1alpha1
kind: FleetPins
fleet: quadcopters
stable:
  uri: file://%s/%s
  manifestDigest: %s
  minSelfTestAccuracy: 0.5
%s`, e.store, stable.Key, stable.Digest, extra)})
}

func (e *env) reconcile() (devicestatus.Status, error) {
	e.t.Helper()
	err := e.r.Reconcile(context.Background())
	return e.r.Status.Get(), err
}

func (e *env) wantCondition(s devicestatus.Status, typ, reason string) {
	e.t.Helper()
	c := s.Condition(typ)
	if c == nil || c.Reason != reason {
		e.t.Fatalf("condition %s = %+v, want reason %s; conditions %+v", typ, c, reason, s.Conditions)
	}
}

func (e *env) active() string {
	e.t.Helper()
	m := e.r.Slot.Load()
	cur, _ := e.r.Installer.Current()
	if m == nil {
		if cur != "" {
			e.t.Fatalf("slot empty but current = %s", cur)
		}
		return ""
	}
	if m.ManifestDigest != "sha256:"+cur {
		e.t.Fatalf("slot runs %s but current is %s", m.ManifestDigest, cur)
	}
	return m.ManifestDigest
}

func TestReconcile(t *testing.T) {
	srv, err := gittestserver.NewTempGitServer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.StopHTTP)
	if err := srv.StartHTTP(); err != nil {
		t.Fatal(err)
	}
	for _, transport := range []string{"file", "http"} {
		t.Run(transport, func(t *testing.T) {
			var e *env
			if transport == "file" {
				repo := gittest.New(t, filepath.Join(t.TempDir(), "aerie.git"))
				e = newEnv(t, repo.URL(), repo)
			} else {
				name := strings.ReplaceAll(t.Name(), "/", "-") + ".git"
				repo := gittest.New(t, filepath.Join(srv.Root(), name))
				e = newEnv(t, srv.HTTPAddress()+"/"+name, repo)
			}
			testLifecycle(t, e)
		})
	}
}

func testLifecycle(t *testing.T, e *env) {
	v1 := e.version(1, false)
	commit := e.pin(v1, "")
	s, err := e.reconcile()
	if err != nil {
		t.Fatal(err)
	}
	e.wantCondition(s, meta.ReadyCondition, meta.SucceededReason)
	if got := e.active(); got != v1.Digest {
		t.Fatalf("active = %s, want v1 %s", got, v1.Digest)
	}
	if want := "main@sha1:" + commit + "/" + v1.Digest; s.LastAppliedRevision != want || s.LastAttemptedRevision != want {
		t.Errorf("revisions = %q, %q; want %q", s.LastAppliedRevision, s.LastAttemptedRevision, want)
	}
	if s.Active.SelfTest == nil || s.Active.SelfTest.Accuracy < 0.5 {
		t.Errorf("active self-test = %+v", s.Active.SelfTest)
	}

	// Unchanged head: no fetch.
	fetches := e.git.fetches.Load()
	if _, err := e.reconcile(); err != nil {
		t.Fatal(err)
	}
	if got := e.git.fetches.Load(); got != fetches {
		t.Errorf("reconcile of an unchanged head fetched (%d → %d)", fetches, got)
	}

	// A bad pin file stalls with file:line; the model keeps running.
	e.repo.Commit(t, map[string]string{pinPath: "apiVersion: aerie.dev/v1alpha1\nkind: FleetPins\nfleet: quadcopters\nstable:\n  uri: file:///x\n  manifestDigest: sha256:nothex\n  minSelfTestAccuracy: 0.5\n"})
	s, err = e.reconcile()
	if err != nil {
		t.Fatal(err)
	}
	e.wantCondition(s, meta.StalledCondition, devicestatus.InvalidPinsReason)
	if msg := s.Condition(meta.StalledCondition).Message; !strings.HasPrefix(msg, pinPath+":6: stable.manifestDigest:") {
		t.Errorf("stalled message = %q, want %s:6: stable.manifestDigest: …", msg, pinPath)
	}
	if got := e.active(); got != v1.Digest {
		t.Fatalf("active after bad pins = %s, want v1", got)
	}

	// A corrupted file is rejected, v1 stays, and the revision is not retried.
	v2 := e.version(2, false)
	e.store.Put(context.Background(), v2.Key+"model.safetensors", strings.NewReader("corrupt"))
	e.pin(v2, "")
	s, _ = e.reconcile()
	e.wantCondition(s, meta.StalledCondition, devicestatus.VerificationFailedReason)
	if got := e.active(); got != v1.Digest {
		t.Fatalf("active after corrupt v2 = %s, want v1", got)
	}

	// A model that fails its self-test is rejected and removed.
	bad := e.version(0, false)
	e.pin(bad, "")
	s, _ = e.reconcile()
	e.wantCondition(s, meta.StalledCondition, devicestatus.SelfTestFailedReason)
	if got := e.active(); got != v1.Digest {
		t.Fatalf("active after failing self-test = %s, want v1", got)
	}
	if _, err := e.r.Installer.Open(pins.DigestHex(bad.Digest), install.Policy{}); err == nil {
		t.Error("version that failed self-test is still installed")
	}

	// Unsigned is rejected when the pins require signatures; signed passes.
	v3 := e.version(3, false)
	e.pin(v3, "")
	e.repo.Commit(t, map[string]string{pinPath: strings.Replace(e.pinText(v3), "fleet: quadcopters\n", "fleet: quadcopters\nrequireSignature: true\n", 1)})
	s, _ = e.reconcile()
	e.wantCondition(s, meta.StalledCondition, devicestatus.VerificationFailedReason)
	if msg := s.Condition(meta.StalledCondition).Message; !strings.Contains(msg, pins.SignatureFile) {
		t.Errorf("unsigned message = %q", msg)
	}
	v4 := e.version(4, true)
	e.repo.Commit(t, map[string]string{pinPath: strings.Replace(e.pinText(v4), "fleet: quadcopters\n", "fleet: quadcopters\nrequireSignature: true\n", 1)})
	s, _ = e.reconcile()
	e.wantCondition(s, meta.ReadyCondition, meta.SucceededReason)
	if got := e.active(); got != v4.Digest || s.Active.SignedBy != "fleets/keys/release.pub" {
		t.Fatalf("active = %s signed by %q, want v4 signed by release.pub", got, s.Active.SignedBy)
	}

	// During a mission the next version is verified but not activated.
	e.mission.on.Store(true)
	v5 := e.version(5, false)
	e.pin(v5, "")
	s, _ = e.reconcile()
	e.wantCondition(s, meta.ReadyCondition, devicestatus.MissionActiveReason)
	if s.Pending == nil || s.Pending.ManifestDigest != v5.Digest {
		t.Errorf("pending = %+v, want v5", s.Pending)
	}
	if got := e.active(); got != v4.Digest {
		t.Fatalf("active during mission = %s, want v4", got)
	}
	e.mission.on.Store(false)
	s, _ = e.reconcile()
	e.wantCondition(s, meta.ReadyCondition, meta.SucceededReason)
	if got := e.active(); got != v5.Digest || s.Pending != nil {
		t.Fatalf("active after mission = %s (pending %+v), want v5", got, s.Pending)
	}

	// A 100% canary takes the canary version.
	v6 := e.version(6, false)
	e.pin(v5, fmt.Sprintf("canary:\n  uri: file://%s/%s\n  manifestDigest: %s\n  minSelfTestAccuracy: 0.5\n  percent: 100\n", e.store, v6.Key, v6.Digest))
	s, _ = e.reconcile()
	if got := e.active(); got != v6.Digest || !s.Active.Canary {
		t.Fatalf("active with 100%% canary = %s (canary %v), want v6", got, s.Active.Canary)
	}
	// Keep 2: v6 and v5 stay, older ones are pruned.
	if got, _ := e.r.Installer.Installed(); len(got) != 2 {
		t.Errorf("installed = %v, want 2 versions", got)
	}

	// Placeholder digest: Stalled, model keeps running.
	e.repo.Commit(t, map[string]string{pinPath: "apiVersion: aerie.dev/v1alpha1\nkind: FleetPins\nfleet: quadcopters\nstable:\n  uri: gs://aerie-models/models/fmnist-cnn/unpromoted/\n  manifestDigest: " + pins.PlaceholderDigest + "\n  minSelfTestAccuracy: 0.8\n"})
	s, _ = e.reconcile()
	e.wantCondition(s, meta.StalledCondition, devicestatus.NoVersionPinnedReason)
	if got := e.active(); got != v6.Digest {
		t.Fatalf("active with placeholder pin = %s, want v6", got)
	}

	// Restart: Restore brings back the active model from disk.
	e.r.Slot.Swap(nil)
	if err := e.r.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := e.active(); got != v6.Digest {
		t.Fatalf("active after restore = %s, want v6", got)
	}
}

// TestClassesMissing pins a version whose classes lack one that a GPIO
// output names: it is refused with ClassesMissing, not retried, and the
// active model keeps running; a tampered self-test set is refused too.
func TestClassesMissing(t *testing.T) {
	repo := gittest.New(t, filepath.Join(t.TempDir(), "aerie.git"))
	e := newEnv(t, repo.URL(), repo)
	e.r.Outputs = map[string][]string{"footwear": {"Sandal", "Sneaker"}, "bags": {"Bag"}}
	v1 := e.version(1, false)
	e.pin(v1, "")
	if s, err := e.reconcile(); err != nil || e.active() != v1.Digest {
		t.Fatalf("reconcile v1 = %v, active %s; conditions %+v", err, e.active(), s.Conditions)
	}

	renamed := append([]string(nil), modeltest.Classes...)
	renamed[7] = "Trainer" // was Sneaker
	v2 := modeltest.WriteClasses(t, e.store, "renamed", "small", modeltest.CentroidWeights(t, 2), nil, renamed)
	commit := e.pin(v2, "")
	for range 2 {
		s, err := e.reconcile()
		if err != nil {
			t.Fatal(err)
		}
		e.wantCondition(s, meta.StalledCondition, devicestatus.ClassesMissingReason)
		msg := s.Condition(meta.StalledCondition).Message
		if !strings.Contains(msg, `no class "Sneaker" (gpio output footwear)`) || !strings.Contains(msg, `"Trainer"`) || !strings.Contains(msg, "keeping the active model") {
			t.Errorf("stalled message = %q, want it to name the missing class, its output, the version's classes and say the model keeps running", msg)
		}
		if want := "main@sha1:" + commit + "/" + v2.Digest; s.LastAttemptedRevision != want || s.LastAppliedRevision == want {
			t.Errorf("revisions applied %q attempted %q, want attempted %q only", s.LastAppliedRevision, s.LastAttemptedRevision, want)
		}
		if got := e.active(); got != v1.Digest || s.Active == nil || s.Active.ManifestDigest != v1.Digest {
			t.Fatalf("active = %s (status %+v), want v1 still", got, s.Active)
		}
	}
	images, _ := modeltest.Images(1, 9)
	if _, err := e.r.Slot.Load().Classifier.Classify(context.Background(), images); err != nil {
		t.Errorf("Classify with the kept model: %v", err)
	}

	// The same classes in another order are fine: outputs go by name.
	reordered := append([]string(nil), modeltest.Classes...)
	reordered[0], reordered[9] = reordered[9], reordered[0]
	v3 := modeltest.WriteClasses(t, e.store, "reordered", "small", modeltest.CentroidWeights(t, 3), nil, reordered)
	e.pin(v3, "")
	s, err := e.reconcile()
	if err != nil {
		t.Fatal(err)
	}
	e.wantCondition(s, meta.ReadyCondition, meta.SucceededReason)
	if got := e.active(); got != v3.Digest || s.Active.Classes[0] != "Ankle boot" {
		t.Fatalf("active = %s with classes %v, want v3", got, s.Active.Classes)
	}

	// A self-test set changed in the store fails verification; v3 stays.
	v4 := e.version(4, false)
	set := filepath.Join(string(e.store), v4.Key, selftest.FileName)
	b, err := os.ReadFile(set)
	if err != nil {
		t.Fatal(err)
	}
	b[3*512] ^= 0xff
	os.WriteFile(set, b, 0o644)
	e.pin(v4, "")
	s, _ = e.reconcile()
	e.wantCondition(s, meta.StalledCondition, devicestatus.VerificationFailedReason)
	if msg := s.Condition(meta.StalledCondition).Message; !strings.Contains(msg, selftest.FileName) {
		t.Errorf("stalled message = %q, want it to name %s", msg, selftest.FileName)
	}
	if got := e.active(); got != v3.Digest {
		t.Fatalf("active after a tampered self-test set = %s, want v3", got)
	}
}

// TestSelfTestSetTamperedOnDisk changes an installed version's self-test
// set behind the installer's back: the self-test fails closed at startup
// and the agent rolls back.
func TestSelfTestSetTamperedOnDisk(t *testing.T) {
	repo := gittest.New(t, filepath.Join(t.TempDir(), "aerie.git"))
	e := newEnv(t, repo.URL(), repo)
	v1, v2 := e.version(1, false), e.version(2, false)
	for _, v := range []modeltest.Version{v1, v2} {
		e.pin(v, "")
		if _, err := e.reconcile(); err != nil {
			t.Fatal(err)
		}
	}
	iv, err := e.r.Installer.Open(pins.DigestHex(v2.Digest), install.Policy{})
	if err != nil {
		t.Fatal(err)
	}
	f, err := iv.SelfTestSet()
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	b, _ := os.ReadFile(f.Name())
	b[3*512] ^= 0xff
	os.WriteFile(f.Name(), b, 0o644)
	e.r.Slot.Swap(nil)
	if err := e.r.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := e.active(); got != v1.Digest {
		t.Fatalf("active after restore with v2's set tampered = %s, want v1", got)
	}
}

func (e *env) pinText(v modeltest.Version) string {
	return fmt.Sprintf("apiVersion: aerie.dev/v1alpha1\nkind: FleetPins\nfleet: quadcopters\nstable:\n  uri: file://%s/%s\n  manifestDigest: %s\n  minSelfTestAccuracy: 0.5\n", e.store, v.Key, v.Digest)
}

func TestNetworkGone(t *testing.T) {
	srv, err := gittestserver.NewTempGitServer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.StopHTTP)
	if err := srv.StartHTTP(); err != nil {
		t.Fatal(err)
	}
	repo := gittest.New(t, filepath.Join(srv.Root(), "aerie.git"))
	e := newEnv(t, srv.HTTPAddress()+"/aerie.git", repo)
	v1 := e.version(1, false)
	e.pin(v1, "")
	if _, err := e.reconcile(); err != nil {
		t.Fatal(err)
	}
	srv.StopHTTP()
	s, err := e.reconcile()
	if err == nil {
		t.Fatal("Reconcile with the git server gone = nil error, want one to back off on")
	}
	e.wantCondition(s, meta.ReadyCondition, devicestatus.GitOperationFailedReason)
	m := e.r.Slot.Load()
	if m == nil || m.ManifestDigest != v1.Digest {
		t.Fatalf("model after network loss = %v, want v1", m)
	}
	// Inference still works with the kept model.
	images, _ := modeltest.Images(1, 9)
	if _, err := m.Classifier.Classify(context.Background(), images); err != nil {
		t.Errorf("Classify with the network gone: %v", err)
	}
}

// TestRestoreRollsBack breaks the active version on disk: at the next start
// the agent rolls back to the previous version, then the next reconcile
// downloads the pinned version again and activates it.
func TestRestoreRollsBack(t *testing.T) {
	repo := gittest.New(t, filepath.Join(t.TempDir(), "aerie.git"))
	e := newEnv(t, repo.URL(), repo)
	v1, v2 := e.version(1, false), e.version(2, false)
	for _, v := range []modeltest.Version{v1, v2} {
		e.pin(v, "")
		if _, err := e.reconcile(); err != nil {
			t.Fatal(err)
		}
	}
	if got := e.active(); got != v2.Digest {
		t.Fatalf("active = %s, want v2", got)
	}
	weights := filepath.Join(e.r.Installer.Dir, "versions", pins.DigestHex(v2.Digest), "model.safetensors")
	os.Chmod(weights, 0o644)
	if err := os.WriteFile(weights, []byte("bit rot"), 0o644); err != nil {
		t.Fatal(err)
	}

	// A restart: a fresh reconciler over the same disk and status file.
	e.r.Slot.Swap(nil)
	e.r = &Reconciler{
		DeviceID: e.r.DeviceID, Fleet: e.r.Fleet, Git: e.r.Git, PinPath: e.r.PinPath, KeysDir: e.r.KeysDir,
		OpenStore: e.r.OpenStore, Installer: e.r.Installer, Keep: e.r.Keep, Slot: e.r.Slot, Mission: e.r.Mission, Status: e.r.Status,
	}
	if err := e.r.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := e.active(); got != v1.Digest {
		t.Fatalf("active after restore = %s, want the rollback to v1", got)
	}
	s := e.r.Status.Get()
	e.wantCondition(s, meta.ReadyCondition, devicestatus.RolledBackReason)
	if n := testutil.ToFloat64(e.r.Status.Metrics.Rollbacks); n != 1 {
		t.Errorf("rollbacks = %g, want 1", n)
	}
	s, err := e.reconcile()
	if err != nil {
		t.Fatal(err)
	}
	e.wantCondition(s, meta.ReadyCondition, meta.SucceededReason)
	if got := e.active(); got != v2.Digest {
		t.Fatalf("active after reconcile = %s, want v2 downloaded again", got)
	}
}

// TestPermanentStoreErrorStalls pins a URI the store cannot open (a file
// where the store's directory should be): the pass is Stalled and not
// retried with backoff, since only a new pin can fix it.
func TestPermanentStoreErrorStalls(t *testing.T) {
	srv, err := gittestserver.NewTempGitServer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.StopHTTP)
	if err := srv.StartHTTP(); err != nil {
		t.Fatal(err)
	}
	repo := gittest.New(t, filepath.Join(srv.Root(), "aerie.git"))
	e := newEnv(t, srv.HTTPAddress()+"/aerie.git", repo)
	var opens atomic.Int32
	e.r.OpenStore = func(ctx context.Context, uri string) (Store, error) {
		opens.Add(1)
		return store.Open(ctx, uri)
	}
	v1 := e.version(1, false)
	notDir := filepath.Join(t.TempDir(), "version")
	if err := os.WriteFile(notDir, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.repo.Commit(t, map[string]string{pinPath: fmt.Sprintf("apiVersion: aerie.dev/v1alpha1\nkind: FleetPins\nfleet: quadcopters\nstable:\n  uri: file://%s\n  manifestDigest: %s\n  minSelfTestAccuracy: 0.5\n", notDir, v1.Digest)})
	for range 2 {
		s, err := e.reconcile()
		if err != nil {
			t.Fatalf("Reconcile with a bad store URI = %v, want nil (Stalled, no backoff)", err)
		}
		e.wantCondition(s, meta.StalledCondition, devicestatus.ArtifactFailedReason)
		if msg := s.Condition(meta.StalledCondition).Message; !strings.Contains(msg, notDir) {
			t.Errorf("Stalled message %q does not name %s", msg, notDir)
		}
	}
	if n := opens.Load(); n != 1 {
		t.Errorf("store opened %d times for one bad pin, want 1", n)
	}
}

// silentPeer is a TCP listener that accepts connections and never
// answers, until the test ends.
func silentPeer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// reconcileBounded runs one pass and fails the test if it does not end:
// the bound is far above the configured deadlines, it only catches a hang.
func (e *env) reconcileBounded() (devicestatus.Status, error) {
	e.t.Helper()
	done := make(chan error, 1)
	go func() { done <- e.r.Reconcile(context.Background()) }()
	select {
	case err := <-done:
		return e.r.Status.Get(), err
	case <-time.After(2 * time.Minute):
		e.t.Fatal("Reconcile hangs on a silent peer")
		return devicestatus.Status{}, nil
	}
}

// TestSilentGitRemote: a remote that accepts the connection and never
// answers fails the pass at the deadline (GitOperationFailed, retried),
// and the model keeps running.
func TestSilentGitRemote(t *testing.T) {
	repo := gittest.New(t, filepath.Join(t.TempDir(), "aerie.git"))
	e := newEnv(t, repo.URL(), repo)
	v1 := e.version(1, false)
	e.pin(v1, "")
	if _, err := e.reconcile(); err != nil {
		t.Fatal(err)
	}
	e.git.Source.URL = "http://" + silentPeer(t) + "/aerie.git"
	e.r.GitTimeout = 200 * time.Millisecond
	s, err := e.reconcileBounded()
	if err == nil {
		t.Fatal("Reconcile against a silent remote = nil error, want one to back off on")
	}
	e.wantCondition(s, meta.ReadyCondition, devicestatus.GitOperationFailedReason)
	if msg := s.Condition(meta.ReadyCondition).Message; !strings.Contains(msg, "no answer within 200ms") {
		t.Errorf("Ready message = %q, want it to name the deadline", msg)
	}
	if got := e.active(); got != v1.Digest {
		t.Fatalf("active with a silent remote = %s, want v1", got)
	}
}

// TestOversizedPins: a pin file over pins.MaxBytes is InvalidPins
// (Stalled), the model keeps running, and an unchanged head is not cloned
// again.
func TestOversizedPins(t *testing.T) {
	repo := gittest.New(t, filepath.Join(t.TempDir(), "aerie.git"))
	e := newEnv(t, repo.URL(), repo)
	e.git.Source.TempDir = t.TempDir()
	v1 := e.version(1, false)
	e.pin(v1, "")
	if _, err := e.reconcile(); err != nil {
		t.Fatal(err)
	}
	e.repo.Commit(t, map[string]string{pinPath: e.pinText(v1) + "# " + strings.Repeat("x", pins.MaxBytes) + "\n"})
	s, err := e.reconcile()
	if err != nil {
		t.Fatalf("Reconcile with an oversized pin file = %v, want nil (stalled, not retried)", err)
	}
	e.wantCondition(s, meta.StalledCondition, devicestatus.InvalidPinsReason)
	if got := e.active(); got != v1.Digest {
		t.Fatalf("active = %s, want v1", got)
	}
	fetches := e.git.fetches.Load()
	if _, err := e.reconcile(); err != nil {
		t.Fatal(err)
	}
	if got := e.git.fetches.Load(); got != fetches {
		t.Errorf("the oversized pin file was fetched again at an unchanged head (%d → %d)", fetches, got)
	}
}

// TestSignaturePolicyAppliesToActive: requireSignature turned on in the
// pins while an unsigned version runs replaces it with the newest signed
// version on disk; at a restart with the device requiring signatures and
// nothing signed on disk, no model runs and the status says why.
func TestSignaturePolicyAppliesToActive(t *testing.T) {
	repo := gittest.New(t, filepath.Join(t.TempDir(), "aerie.git"))
	e := newEnv(t, repo.URL(), repo)
	signed, unsigned := e.version(1, true), e.version(2, false)
	for _, v := range []modeltest.Version{signed, unsigned} {
		e.pin(v, "")
		if _, err := e.reconcile(); err != nil {
			t.Fatal(err)
		}
	}
	if got := e.active(); got != unsigned.Digest {
		t.Fatalf("active = %s, want the unsigned version", got)
	}
	e.repo.Commit(t, map[string]string{pinPath: strings.Replace(e.pinText(unsigned), "fleet: quadcopters\n", "fleet: quadcopters\nrequireSignature: true\n", 1)})
	s, _ := e.reconcile()
	if got := e.active(); got != signed.Digest {
		t.Fatalf("active after requireSignature = %s, want the signed version %s", got, signed.Digest)
	}
	if c := s.Condition(meta.ReadyCondition); c == nil || c.Status == "True" {
		t.Errorf("Ready = %+v, want False: the pinned version is unsigned", c)
	}
	if s.Trust == nil || !s.Trust.RequireSignature || len(s.Trust.Keys()) != 1 {
		t.Errorf("status trust = %+v, want the pins' policy and key", s.Trust)
	}

	// Restart with the device requiring signatures and only the unsigned
	// version on disk.
	dir := t.TempDir()
	in := &install.Installer{Dir: dir}
	r := &Reconciler{DeviceID: "pi-0001", Fleet: "quadcopters", RequireSignature: true, Installer: in, Slot: &infer.Slot{},
		Status: status.NewRecorder(filepath.Join(dir, "status.json"), "pi-0001", "quadcopters", nil)}
	if err := in.Init(); err != nil {
		t.Fatal(err)
	}
	if _, err := in.Install(context.Background(), dirStore{modeltest.Dir(filepath.Join(string(e.store), unsigned.Key))}, pins.Version{URI: "file://" + string(e.store) + "/" + unsigned.Key, ManifestDigest: unsigned.Digest}, install.Policy{}); err != nil {
		t.Fatal(err)
	}
	if err := in.Activate(pins.DigestHex(unsigned.Digest)); err != nil {
		t.Fatal(err)
	}
	if err := r.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	if m := r.Slot.Load(); m != nil {
		t.Fatalf("model after a restart requiring signatures = %s, want none", m.ManifestDigest)
	}
	if cur, _ := in.Current(); cur != "" {
		t.Errorf("current = %s, want none", cur)
	}
	s = r.Status.Get()
	if c := s.Condition(meta.StalledCondition); c == nil || c.Reason != devicestatus.VerificationFailedReason || !strings.Contains(c.Message, "no model runs") || !strings.Contains(c.Message, pins.SignatureFile) {
		t.Errorf("Stalled = %+v, want VerificationFailed saying no model runs and why", c)
	}
}
