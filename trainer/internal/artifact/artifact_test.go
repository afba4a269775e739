package artifact

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/aerie-ml/aerie/internal/arch"
	"github.com/aerie-ml/aerie/internal/dataset"
	"github.com/aerie-ml/aerie/internal/exitcode"
	"github.com/aerie-ml/aerie/internal/manifest"
	"github.com/aerie-ml/aerie/internal/selftest"
	"github.com/aerie-ml/aerie/internal/store"
)

// fashionClasses are Fashion-MNIST's class names, in label order.
var fashionClasses = []string{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"}

// recorder is a real store that remembers the order of Puts and can fail
// the Put of one key, as a crash or an outage would.
type recorder struct {
	store.Store
	mu     sync.Mutex
	puts   []string
	failOn string
}

var errInjected = errors.New("injected outage")

func (r *recorder) Put(ctx context.Context, key string, rd io.Reader, opts store.PutOptions) error {
	r.mu.Lock()
	r.puts = append(r.puts, key)
	fail := key == r.failOn
	r.mu.Unlock()
	if fail {
		return errInjected
	}
	return r.Store.Put(ctx, key, rd, opts)
}

func open(t *testing.T) (*recorder, string) {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(t.Context(), "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &recorder{Store: st}, dir
}

func model(weights string) Model {
	epochs := []manifest.Epoch{
		{Epoch: 1, Step: 10, LearningRate: 0.001, TrainLoss: 0.9, TrainAccuracy: 0.7, ValLoss: 0.8, ValAccuracy: 0.72, ImagesPerSecond: 500, Seconds: 1.3},
		{Epoch: 2, Step: 20, LearningRate: 0.001, TrainLoss: 0.6, TrainAccuracy: 0.8, ValLoss: 0.65, ValAccuracy: 0.79, ImagesPerSecond: 510, Seconds: 1.25},
	}
	confusion := make([][]float64, len(fashionClasses))
	classAcc := make([]float64, len(fashionClasses))
	for i := range confusion {
		confusion[i] = make([]float64, len(fashionClasses))
		classAcc[i] = 0.9 - 0.02*float64(i)
		confusion[i][i] = classAcc[i]
		confusion[i][(i+1)%len(fashionClasses)] = 1 - classAcc[i]
	}
	return Model{
		Run:        "fmnist-small",
		Spec:       smallSpec,
		Parameters: 2010,
		Weights:    []byte(weights),
		Classes:    fashionClasses,
		Input:      manifest.Input{Height: 28, Width: 28, Channels: 1, Mean: []float64{0.5}, Std: []float64{0.5}},
		SelfTest:   selfTestSet(),
		Metrics: manifest.Metrics{
			Epochs: epochs, TestLoss: 0.66, TestAccuracy: 0.81,
			ClassAccuracy: classAcc, Confusion: confusion,
			ImagesPerSecond: 505, CPUUtilization: 0.91, PeakRSSBytes: 200 << 20, WallSeconds: 2.6,
		},
		Dataset:         manifest.Dataset{URI: "file:///usr/share/datasets/fashion-mnist", Digest: "f37bf62265b0989968a94c78e420344f1ede1007dabf032a0dc5e88371fef370"},
		Lineage:         LineageFromEnv(env{"AERIE_GIT_COMMIT": "2a8ff51", "AERIE_IMAGE_DIGEST": "sha256:abc"}.get, 1, ""),
		Hyperparameters: manifest.Hyperparameters{Epochs: 2, BatchSize: 64, LearningRate: 0.001, Schedule: "constant", Optimizer: "adam", Seed: 7},
		Gates:           manifest.Gates{MinTestAccuracy: 0.8, MinClassAccuracy: 0.73, MaxModelBytes: 1 << 20},
		CreatedAt:       time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC),
	}
}

// smallSpec is models/small.yaml in canonical form.
var smallSpec = func() string {
	data, err := os.ReadFile(filepath.Join("..", "..", "..", arch.Dir, "small.yaml"))
	if err != nil {
		panic(err)
	}
	s, err := arch.Parse("small.yaml", data)
	if err != nil {
		panic(err)
	}
	enc, err := arch.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(enc)
}()

// selfTestSet is a set of one blank image of each class.
func selfTestSet() *selftest.Packed {
	var b bytes.Buffer
	w := dataset.NewShardWriter(&b, dataset.Shape{Height: 28, Width: 28, Channels: 1})
	counts := make([]int, len(fashionClasses))
	for c := range counts {
		w.Add(c, make([]byte, 28*28))
		counts[c] = 1
	}
	w.Close()
	return &selftest.Packed{Data: b.Bytes(), Entry: manifest.SelfTest{File: selftest.FileName, Split: "test", Seed: 7, PerClass: 1, ClassCounts: counts}}
}

type env map[string]string

func (e env) get(k string) string { return e[k] }

func TestWrite(t *testing.T) {
	ctx := t.Context()
	st, dir := open(t)
	m := model("weights v1")
	v, err := Write(ctx, st, m)
	if err != nil {
		t.Fatalf("Write() error = %v", err)
	}
	version := VersionOf([]byte("weights v1"))
	if len(version) != 16 || v.Manifest.Version != version || v.Prefix != "models/fmnist-small/"+version+"/" || v.Existed {
		t.Fatalf("Write() = version %q prefix %q existed %v, want version %q", v.Manifest.Version, v.Prefix, v.Existed, version)
	}
	if want := "file://" + filepath.Join(dir, v.Prefix) + "/"; v.URI != want {
		t.Errorf("URI = %q, want %q", v.URI, want)
	}

	wantPuts := []string{WeightsFile, MetricsFile, ReportFile, selftest.FileName, manifest.FileName}
	for i := range wantPuts {
		wantPuts[i] = v.Prefix + wantPuts[i]
	}
	if diff := cmp.Diff(wantPuts, st.puts); diff != "" {
		t.Errorf("Puts diff, want manifest.json last (-want +got):\n%s", diff)
	}

	// What is on disk is what the manifest says.
	vdir := filepath.Join(dir, v.Prefix)
	mb, err := os.ReadFile(filepath.Join(vdir, manifest.FileName))
	if err != nil {
		t.Fatal(err)
	}
	got, err := manifest.Parse(mb)
	if err != nil {
		t.Fatalf("stored manifest: %v", err)
	}
	if diff := cmp.Diff(v.Manifest, got); diff != "" {
		t.Errorf("stored manifest differs from the returned one (-want +got):\n%s", diff)
	}
	if v.ManifestDigest != manifest.Digest(mb) {
		t.Errorf("ManifestDigest = %s, want %s", v.ManifestDigest, manifest.Digest(mb))
	}
	if err := got.Verify(os.DirFS(vdir)); err != nil {
		t.Errorf("Verify() = %v", err)
	}
	var names []string
	for _, f := range got.Files {
		names = append(names, f.Name)
	}
	if diff := cmp.Diff([]string{WeightsFile, MetricsFile, ReportFile, selftest.FileName}, names); diff != "" {
		t.Errorf("manifest files diff (-want +got):\n%s", diff)
	}

	// The manifest's figures.
	if got.Metrics.ModelBytes != int64(len("weights v1")) || got.Metrics.Parameters != 2010 || got.Model.Parameters != 2010 || got.Model.Architecture != "small" {
		t.Errorf("model bytes %d, parameters %d/%d, architecture %q, want %d, 2010, small", got.Metrics.ModelBytes, got.Metrics.Parameters, got.Model.Parameters, got.Model.Architecture, len("weights v1"))
	}
	if string(got.Model.Spec) != string(smallSpec) || got.SelfTest.Samples() != len(fashionClasses) {
		t.Errorf("spec %s, self-test %+v; want small's canonical spec and one image a class", got.Model.Spec, got.SelfTest)
	}
	if diff := cmp.Diff(fashionClasses, got.Model.Classes); diff != "" {
		t.Errorf("classes diff (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(manifest.Lineage{GitCommit: "2a8ff51", ImageDigest: "sha256:abc", WorldSize: 1}, got.Lineage); diff != "" {
		t.Errorf("lineage diff (-want +got):\n%s", diff)
	}
	// The run's declared gates are recorded, for promotion to check.
	if diff := cmp.Diff(&manifest.Gates{MinTestAccuracy: 0.8, MinClassAccuracy: 0.73, MaxModelBytes: 1 << 20}, got.DeclaredGates); diff != "" {
		t.Errorf("declared gates diff (-want +got):\n%s", diff)
	}
	failed := manifest.Failed(got.Gates)
	if len(got.Gates) != 12 || len(failed) != 1 || failed[0].Name != "classAccuracy[Ankle boot]" {
		t.Errorf("gates = %s, want 12 with only Ankle boot (0.72 < 0.73) failing", manifest.Report(got.Gates))
	}

	// metrics.jsonl holds the epochs, one per line.
	jsonl, err := os.ReadFile(filepath.Join(vdir, MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	var epochs []manifest.Epoch
	dec := json.NewDecoder(bytes.NewReader(jsonl))
	dec.DisallowUnknownFields()
	for dec.More() {
		var e manifest.Epoch
		if err := dec.Decode(&e); err != nil {
			t.Fatal(err)
		}
		epochs = append(epochs, e)
	}
	if diff := cmp.Diff(m.Metrics.Epochs, epochs); diff != "" || strings.Count(string(jsonl), "\n") != 2 {
		t.Errorf("metrics.jsonl = %q, epochs diff (-want +got):\n%s", jsonl, diff)
	}

	// The card names the version and draws the curves and the confusion matrix.
	card, err := os.ReadFile(filepath.Join(vdir, ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{version, "81.00%", `<svg class="chart curves"`, `<svg class="chart confusion"`, "2a8ff51", got.Files[0].SHA256} {
		if !bytes.Contains(card, []byte(want)) {
			t.Errorf("report.html lacks %q", want)
		}
	}
}

// files returns every file under dir with its content.
func files(t *testing.T, dir string) map[string]string {
	t.Helper()
	got := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		got[strings.TrimPrefix(path, dir)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestWriteAgain(t *testing.T) {
	ctx := t.Context()
	st, dir := open(t)
	first, err := Write(ctx, st, model("weights"))
	if err != nil {
		t.Fatal(err)
	}
	before := files(t, dir)

	// A retried pod trains the same weights again, with other timings.
	again := model("weights")
	again.Metrics.ImagesPerSecond = 999
	again.CreatedAt = again.CreatedAt.Add(time.Hour)
	st.puts = nil
	v, err := Write(ctx, st, again)
	if err != nil {
		t.Fatalf("second Write() error = %v", err)
	}
	if !v.Existed || v.ManifestDigest != first.ManifestDigest || v.Manifest.Metrics.ImagesPerSecond != 505 {
		t.Errorf("second Write() = existed %v digest %s ips %v, want the first version (digest %s) reported as existing",
			v.Existed, v.ManifestDigest, v.Manifest.Metrics.ImagesPerSecond, first.ManifestDigest)
	}
	if len(st.puts) != 0 {
		t.Errorf("second Write() stored %v, want nothing", st.puts)
	}
	if diff := cmp.Diff(before, files(t, dir)); diff != "" {
		t.Errorf("files changed (-before +after):\n%s", diff)
	}

	// Other weights are another version beside it.
	other, err := Write(ctx, st, model("other weights"))
	if err != nil || other.Existed || other.Prefix == first.Prefix {
		t.Fatalf("Write(other weights) = %+v, %v, want a new version", other, err)
	}
}

func TestWriteResumesInterruptedWrite(t *testing.T) {
	ctx := t.Context()
	st, dir := open(t)
	st.failOn = "models/fmnist-small/" + VersionOf([]byte("weights")) + "/" + ReportFile
	_, err := Write(ctx, st, model("weights"))
	if !errors.Is(err, errInjected) {
		t.Fatalf("Write() with an outage error = %v, want the outage", err)
	}
	// An incomplete version: files but no manifest.
	if _, err := os.Stat(filepath.Join(dir, "models/fmnist-small", VersionOf([]byte("weights")), manifest.FileName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("manifest after an interrupted write: %v, want none", err)
	}
	st.failOn = ""
	v, err := Write(ctx, st, model("weights"))
	if err != nil || v.Existed {
		t.Fatalf("Write() after the outage = %+v, %v, want it completed", v, err)
	}
	if err := v.Manifest.Verify(os.DirFS(filepath.Join(dir, v.Prefix))); err != nil {
		t.Errorf("Verify() = %v", err)
	}
}

func TestWriteConflict(t *testing.T) {
	ctx := t.Context()
	st, dir := open(t)
	prefix := store.ModelPrefix("fmnist-small", VersionOf([]byte("weights")))
	// An earlier attempt died after writing metrics.jsonl with other
	// figures.
	if err := st.Put(ctx, prefix+MetricsFile, strings.NewReader("{}\n"), store.PutOptions{IfNotExists: true}); err != nil {
		t.Fatal(err)
	}
	_, err := Write(ctx, st, model("weights"))
	var conflict *ConflictError
	if !errors.As(err, &conflict) || !strings.HasSuffix(conflict.URI, prefix+MetricsFile) {
		t.Fatalf("Write() error = %v, want a ConflictError naming %s", err, prefix+MetricsFile)
	}
	if code := exitcode.Of(err); code != exitcode.Config {
		t.Errorf("exit code %d, want permanent %d", code, exitcode.Config)
	}
	if !strings.Contains(err.Error(), "delete the version's directory") {
		t.Errorf("error %q does not say what to do", err)
	}
	if got := files(t, dir)[filepath.Join("/", prefix, MetricsFile)]; got != "{}\n" {
		t.Errorf("metrics.jsonl = %q, want the stored content left alone", got)
	}
	if _, err := os.Stat(filepath.Join(dir, prefix, manifest.FileName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("manifest after a conflict: %v, want none", err)
	}
}

func TestWriteErrors(t *testing.T) {
	ctx := t.Context()
	st, _ := open(t)
	if _, err := Write(ctx, st, Model{Run: "r"}); err == nil || !strings.Contains(err.Error(), "no weights") {
		t.Errorf("Write() without weights error = %v, want it to say so", err)
	}
	ragged := model("weights").Metrics.Confusion
	ragged[3] = ragged[3][:9]
	for _, tt := range []struct {
		name      string
		confusion [][]float64
		want      string
	}{
		{"without a confusion matrix", nil, "has 0 rows, want one per class (10)"},
		{"with a ragged confusion matrix", ragged, "row 3 has 9 columns, want 10"},
	} {
		m := model("weights")
		m.Metrics.Confusion = tt.confusion
		if _, err := Write(ctx, st, m); err == nil || !strings.Contains(err.Error(), tt.want) || len(st.puts) != 0 {
			t.Errorf("Write() %s = %v after storing %v, want an error saying %q before storing anything", tt.name, err, st.puts, tt.want)
		}
	}
}
