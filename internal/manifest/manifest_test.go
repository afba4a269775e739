package manifest

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/aerie-ml/aerie/internal/arch"
	"github.com/aerie-ml/aerie/internal/dataset"
)

// smallSpec is models/small.yaml in canonical form.
func smallSpec(t testing.TB) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", arch.Dir, "small.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := arch.Parse("small.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := arch.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(enc)
}

func sample(t testing.TB, fsys fstest.MapFS) *Manifest {
	t.Helper()
	m := &Manifest{
		SchemaVersion: SchemaVersion,
		Run:           "fmnist",
		Version:       "0123456789abcdef",
		CreatedAt:     time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC),
		Model: Model{Architecture: "small", Spec: smallSpec(t), Parameters: 196*2 + 2 + 40, Weights: "model.safetensors",
			Input:   Input{Height: 28, Width: 28, Channels: 1, Mean: []float64{0.5}, Std: []float64{0.5}},
			Classes: []string{"cat", "dog"}},
		Dataset:       Dataset{URI: "file:///data", Digest: strings.Repeat("c", 64)},
		Metrics:       Metrics{TestAccuracy: 0.9, ClassAccuracy: []float64{0.9, 0.7}, ModelBytes: 1000},
		DeclaredGates: &Gates{MinTestAccuracy: 0.85, MaxModelBytes: 4096},
		SelfTest:      SelfTest{File: "selftest.tar", Split: "test", Seed: 1, PerClass: 2, ClassCounts: []int{2, 1}},
	}
	for _, name := range []string{"model.safetensors", "metrics.jsonl", "selftest.tar"} {
		f, err := Describe(name, strings.NewReader(string(fsys[name].Data)))
		if err != nil {
			t.Fatal(err)
		}
		m.Files = append(m.Files, f)
	}
	return m
}

func files() fstest.MapFS {
	var set bytes.Buffer
	w := dataset.NewShardWriter(&set, dataset.Shape{Height: 28, Width: 28, Channels: 1})
	for _, c := range []int{0, 0, 1} {
		w.Add(c, make([]byte, 28*28))
	}
	w.Close()
	return fstest.MapFS{
		"model.safetensors": {Data: []byte("weights")},
		"metrics.jsonl":     {Data: []byte("{}\n")},
		"selftest.tar":      {Data: set.Bytes()},
	}
}

func TestRoundTrip(t *testing.T) {
	m := sample(t, files())
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(m, got); diff != "" {
		t.Errorf("Parse(Marshal(m)) diff (-want +got):\n%s", diff)
	}
	if d := Digest(b); !strings.HasPrefix(d, "sha256:") || len(d) != len("sha256:")+64 {
		t.Errorf("Digest() = %q, want sha256:<64 hex>", d)
	}
}

func TestParseErrors(t *testing.T) {
	good, err := sample(t, files()).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, in, wantErr string
	}{
		{"unknown field", strings.Replace(string(good), `"run":`, `"extra": 1, "run":`, 1), `unknown field "extra"`},
		{"schema", strings.Replace(string(good), SchemaVersion, "v0", 1), `schemaVersion "v0"`},
		{"trailing", string(good) + "{}", "trailing data"},
		{"escaping path", strings.Replace(string(good), `"metrics.jsonl"`, `"../metrics.jsonl"`, 1), `files[1].name "../metrics.jsonl" is not a plain relative path`},
		{"bad digest", strings.Replace(string(good), `"sha256": "`, `"sha256": "zz`, 1), "files[0].sha256"},
		{"weights missing", strings.Replace(string(good), `"weights": "model.safetensors"`, `"weights": "w.bin"`, 1), `model.weights "w.bin" is not among files`},
		{"not json", "<html>", "decode manifest.json"},
		{"v1", strings.Replace(string(good), SchemaVersion, SchemaV1, 1), "train the run again"},
		{"no spec", strings.Replace(string(good), `"spec": "`, `"spez": "`, 1), `unknown field "spez"`},
		{"spec of another name", strings.Replace(string(good), `"architecture": "small"`, `"architecture": "cnn"`, 1), `model.architecture "cnn", but model.spec is "small"`},
		{"bad spec", strings.Replace(string(good), `filters: 4,`, `filters: 0,`, 1), "layers[0].conv.filters: must be an integer between 1 and 4096, got 0"},
		{"parameters", strings.Replace(string(good), `"parameters": 434`, `"parameters": 435`, 1), "model.parameters 435, but model.spec has 434"},
		{"channels", strings.Replace(string(good), `"channels": 1`, `"channels": 2`, 1), "model.input: channels 2, want 1 or 3"},
		{"std 0", strings.Replace(string(good), `"std": [
        0.5`, `"std": [
        0`, 1), "model.input: std[0]: must be a finite number above 0, got 0"},
		{"repeated class", strings.Replace(string(good), `"dog"`, `"cat"`, 1), `model.classes: classes[1] "cat" repeats classes[0]`},
		{"no dataset digest", strings.Replace(string(good), strings.Repeat("c", 64), "", 1), `dataset.digest "" is not 64 hex digits`},
		{"self-test file", strings.Replace(string(good), `"file": "selftest.tar"`, `"file": "other.tar"`, 1), `selfTest.file "other.tar" is not among files`},
		{"self-test counts", strings.Replace(string(good), `"classCounts": [
      2,
      1`, `"classCounts": [
      2,
      2`, 1), "selfTest.file selftest.tar is 8704 bytes, but 4 images of 28x28x1 take 11264"},
		{"self-test over perClass", strings.Replace(string(good), `"perClass": 2`, `"perClass": 1`, 1), "selfTest.classCounts[0] is 2, want 0 to perClass (1)"},
		{"too large", strings.Replace(string(good), `"run":`, `"run": "`+strings.Repeat("x", MaxBytes)+`", "run":`, 1), "manifest.json: more than 1048576 bytes: manifest too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Parse() error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	fsys := files()
	m := sample(t, fsys)
	if err := m.Verify(fsys); err != nil {
		t.Fatalf("Verify() = %v, want nil", err)
	}
	fsys["model.safetensors"] = &fstest.MapFile{Data: []byte("weightz")}
	var mismatch *MismatchError
	if err := m.Verify(fsys); !errors.As(err, &mismatch) || mismatch.File != "model.safetensors" {
		t.Errorf("Verify() of a corrupted file = %v, want a MismatchError naming model.safetensors", err)
	}
	delete(fsys, "metrics.jsonl")
	if err := m.Verify(fsys); err == nil {
		t.Error("Verify() with a missing file = nil, want an error")
	}
}

func TestEvaluate(t *testing.T) {
	metrics := Metrics{TestAccuracy: 0.9, ClassAccuracy: []float64{0.95, 0.7}, ModelBytes: 2000}
	tests := []struct {
		name  string
		gates Gates
		want  []GateResult
	}{
		{"none", Gates{}, nil},
		{"all", Gates{MinTestAccuracy: 0.85, MinClassAccuracy: 0.8, MaxModelBytes: 1000}, []GateResult{
			{Name: "testAccuracy", Comparison: ">=", Threshold: 0.85, Value: 0.9, Passed: true},
			{Name: "classAccuracy[T-shirt/top]", Comparison: ">=", Threshold: 0.8, Value: 0.95, Passed: true},
			{Name: "classAccuracy[Trouser]", Comparison: ">=", Threshold: 0.8, Value: 0.7, Passed: false},
			{Name: "modelBytes", Comparison: "<=", Threshold: 1000, Value: 2000, Passed: false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Evaluate(metrics, []string{"T-shirt/top", "Trouser"}, tt.gates)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Evaluate() diff (-want +got):\n%s", diff)
			}
		})
	}
}

// TestEvaluateFailsClosed: a gate whose figures are absent or incomplete
// is a failed gate that says what is missing.
func TestEvaluateFailsClosed(t *testing.T) {
	classes := []string{"T-shirt/top", "Trouser", "Pullover"}
	gates := Gates{MinClassAccuracy: 0.5, MaxModelBytes: 1000}
	tests := []struct {
		name    string
		metrics Metrics
		classes []string
		want    []GateResult
	}{
		{"no classAccuracy, no modelBytes", Metrics{}, classes, []GateResult{
			{Name: "classAccuracy", Missing: "metrics.classAccuracy has 0 entries for 3 classes in model.classes"},
			{Name: "modelBytes", Missing: "metrics.modelBytes is missing"},
		}},
		{"2 of 3 classes", Metrics{ClassAccuracy: []float64{0.9, 0.9}, ModelBytes: 10}, classes, []GateResult{
			{Name: "classAccuracy", Missing: "metrics.classAccuracy has 2 entries for 3 classes in model.classes"},
			{Name: "classAccuracy[T-shirt/top]", Comparison: ">=", Threshold: 0.5, Value: 0.9, Passed: true},
			{Name: "classAccuracy[Trouser]", Comparison: ">=", Threshold: 0.5, Value: 0.9, Passed: true},
			{Name: "modelBytes", Comparison: "<=", Threshold: 1000, Value: 10, Passed: true},
		}},
		{"no classes", Metrics{ClassAccuracy: []float64{0.9}, ModelBytes: 10}, nil, []GateResult{
			{Name: "classAccuracy", Missing: "model.classes is empty: the classes to check are unknown"},
			{Name: "classAccuracy[0]", Comparison: ">=", Threshold: 0.5, Value: 0.9, Passed: true},
			{Name: "modelBytes", Comparison: "<=", Threshold: 1000, Value: 10, Passed: true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Evaluate(tt.metrics, tt.classes, gates)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Evaluate() diff (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheckLineage(t *testing.T) {
	m := sample(t, files())
	m.Dataset.Digest = ""
	var le *LineageError
	if err := m.CheckLineage(); !errors.As(err, &le) {
		t.Fatalf("CheckLineage() of a manifest without lineage = %v, want a *LineageError", err)
	}
	want := []string{`lineage.gitCommit "" is not a commit hash`, `lineage.imageDigest "" is not sha256:<64 hex>`, `dataset.digest "" is not 64 hex digits`}
	if diff := cmp.Diff(want, le.Problems); diff != "" {
		t.Errorf("CheckLineage() problems (-want +got):\n%s", diff)
	}
	m.Lineage.GitCommit, m.Lineage.ImageDigest = "unknown", "unknown"
	if err := m.CheckLineage(); err == nil || !strings.Contains(err.Error(), `lineage.gitCommit "unknown"`) {
		t.Errorf("CheckLineage() with commit unknown = %v", err)
	}
	m.Lineage.GitCommit = strings.Repeat("a", 40)
	m.Lineage.ImageDigest = "sha256:" + strings.Repeat("b", 64)
	m.Dataset.Digest = strings.Repeat("c", 64)
	if err := m.CheckLineage(); err != nil {
		t.Errorf("CheckLineage() of a traced manifest = %v", err)
	}
}

func TestReport(t *testing.T) {
	results := Evaluate(Metrics{TestAccuracy: 0.8, ModelBytes: 10}, nil, Gates{MinTestAccuracy: 0.85, MaxModelBytes: 100})
	results = append(results, Evaluate(Metrics{}, nil, Gates{MaxModelBytes: 100})...)
	want := "FAIL testAccuracy: 0.8 >= 0.85 (margin -0.05)\nFAIL modelBytes: metrics.modelBytes is missing\npass modelBytes: 10 <= 100 (margin +90)\n"
	if diff := cmp.Diff(want, Report(results)); diff != "" {
		t.Errorf("Report() diff (-want +got):\n%s", diff)
	}
	if got := len(Failed(results)); got != 2 {
		t.Errorf("len(Failed()) = %d, want 2", got)
	}
}

func FuzzParse(f *testing.F) {
	good, _ := sample(f, files()).Marshal()
	f.Add(good)
	f.Add([]byte(`{"schemaVersion":"aerie.dev/model-manifest/v1"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			return
		}
		out, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(out); err != nil {
			t.Fatalf("re-parse of a marshalled manifest: %v", err)
		}
	})
}

// TestGateResultString: byte counts read as integers, ratios to 4 digits.
func TestGateResultString(t *testing.T) {
	for _, tt := range []struct {
		r    GateResult
		want string
	}{
		{atMost("modelBytes", 82320, 16<<20), "pass modelBytes: 82320 <= 16777216 (margin +16694896)"},
		{atLeast("testAccuracy", 0.98333, 0.8), "pass testAccuracy: 0.9833 >= 0.8 (margin +0.1833)"},
		{atLeast("classAccuracy[Shirt]", 0.41, 0.5), "FAIL classAccuracy[Shirt]: 0.41 >= 0.5 (margin -0.09)"},
	} {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}
