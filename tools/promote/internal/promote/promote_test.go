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
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/aerie-ml/aerie/internal/fmnist"
	"github.com/aerie-ml/aerie/internal/manifest"
	"github.com/aerie-ml/aerie/internal/model"
	"github.com/aerie-ml/aerie/internal/pins"
	"github.com/aerie-ml/aerie/internal/store"
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

func runFile(minTestAccuracy string) string {
	return `apiVersion: aerie.dev/v1alpha1
kind: TrainingRun
metadata:
  name: quick
spec:
  model:
    architecture: small
  dataset:
    uri: gs://aerie-dev-training/datasets/fashion-mnist/` + strings.Repeat("a", 64) + `/
    sha256: ` + strings.Repeat("a", 64) + `
  output:
    uri: gs://aerie-dev-training
  gates:
    minTestAccuracy: ` + minTestAccuracy + `
    minClassAccuracy: 0.5
    maxModelBytes: 100000
  image: example.com/trainer@sha256:` + strings.Repeat("b", 64) + `
`
}

// fixture is a repository checkout and a file:// store holding one
// version of the "small" model with freshly initialized weights.
type fixture struct {
	repo, storeURI, versionURI string
	manifest                   *manifest.Manifest
}

func newFixture(t *testing.T, minTestAccuracy string, metrics manifest.Metrics, created time.Time) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{repo: t.TempDir()}
	writeFile(t, filepath.Join(f.repo, "apps/jobs/runs/quick.yaml"), runFile(minTestAccuracy))
	writeFile(t, filepath.Join(f.repo, "edge/fleets/quadcopters.yaml"), pinFile)

	root := t.TempDir()
	f.storeURI = (&url.URL{Scheme: "file", Path: root}).String()
	f.manifest, f.versionURI = addVersion(t, ctx, f.storeURI, metrics, created)
	return f
}

func addVersion(t *testing.T, ctx context.Context, storeURI string, metrics manifest.Metrics, created time.Time) (*manifest.Manifest, string) {
	t.Helper()
	arch, err := model.Lookup("small")
	if err != nil {
		t.Fatal(err)
	}
	var tensors []model.Tensor
	for i, p := range arch.Params() {
		tensors = append(tensors, model.FromFloat32s(p.Name, p.Shape, arch.Init(uint64(created.Unix()))[i]))
	}
	var weights bytes.Buffer
	if err := model.Encode(&weights, tensors, map[string]string{model.MetadataArchitecture: "small"}); err != nil {
		t.Fatal(err)
	}
	file, _ := manifest.Describe("model.safetensors", bytes.NewReader(weights.Bytes()))
	version := file.SHA256[:16]
	metrics.ModelBytes = file.Size
	m := &manifest.Manifest{
		SchemaVersion: manifest.SchemaVersion, Run: "quick", Version: version, CreatedAt: created,
		Model:   manifest.Model{Architecture: "small", Parameters: arch.NumParams(), Weights: file.Name, Input: []int{28, 28, 1}, Classes: fmnist.Classes[:]},
		Files:   []manifest.File{file},
		Metrics: metrics,
	}
	raw, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(ctx, storeURI)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	prefix := store.ModelPrefix("quick", version)
	for key, b := range map[string][]byte{prefix + file.Name: weights.Bytes(), prefix + manifest.FileName: raw} {
		if err := s.Put(ctx, key, bytes.NewReader(b), store.PutOptions{IfNotExists: true}); err != nil {
			t.Fatal(err)
		}
	}
	return m, s.URI(prefix)
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

// uniform is a model's metrics: every class at acc.
func uniform(acc float64) manifest.Metrics {
	m := manifest.Metrics{TestAccuracy: acc}
	for range fmnist.NumClasses {
		m.ClassAccuracy = append(m.ClassAccuracy, acc)
	}
	return m
}

var created = time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)

// A freshly initialized model classifies about one image in ten correctly:
// it clears a self-test threshold of 0.05 (minTestAccuracy 0.1) and fails
// one of 0.85.

func TestPromoteStable(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "0.1", uniform(0.6), created)
	res, err := Promote(ctx, Options{RepoDir: f.repo, Run: "quick", Output: f.storeURI, Fleet: "quadcopters"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Pin.URI != f.versionURI {
		t.Errorf("pinned %s, want the only version %s", res.Pin.URI, f.versionURI)
	}
	got, err := os.ReadFile(filepath.Join(f.repo, "edge/fleets/quadcopters.yaml"))
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
	if _, err := Promote(ctx, Options{RepoDir: f.repo, Run: "quick", Model: f.versionURI, Fleet: "quadcopters", CanaryPercent: 10}); err != nil {
		t.Fatal(err)
	}
	p := readPins(t, f.repo)
	if p.Canary == nil || p.Canary.Percent != 10 || p.Canary.URI != f.versionURI || !p.Stable.Placeholder() {
		t.Fatalf("after canary promotion: stable %+v, canary %+v; want the version as a 10%% canary", p.Stable, p.Canary)
	}
	if _, err := Promote(ctx, Options{RepoDir: f.repo, Run: "quick", Model: f.versionURI, Fleet: "quadcopters"}); err != nil {
		t.Fatal(err)
	}
	p = readPins(t, f.repo)
	if p.Canary != nil || p.Stable.URI != f.versionURI {
		t.Errorf("after stable promotion: stable %+v, canary %+v; want the version stable and no canary", p.Stable, p.Canary)
	}
}

func readPins(t *testing.T, repo string) *pins.Pins {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo, "edge/fleets/quadcopters.yaml"))
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
	_, newer := addVersion(t, ctx, f.storeURI, uniform(0.7), created.Add(time.Hour))
	got, err := Newest(ctx, f.storeURI, "quick")
	if err != nil {
		t.Fatal(err)
	}
	if got != newer {
		t.Errorf("Newest() = %s, want %s", got, newer)
	}
	if _, err := Newest(ctx, f.storeURI, "other"); err == nil || !strings.Contains(err.Error(), `no model version of run "other"`) {
		t.Errorf("Newest() of a run without versions: %v", err)
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
				m.TestAccuracy, m.ClassAccuracy[6] = 0.09, 0.41
				return m
			}(),
			wantFailed: []string{"testAccuracy", "classAccuracy[Shirt]"},
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
			_, err := Promote(ctx, Options{RepoDir: f.repo, Run: "quick", Output: f.storeURI, Fleet: "quadcopters"})
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
			if got, _ := os.ReadFile(filepath.Join(f.repo, "edge/fleets/quadcopters.yaml")); string(got) != pinFile {
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
	_, err := Promote(ctx, Options{RepoDir: f.repo, Run: "quick", Model: f.versionURI, Fleet: "quadcopters"})
	if err == nil || !strings.Contains(err.Error(), "model.safetensors") {
		t.Errorf("Promote() of a corrupted version: %v, want an error naming model.safetensors", err)
	}
}

func TestPromoteSigns(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "0.1", uniform(0.6), created)
	pub, priv, _ := ed25519.GenerateKey(nil)
	for range 2 { // signing twice with the same key is idempotent
		if _, err := Promote(ctx, Options{RepoDir: f.repo, Run: "quick", Model: f.versionURI, Fleet: "quadcopters", SignKey: priv}); err != nil {
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
	m := func(version string, acc float64) *manifest.Manifest {
		return &manifest.Manifest{
			Run: "quick", Version: version,
			Model:   manifest.Model{Architecture: "small", Parameters: 2010, Classes: fmnist.Classes[:]},
			Dataset: manifest.Dataset{URI: "gs://b/datasets/fashion-mnist/d/", Digest: "d"},
			Lineage: manifest.Lineage{GitCommit: "abc123", ImageDigest: "sha256:ff"},
			Metrics: func() manifest.Metrics { x := uniform(acc); x.ModelBytes = 8400; return x }(),
		}
	}
	res := &Result{
		PinFile:  "edge/fleets/quadcopters.yaml",
		Pin:      pins.Version{URI: "gs://b/models/quick/new/", ManifestDigest: "sha256:00", MinSelfTestAccuracy: 0.65},
		Track:    "stable",
		Manifest: m("new", 0.8),
		Previous: m("old", 0.75),
		Gates:    manifest.Evaluate(uniform(0.8), fmnist.Classes[:2], manifest.Gates{MinTestAccuracy: 0.7, MaxModelBytes: 10000}),
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
	addVersion(t, ctx, f.storeURI, uniform(0.7), created.Add(time.Hour))
	res, err := Promote(ctx, Options{RepoDir: f.repo, Run: "quick", Output: f.storeURI, Version: f.manifest.Version, Fleet: "quadcopters"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Pin.URI != f.versionURI {
		t.Errorf("pinned %s, want the named older version %s", res.Pin.URI, f.versionURI)
	}
	_, err = Promote(ctx, Options{RepoDir: f.repo, Run: "quick", Output: f.storeURI, Version: "feedfacefeedface", Fleet: "quadcopters"})
	if !errors.Is(err, store.ErrNotExist) {
		t.Errorf("Promote() of a missing version: %v, want ErrNotExist", err)
	}
}
