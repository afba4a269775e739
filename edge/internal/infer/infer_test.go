package infer

import (
	"bytes"
	"context"
	"fmt"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"image"
	"image/png"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/aerie-ml/aerie/edge/internal/frames"
	"github.com/aerie-ml/aerie/edge/internal/gpio"
	"github.com/aerie-ml/aerie/edge/internal/modeltest"
	"github.com/aerie-ml/aerie/edge/internal/status"
	"github.com/aerie-ml/aerie/internal/arch"
	"github.com/aerie-ml/aerie/internal/manifest"
	"github.com/aerie-ml/aerie/internal/model"
)

func TestActuatorDebounce(t *testing.T) {
	chip := gpio.NewSim()
	out, _ := chip.Output(17, false)
	a := NewActuator([]Rule{{Name: "footwear", Classes: []string{"Sandal", "Sneaker"}, MinConfidence: 0.8, Debounce: 3, Out: out}},
		slog.New(slog.DiscardHandler), status.NewMetrics())
	seq := []struct {
		class string
		conf  float32
	}{
		{"Sandal", 0.9}, {"Sneaker", 0.95}, {"Bag", 0.99}, // broken streak
		{"Sandal", 0.9}, {"Sandal", 0.9}, {"Sneaker", 0.9}, // on after 3
		{"Sandal", 0.5}, {"Sandal", 0.9}, // low confidence once: stays on
		{"Coat", 0.9}, {"Coat", 0.9}, {"Coat", 0.9}, // off after 3
	}
	for _, s := range seq {
		if err := a.Observe("f", s.class, model.Prediction{Confidence: s.conf}, "d"); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff([]bool{false, true, false}, chip.History(17)); diff != "" {
		t.Errorf("line history diff (-want +got):\n%s", diff)
	}
}

// constant always answers class with confidence 0.99.
type constant struct{ class int }

func (c constant) Classify(ctx context.Context, images [][]byte) ([]model.Prediction, error) {
	out := make([]model.Prediction, len(images))
	for i := range out {
		out[i] = model.Prediction{Class: c.class, Confidence: 0.99}
	}
	return out, nil
}

// swapAt swaps the slot to next when frame n is read, from inside the
// loop's own Next call: no timing involved.
type swapAt struct {
	frames.Source
	n, i int
	slot *Slot
	next *Model
}

func (s *swapAt) Next(ctx context.Context) (frames.Frame, error) {
	s.i++
	if s.i == s.n {
		s.slot.Swap(s.next)
	}
	return s.Source.Next(ctx)
}

func TestLoopSwapsModelWithoutStopping(t *testing.T) {
	ctx := context.Background()
	images, _ := modeltest.Images(300, 3)
	weights := modeltest.CentroidWeights(t, 1)
	real, err := Load(ctx, modeltest.Model(t, "small", modeltest.Input, modeltest.Classes), bytes.NewReader(weights), "sha256:real")
	if err != nil {
		t.Fatal(err)
	}
	slot := &Slot{}
	slot.Swap(real)
	src, err := frames.OpenDir(modeltest.PNGDir(t, images), frames.Options{})
	if err != nil {
		t.Fatal(err)
	}
	bag := &Model{Classifier: constant{8}, ManifestDigest: "sha256:bag", Classes: modeltest.Classes, Input: modeltest.Input.Shape()}
	chip := gpio.NewSim()
	out, _ := chip.Output(22, false)
	metrics := status.NewMetrics()
	var logs bytes.Buffer
	l := &Loop{
		Source:   &swapAt{Source: src, n: 101, slot: slot, next: bag},
		Slot:     slot,
		Actuator: NewActuator([]Rule{{Name: "bag", Classes: []string{"Bag"}, MinConfidence: 0.9, Debounce: 3, Out: out}}, slog.New(slog.NewTextHandler(&logs, nil)), metrics),
		Metrics:  metrics,
		Log:      slog.New(slog.NewTextHandler(&logs, nil)),
	}
	if err := l.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(metrics.Frames); got != float64(len(images)) {
		t.Errorf("classified %g frames, want all %d", got, len(images))
	}
	// After the swap every frame is a confident Bag: the line goes on and
	// stays on until the loop's end resets it.
	h := chip.History(22)
	if len(h) < 2 || h[len(h)-1] != false || h[len(h)-2] != true {
		t.Errorf("bag line history ends %v, want …, true, false (reset at end)", h)
	}
	// The metrics count predictions by the model's class names.
	rec := status.NewRecorder(filepath.Join(t.TempDir(), "status.json"), "pi", "fleet", nil)
	rec.Metrics.Prediction("Bag")
	var text bytes.Buffer
	rec.WriteMetrics(&text)
	if !bytes.Contains(text.Bytes(), []byte(`aerie_edge_predictions_total{class="Bag"} 1`)) {
		t.Errorf("metrics lack the Bag predictions:\n%s", text.String())
	}
	if !bytes.Contains(logs.Bytes(), []byte("model=sha256:bag")) {
		t.Errorf("no log of the swap:\n%s", logs.String())
	}
}

// TestLoopSwapsInputShape swaps a grey 28×28 model for a colour 20×24
// one under a running loop fed colour PNGs of another size: every frame
// reaches the model of its moment at that model's shape (a wrong size would
// be a classify error).
func TestLoopSwapsInputShape(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for i := range 40 {
		img := image.NewRGBA(image.Rect(0, 0, 45, 31))
		for p := range img.Pix {
			img.Pix[p] = byte(p*7 + i*13)
		}
		var b bytes.Buffer
		if err := png.Encode(&b, img); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%02d.png", i)), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src, err := frames.OpenDir(dir, frames.Options{})
	if err != nil {
		t.Fatal(err)
	}
	load := func(in manifest.Input, digest string) *Model {
		m := modeltest.Model(t, "small", in, modeltest.Classes)
		got, err := Load(ctx, m, bytes.NewReader(modeltest.InitWeights(t, m, 1)), digest)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	grey := load(modeltest.Input, "sha256:grey")
	colour := load(manifest.Input{Height: 20, Width: 24, Channels: 3, Mean: []float64{0.5, 0.5, 0.5}, Std: []float64{0.5, 0.5, 0.5}}, "sha256:colour")
	slot := &Slot{}
	slot.Swap(grey)
	metrics := status.NewMetrics()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	l := &Loop{Source: &swapAt{Source: src, n: 21, slot: slot, next: colour}, Slot: slot,
		Actuator: NewActuator(nil, log, metrics), Metrics: metrics, Log: log}
	if err := l.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if got, errs := testutil.ToFloat64(metrics.Frames), testutil.ToFloat64(metrics.FrameErrors); got != 40 || errs != 0 {
		t.Errorf("classified %g frames with %g errors, want 40 and 0:\n%s", got, errs, logs.String())
	}
	if !bytes.Contains(logs.Bytes(), []byte("model=sha256:colour")) {
		t.Errorf("no log of the swap:\n%s", logs.String())
	}
}

// TestLoadRefusesNormalization checks that a version whose recorded
// input normalization is not its spec's is refused, naming both.
func TestLoadRefusesNormalization(t *testing.T) {
	m := modeltest.Model(t, "small", modeltest.Input, modeltest.Classes)
	m.Input.Mean = []float64{0.45}
	_, err := Load(context.Background(), m, bytes.NewReader(modeltest.InitWeights(t, modeltest.Model(t, "small", modeltest.Input, modeltest.Classes), 1)), "sha256:n")
	if err == nil || !strings.Contains(err.Error(), "mean [0.45] std [0.5]") || !strings.Contains(err.Error(), "model.spec by mean [0.5] std [0.5]") {
		t.Errorf("Load with model.input mean 0.45 = %v, want an error naming both normalizations", err)
	}
}

// TestLoadDeclaredNormalization loads a version whose architecture
// declares ImageNet's per-channel mean and deviation: the device feeds the
// model those numbers (its predictions are model.Classify's on that plan,
// and not those of the same weights on the default normalization).
func TestLoadDeclaredNormalization(t *testing.T) {
	ctx := context.Background()
	in := manifest.Input{Height: 20, Width: 24, Channels: 3, Mean: []float64{0.485, 0.456, 0.406}, Std: []float64{0.229, 0.224, 0.225}}
	m := modeltest.Model(t, "small", in, modeltest.Classes)
	weights := modeltest.InitWeights(t, m, 3)
	got, err := Load(ctx, m, bytes.NewReader(weights), "sha256:imagenet")
	if err != nil {
		t.Fatal(err)
	}
	plan, err := m.Plan()
	if err != nil {
		t.Fatal(err)
	}
	if want := (arch.Normalization{Mean: in.Mean, Std: in.Std}); !plan.Normalization.Equal(want) {
		t.Fatalf("plan normalizes by %s, want %s", plan.Normalization, want)
	}
	defaultPlan := *plan
	defaultPlan.Normalization = arch.DefaultNormalization(3)
	other, err := model.Load(ctx, &defaultPlan, bytes.NewReader(weights))
	if err != nil {
		t.Fatal(err)
	}
	same, err := model.Load(ctx, plan, bytes.NewReader(weights))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(8, 5))
	images := make([][]byte, 8)
	for i := range images {
		images[i] = make([]byte, in.Shape().Bytes())
		for j := range images[i] {
			images[i][j] = byte(rng.IntN(256))
		}
	}
	p, err := got.Classifier.Classify(ctx, images)
	if err != nil {
		t.Fatal(err)
	}
	q, err := same.Classify(ctx, images)
	if err != nil {
		t.Fatal(err)
	}
	r, err := other.Classify(ctx, images)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(q, p); diff != "" {
		t.Errorf("device vs model.Classify on the declared plan (-want +got):\n%s", diff)
	}
	if cmp.Equal(r, p) {
		t.Error("the declared normalization gives the default's predictions: it is not applied")
	}
}

// TestLabels checks that Labels, what the self-test calls, classifies the
// centroid model's images as Classify does.
func TestLabels(t *testing.T) {
	ctx := context.Background()
	m, err := Load(ctx, modeltest.Model(t, "small", modeltest.Input, modeltest.Classes), bytes.NewReader(modeltest.CentroidWeights(t, 1)), "sha256:x")
	if err != nil {
		t.Fatal(err)
	}
	images, labels := modeltest.Images(50, 4)
	got, err := m.Labels(ctx, images)
	if err != nil {
		t.Fatal(err)
	}
	preds, err := m.Classifier.Classify(ctx, images)
	if err != nil {
		t.Fatal(err)
	}
	correct := 0
	for i := range got {
		if got[i] != preds[i].Class {
			t.Errorf("image %d: Labels %d, Classify %d", i, got[i], preds[i].Class)
		}
		if got[i] == labels[i] {
			correct++
		}
	}
	if correct < 45 {
		t.Errorf("centroid model: %d/50 right, want at least 45", correct)
	}
}
