package promote

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/aerie-ml/aerie/internal/manifest"
	"github.com/aerie-ml/aerie/internal/pins"
	"github.com/aerie-ml/aerie/internal/selftest"
	"github.com/aerie-ml/aerie/internal/store"
	"github.com/aerie-ml/aerie/tools/aerie/internal/fixture"
	"github.com/aerie-ml/aerie/tools/aerie/internal/ingest"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

const pinFile = `# Quadcopters fly the stable model; 10% of them try the canary first.
apiVersion: aerie.dev/v1alpha1
kind: FleetPins
fleet: quadcopters
requireSignature: false
stable:
  # Set by promotion; never edit by hand.
  uri: gs://aerie-dev-training/models/quick/0000000000000000/
  manifestDigest: sha256:0000000000000000000000000000000000000000000000000000000000000000
  minSelfTestAccuracy: 0.5 # the device's self-test threshold
`

// runFile declares the fixture's run with gates minTestAccuracy, 0.5 per
// class and 100000 bytes.
func runFile(w *fixture.World, minTestAccuracy string) string {
	return `apiVersion: aerie.dev/v1alpha1
kind: TrainingRun
metadata:
  name: quick
spec:
  model:
    architecture: small
  dataset:
    uri: ` + w.DatasetURI + `
    sha256: ` + w.DatasetDigest + `
  output:
    uri: ` + w.Store + `
  gates:
    minTestAccuracy: ` + minTestAccuracy + `
    minClassAccuracy: 0.5
    maxModelBytes: 100000
  image: example.com/trainer@sha256:` + strings.Repeat("b", 64) + `
`
}

// testFixture is the shared fixture's world with the run declared by
// runFile, the fleet's pins reset to pinFile, and a version newer than the
// world's own.
type testFixture struct {
	*fixture.World
	repo, storeURI, versionURI string
	manifest                   *manifest.Manifest
}

// newFixture adds a version with metrics that records the run's gates;
// edits change its manifest before it is stored.
func newFixture(t *testing.T, minTestAccuracy string, metrics manifest.Metrics, created time.Time, edits ...func(*manifest.Manifest)) *testFixture {
	t.Helper()
	w := fixture.New(t)
	f := &testFixture{World: w, repo: w.Repo, storeURI: w.Store}
	writeFile(t, filepath.Join(f.repo, "apps/jobs/runs/quick.yaml"), runFile(w, minTestAccuracy))
	writeFile(t, filepath.Join(f.repo, "fleets/quadcopters.yaml"), pinFile)
	f.manifest, f.versionURI = addVersion(t, w, metrics, created, append([]func(*manifest.Manifest){declare(t, minTestAccuracy)}, edits...)...)
	return f
}

// declare records the gates of runFile(minTestAccuracy) in a manifest.
func declare(t *testing.T, minTestAccuracy string) func(*manifest.Manifest) {
	minTest, err := strconv.ParseFloat(minTestAccuracy, 64)
	if err != nil {
		t.Fatal(err)
	}
	return func(m *manifest.Manifest) {
		m.DeclaredGates = &manifest.Gates{MinTestAccuracy: minTest, MinClassAccuracy: 0.5, MaxModelBytes: 100000}
	}
}

// addVersion stores a version of the run with metrics (its model size
// filled in) and returns it with its URI.
func addVersion(t *testing.T, w *fixture.World, metrics manifest.Metrics, created time.Time, edits ...func(*manifest.Manifest)) (*manifest.Manifest, string) {
	t.Helper()
	m, _ := w.AddVersion(t, 1, metrics.TestAccuracy, created, append([]func(*manifest.Manifest){func(m *manifest.Manifest) {
		metrics.ModelBytes, metrics.Parameters, metrics.Epochs = m.Metrics.ModelBytes, m.Metrics.Parameters, m.Metrics.Epochs
		m.Metrics = metrics
		m.Lineage = manifest.Lineage{}
	}}, edits...)...)
	return m, w.VersionURI(t, m)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// classes are the fixture's classes.
var classes = ingest.FashionMNISTClasses

// uniform is a model's metrics: every class at acc.
func uniform(acc float64) manifest.Metrics {
	m := manifest.Metrics{TestAccuracy: acc}
	for range classes {
		m.ClassAccuracy = append(m.ClassAccuracy, acc)
	}
	return m
}

// created is after the fixture world's own versions (so the test's is the
// newest), and seeds weights whose self-test clears 0.05.
var created = fixture.Now.Add(-6 * time.Hour)

// A freshly initialized model classifies about one image in ten correctly:
// it clears a self-test threshold of 0.05 (minTestAccuracy 0.1) and fails
// one of 0.85.

func TestPromoteStable(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "0.1", uniform(0.6), created)
	res, err := Promote(ctx, Options{RepoDir: f.repo, Run: "quick", Output: f.storeURI, Fleet: "quadcopters", LocalFleet: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Pin.URI != f.versionURI {
		t.Errorf("pinned %s, want the only version %s", res.Pin.URI, f.versionURI)
	}
	got, err := os.ReadFile(filepath.Join(f.repo, "fleets/quadcopters.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := pins.Parse("quadcopters.yaml", got)
	if err != nil {
		t.Fatal(err)
	}
	want := pins.Version{URI: f.versionURI, ManifestDigest: res.Pin.ManifestDigest, MinSelfTestAccuracy: 0.05}
	if diff := cmp.Diff(want, p.Stable); diff != "" {
		t.Errorf("stable pin diff (-want +got):\n%s", diff)
	}
	for _, comment := range []string{"# Quadcopters fly", "# Set by promotion", "# the device's self-test threshold"} {
		if !strings.Contains(string(got), comment) {
			t.Errorf("pin file lost comment %q:\n%s", comment, got)
		}
	}
	// The digest pins the manifest's exact bytes.
	s, _ := store.Open(ctx, f.versionURI)
	defer s.Close()
	r, err := s.Get(ctx, manifest.FileName)
	if err != nil {
		t.Fatal(err)
	}
	var raw bytes.Buffer
	raw.ReadFrom(r)
	r.Close()
	if d := manifest.Digest(raw.Bytes()); d != p.Stable.ManifestDigest {
		t.Errorf("pinned digest %s, manifest.json hashes to %s", p.Stable.ManifestDigest, d)
	}
}

func TestPromoteCanaryThenStable(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "0.1", uniform(0.6), created)
	if _, err := Promote(ctx, Options{RepoDir: f.repo, Run: "quick", Model: f.versionURI, Fleet: "quadcopters", LocalFleet: true, CanaryPercent: 10}); err != nil {
		t.Fatal(err)
	}
	p := readPins(t, f.repo)
	if p.Canary == nil || p.Canary.Percent != 10 || p.Canary.URI != f.versionURI || !p.Stable.Placeholder() {
		t.Fatalf("after canary promotion: stable %+v, canary %+v; want the version as a 10%% canary", p.Stable, p.Canary)
	}
	if _, err := Promote(ctx, Options{RepoDir: f.repo, Run: "quick", Model: f.versionURI, Fleet: "quadcopters", LocalFleet: true}); err != nil {
		t.Fatal(err)
	}
	p = readPins(t, f.repo)
	if p.Canary != nil || p.Stable.URI != f.versionURI {
		t.Errorf("after stable promotion: stable %+v, canary %+v; want the version stable and no canary", p.Stable, p.Canary)
	}
}

func readPins(t *testing.T, repo string) *pins.Pins {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo, "fleets/quadcopters.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := pins.Parse("quadcopters.yaml", b)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPromoteNewest(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "0.1", uniform(0.6), created)
	_, newer := addVersion(t, f.World, uniform(0.7), created.Add(time.Hour))
	got, err := Newest(ctx, f.TeamStore, "quick")
	if err != nil {
		t.Fatal(err)
	}
	if got != newer {
		t.Errorf("Newest() = %s, want %s", got, newer)
	}
	if _, err := Newest(ctx, f.TeamStore, "other"); err == nil || !strings.Contains(err.Error(), `no model version of run "other"`) {
		t.Errorf("Newest() of a run without versions: %v", err)
	}
}

// TestPromoteSelfTestsPackedSet: promotion classifies the self-test set the
// version ships with, by the model's class names, and refuses a version
// whose set does not match its manifest.
func TestPromoteSelfTestsPackedSet(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "0.1", uniform(0.6), created)
	res, err := Promote(ctx, Options{RepoDir: f.repo, Run: "quick", Output: f.storeURI, Fleet: "quadcopters", LocalFleet: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.SelfTest.Total != len(classes) || len(res.SelfTest.Classes) != len(classes) || res.SelfTest.Classes[4].Class != "Coat" || res.SelfTest.Classes[4].Total != 1 {
		t.Errorf("self-test = %+v, want 1 image of each of %v", res.SelfTest, classes)
	}

	f = newFixture(t, "0.1", uniform(0.6), created)
	u, _ := url.Parse(f.versionURI)
	set := filepath.Join(u.Path, selftest.FileName)
	b, err := os.ReadFile(set)
	if err != nil {
		t.Fatal(err)
	}
	b[3*512] ^= 1
	if err := os.WriteFile(set, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Promote(ctx, Options{RepoDir: f.repo, Run: "quick", Output: f.storeURI, Fleet: "quadcopters", LocalFleet: true})
	if err == nil || !strings.Contains(err.Error(), selftest.FileName) {
		t.Errorf("Promote() of a version with a tampered self-test set = %v, want an error naming %s", err, selftest.FileName)
	}
	if got, _ := os.ReadFile(filepath.Join(f.repo, "fleets/quadcopters.yaml")); string(got) != pinFile {
		t.Errorf("pin file changed by a refused promotion:\n%s", got)
	}
}

func TestPromoteRefusesFailedGates(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name       string
		minTestAcc string
		metrics    manifest.Metrics
		wantFailed []string
	}{
		{
			name:       "test accuracy and a class",
			minTestAcc: "0.1",
			metrics: func() manifest.Metrics {
				m := uniform(0.6)
				m.TestAccuracy, m.ClassAccuracy[2] = 0.09, 0.41
				return m
			}(),
			wantFailed: []string{"testAccuracy", "classAccuracy[Pullover]"},
		},
		{
			name:       "self-test of broken weights",
			minTestAcc: "0.9",
			metrics:    uniform(0.95),
			wantFailed: []string{"selfTestAccuracy"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.minTestAcc, tt.metrics, created)
			_, err := Promote(ctx, Options{RepoDir: f.repo, Run: "quick", Output: f.storeURI, Fleet: "quadcopters", LocalFleet: true})
			var gateErr *GateError
			if !errors.As(err, &gateErr) {
				t.Fatalf("Promote() error = %v, want a GateError", err)
			}
			var failed []string
			for _, g := range manifest.Failed(gateErr.Gates) {
				failed = append(failed, g.Name)
			}
			if diff := cmp.Diff(tt.wantFailed, failed); diff != "" {
				t.Errorf("failed gates diff (-want +got):\n%s\nerror: %v", diff, err)
			}
			if !strings.Contains(err.Error(), "short by") {
				t.Errorf("error %q does not say by how much", err)
			}
			if got, _ := os.ReadFile(filepath.Join(f.repo, "fleets/quadcopters.yaml")); string(got) != pinFile {
				t.Errorf("pin file changed by a refused promotion:\n%s", got)
			}
		})
	}
}

func TestPromoteRejectsCorruptVersion(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "0.1", uniform(0.6), created)
	u, _ := url.Parse(f.versionURI)
	weights := filepath.Join(u.Path, "model.safetensors")
	b, _ := os.ReadFile(weights)
	b[len(b)-1] ^= 0xff
	os.Chmod(weights, 0o644)
	if err := os.WriteFile(weights, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Promote(ctx, Options{RepoDir: f.repo, Run: "quick", Model: f.versionURI, Fleet: "quadcopters", LocalFleet: true})
	if err == nil || !strings.Contains(err.Error(), "model.safetensors") {
		t.Errorf("Promote() of a corrupted version: %v, want an error naming model.safetensors", err)
	}
}

func TestPromoteSigns(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "0.1", uniform(0.6), created)
	pub, priv, _ := ed25519.GenerateKey(nil)
	for range 2 { // signing twice with the same key is idempotent
		if _, err := Promote(ctx, Options{RepoDir: f.repo, Run: "quick", Model: f.versionURI, Fleet: "quadcopters", LocalFleet: true, SignKey: priv}); err != nil {
			t.Fatal(err)
		}
	}
	s, _ := store.Open(ctx, f.versionURI)
	defer s.Close()
	read := func(key string) []byte {
		r, err := s.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		var b bytes.Buffer
		b.ReadFrom(r)
		return b.Bytes()
	}
	if _, err := pins.VerifySignature([]pins.Key{{Name: "test.pub", Key: pub}}, read(manifest.FileName), read(pins.SignatureFile)); err != nil {
		t.Errorf("signature does not verify: %v", err)
	}
}

func TestGoldenDescription(t *testing.T) {
	input := manifest.Input{Height: 28, Width: 28, Channels: 1, Mean: []float64{0.5}, Std: []float64{0.5}}
	m := func(version string, acc float64) *manifest.Manifest {
		return &manifest.Manifest{
			Run: "quick", Version: version,
			Model:   manifest.Model{Architecture: "small", Parameters: 2010, Input: input, Classes: classes},
			Dataset: manifest.Dataset{URI: "gs://b/datasets/fashion-mnist/d/", Digest: "d"},
			Lineage: manifest.Lineage{GitCommit: "abc123", ImageDigest: "sha256:ff"},
			Metrics: func() manifest.Metrics { x := uniform(acc); x.ModelBytes = 8400; return x }(),
		}
	}
	newMetrics := uniform(0.8)
	newMetrics.ModelBytes = 8400
	res := &Result{
		PinFile:  "fleets/quadcopters.yaml",
		Pin:      pins.Version{URI: "gs://b/models/quick/new/", ManifestDigest: "sha256:00", MinSelfTestAccuracy: 0.65},
		Track:    "stable",
		Manifest: m("new", 0.8),
		Previous: m("old", 0.75),
		Gates: append(manifest.Evaluate(newMetrics, classes[:2], manifest.Gates{MinTestAccuracy: 0.7, MaxModelBytes: 10000}),
			manifest.Evaluate(manifest.Metrics{}, classes[:2], manifest.Gates{MaxModelBytes: 10000})...),
	}
	res.SelfTest.Total, res.SelfTest.Accuracy = 500, 0.79
	got := res.Description()
	golden := filepath.Join("testdata", "description.md")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("Description() diff (-want +got):\n%s", diff)
	}
}

func TestPromoteVersion(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "0.1", uniform(0.6), created)
	addVersion(t, f.World, uniform(0.7), created.Add(time.Hour))
	res, err := Promote(ctx, Options{RepoDir: f.repo, Run: "quick", Output: f.storeURI, Version: f.manifest.Version, Fleet: "quadcopters", LocalFleet: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Pin.URI != f.versionURI {
		t.Errorf("pinned %s, want the named older version %s", res.Pin.URI, f.versionURI)
	}
	_, err = Promote(ctx, Options{RepoDir: f.repo, Run: "quick", Output: f.storeURI, Version: "feedfacefeedface", Fleet: "quadcopters", LocalFleet: true})
	if !errors.Is(err, store.ErrNotExist) {
		t.Errorf("Promote() of a missing version: %v, want ErrNotExist", err)
	}
}

// failedGates promotes f's version to the local fleet and returns the
// names of the failed gates and what each says is missing.
func failedGates(t *testing.T, f *testFixture) []string {
	t.Helper()
	_, err := Promote(context.Background(), Options{RepoDir: f.repo, Run: "quick", Model: f.versionURI, Fleet: "quadcopters", LocalFleet: true})
	var gateErr *GateError
	if !errors.As(err, &gateErr) {
		t.Fatalf("Promote() error = %v, want a GateError", err)
	}
	var failed []string
	for _, g := range manifest.Failed(gateErr.Gates) {
		failed = append(failed, strings.TrimSpace(g.Name+" "+g.Missing))
	}
	if got, _ := os.ReadFile(filepath.Join(f.repo, "fleets/quadcopters.yaml")); string(got) != pinFile {
		t.Errorf("pin file changed by a refused promotion:\n%s", got)
	}
	return failed
}

// TestPromoteFailsClosed: a gate whose figure is missing or incomplete
// fails and says what is missing.
func TestPromoteFailsClosed(t *testing.T) {
	tests := []struct {
		name string
		edit func(*manifest.Manifest)
		want []string
	}{
		{"no classAccuracy", func(m *manifest.Manifest) { m.Metrics.ClassAccuracy = nil },
			[]string{"classAccuracy metrics.classAccuracy has 0 entries for 10 classes in model.classes"}},
		{"2 of 10 classes", func(m *manifest.Manifest) { m.Metrics.ClassAccuracy = m.Metrics.ClassAccuracy[:2] },
			[]string{"classAccuracy metrics.classAccuracy has 2 entries for 10 classes in model.classes"}},
		{"no modelBytes", func(m *manifest.Manifest) { m.Metrics.ModelBytes = 0 },
			[]string{"modelBytes metrics.modelBytes is missing"}},
		{"trained before gates were recorded", func(m *manifest.Manifest) { m.DeclaredGates = nil },
			[]string{"declaredGates manifest.json records no declaredGates: the version was trained before the trainer recorded its run's gates; train it again"}},
		{"no test accuracy gate declared", func(m *manifest.Manifest) { m.DeclaredGates.MinTestAccuracy = 0 },
			[]string{"testAccuracy the run declared no spec.gates.minTestAccuracy, which promotion and the devices' self-test need"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, "0.1", uniform(0.6), created, tt.edit)
			if diff := cmp.Diff(tt.want, failedGates(t, f)); diff != "" {
				t.Errorf("failed gates (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPromoteGatesFromManifest: the gates are those the version recorded
// when it trained, not the run file's at HEAD.
func TestPromoteGatesFromManifest(t *testing.T) {
	m := uniform(0.6)
	m.ClassAccuracy[2] = 0.41 // below the declared 0.5
	f := newFixture(t, "0.1", m, created)
	// After training, someone relaxes the run's gates at HEAD.
	writeFile(t, filepath.Join(f.repo, "apps/jobs/runs/quick.yaml"), strings.Replace(runFile(f.World, "0.1"), "minClassAccuracy: 0.5", "minClassAccuracy: 0.1", 1))
	if diff := cmp.Diff([]string{"classAccuracy[Pullover]"}, failedGates(t, f)); diff != "" {
		t.Errorf("failed gates (-want +got):\n%s", diff)
	}

	// And the other way: a stricter run file at HEAD does not fail a
	// version that passed what its run declared.
	f = newFixture(t, "0.1", uniform(0.6), created)
	writeFile(t, filepath.Join(f.repo, "apps/jobs/runs/quick.yaml"), strings.Replace(runFile(f.World, "0.1"), "minClassAccuracy: 0.5", "minClassAccuracy: 0.9", 1))
	if _, err := Promote(context.Background(), Options{RepoDir: f.repo, Run: "quick", Model: f.versionURI, Fleet: "quadcopters", LocalFleet: true}); err != nil {
		t.Errorf("Promote() with stricter gates at HEAD than the version declared: %v", err)
	}
}

// withLineage gives a manifest the lineage a rendered job records.
func withLineage(m *manifest.Manifest) {
	m.Lineage.GitCommit = strings.Repeat("c", 40)
	m.Lineage.ImageDigest = "sha256:" + strings.Repeat("d", 64)
	m.Dataset.Digest = strings.Repeat("e", 64)
}

// TestPromoteRequiresLineage: a fleet's pin needs a traced version in a
// gs:// store; --local-fleet waives both.
func TestPromoteRequiresLineage(t *testing.T) {
	tests := []struct {
		name  string
		edits []func(*manifest.Manifest)
		want  []string
	}{
		{"trained from flags", []func(*manifest.Manifest){func(m *manifest.Manifest) {
			m.Lineage.GitCommit, m.Lineage.ImageDigest = "unknown", "unknown"
		}}, []string{`lineage.gitCommit "unknown" is not a commit hash`, `lineage.imageDigest "unknown" is not sha256:<64 hex>`,
			"is not in a gs:// store that devices can reach", "--local-fleet"}},
		{"traced but on local disk", []func(*manifest.Manifest){withLineage}, []string{"is not in a gs:// store that devices can reach"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, "0.1", uniform(0.6), created, tt.edits...)
			_, err := Promote(context.Background(), Options{RepoDir: f.repo, Run: "quick", Model: f.versionURI, Fleet: "quadcopters"})
			if err == nil {
				t.Fatal("Promote() to a fleet = nil error, want a refusal")
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Promote() error %q does not say %q", err, want)
				}
			}
			if got, _ := os.ReadFile(filepath.Join(f.repo, "fleets/quadcopters.yaml")); string(got) != pinFile {
				t.Errorf("pin file changed by a refused promotion:\n%s", got)
			}
			if _, err := Promote(context.Background(), Options{RepoDir: f.repo, Run: "quick", Model: f.versionURI, Fleet: "quadcopters", LocalFleet: true}); err != nil {
				t.Errorf("Promote() to a local fleet: %v", err)
			}
		})
	}
}

// TestPromoteFleetFile: the fleet is a DNS label naming its own file
// inside the repository, and the file is read within bounds.
func TestPromoteFleetFile(t *testing.T) {
	ctx := context.Background()
	outside := t.TempDir()
	tests := []struct {
		name  string
		fleet string
		setup func(t *testing.T, repo string)
		want  string
	}{
		{"path in the name", "../../../x", nil, `fleet "../../../x" is not a DNS label`},
		{"uppercase", "Quadcopters", nil, `fleet "Quadcopters" is not a DNS label`},
		{"another fleet inside", "quadcopters", func(t *testing.T, repo string) {
			writeFile(t, filepath.Join(repo, "fleets/quadcopters.yaml"), strings.Replace(pinFile, "fleet: quadcopters", "fleet: drones", 1))
		}, `fleets/quadcopters.yaml:4: fleet: "drones", but the file is quadcopters.yaml`},
		{"unknown field", "quadcopters", func(t *testing.T, repo string) {
			writeFile(t, filepath.Join(repo, "fleets/quadcopters.yaml"), pinFile+"colour: red\n")
		}, "fleets/quadcopters.yaml:11: colour: unknown field"},
		{"too large", "quadcopters", func(t *testing.T, repo string) {
			writeFile(t, filepath.Join(repo, "fleets/quadcopters.yaml"), pinFile+"# "+strings.Repeat("x", pins.MaxBytes)+"\n")
		}, "more than the limit of 65536"},
		{"symlink out of the repo", "quadcopters", func(t *testing.T, repo string) {
			target := filepath.Join(outside, "quadcopters.yaml")
			writeFile(t, target, pinFile)
			p := filepath.Join(repo, "fleets/quadcopters.yaml")
			os.Remove(p)
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
		}, "symlink"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, "0.1", uniform(0.6), created)
			if tt.setup != nil {
				tt.setup(t, f.repo)
			}
			_, err := Promote(ctx, Options{RepoDir: f.repo, Run: "quick", Model: f.versionURI, Fleet: tt.fleet, LocalFleet: true})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Promote(fleet %q) = %v, want an error containing %q", tt.fleet, err, tt.want)
			}
			if strings.Contains(err.Error(), "pins.Pins") {
				t.Errorf("error %q names a Go type", err)
			}
			if got, _ := os.ReadFile(filepath.Join(outside, "quadcopters.yaml")); len(got) > 0 && string(got) != pinFile {
				t.Errorf("file outside the repository rewritten:\n%s", got)
			}
		})
	}
}

// TestPromoteManifestTooLarge: a manifest over manifest.MaxBytes is refused
// without being read whole.
func TestPromoteManifestTooLarge(t *testing.T) {
	f := newFixture(t, "0.1", uniform(0.6), created, func(m *manifest.Manifest) {
		m.Dataset.URI = strings.Repeat("x", manifest.MaxBytes)
	})
	_, err := Promote(context.Background(), Options{RepoDir: f.repo, Run: "quick", Model: f.versionURI, Fleet: "quadcopters", LocalFleet: true})
	if err == nil || !strings.Contains(err.Error(), "manifest.json: more than 1048576 bytes") {
		t.Errorf("Promote() of a version with a 1 MiB manifest = %v, want a size error", err)
	}
}

// FuzzSetPin: whatever pin file parses, setPin either refuses it or
// returns one that parses and pins the version on the track.
func FuzzSetPin(f *testing.F) {
	f.Add([]byte(pinFile), false)
	f.Add([]byte(pinFile+"canary:\n  uri: gs://aerie-dev-training/models/quick/1/\n  manifestDigest: sha256:"+strings.Repeat("1", 64)+"\n  minSelfTestAccuracy: 0.5\n  percent: 5\n"), true)
	f.Add([]byte("apiVersion: aerie.dev/v1alpha1\nkind: FleetPins\nfleet: quadcopters\nstable: {uri: 'file:///m/', manifestDigest: 'sha256:"+strings.Repeat("2", 64)+"', minSelfTestAccuracy: 1}\n"), false)
	ver := pins.Version{URI: "gs://aerie-dev-training/models/quick/feedfacefeedface/", ManifestDigest: "sha256:" + strings.Repeat("f", 64), MinSelfTestAccuracy: 0.65}
	f.Fuzz(func(t *testing.T, data []byte, canary bool) {
		if _, err := pins.Parse("quadcopters.yaml", data); err != nil {
			return
		}
		track, percent := "stable", 0
		if canary {
			track, percent = "canary", 7
		}
		out, err := setPin("quadcopters.yaml", data, track, ver, percent)
		if err != nil {
			return
		}
		p, err := pins.Parse("quadcopters.yaml", out)
		if err != nil {
			t.Fatalf("setPin output does not parse: %v\n%s", err, out)
		}
		got := p.Stable
		if canary {
			got = p.Canary.Version
		}
		if diff := cmp.Diff(ver, got); diff != "" {
			t.Fatalf("setPin %s pin (-want +got):\n%s", track, diff)
		}
	})
}
