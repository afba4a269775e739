package infer

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/aerie-ml/aerie/edge/internal/frames"
	"github.com/aerie-ml/aerie/edge/internal/gpio"
	"github.com/aerie-ml/aerie/edge/internal/modeltest"
	"github.com/aerie-ml/aerie/edge/internal/status"
	"github.com/aerie-ml/aerie/internal/fmnist"
	"github.com/aerie-ml/aerie/internal/golden"
	"github.com/aerie-ml/aerie/internal/model"
)

func TestActuatorDebounce(t *testing.T) {
	chip := gpio.NewSim()
	out, _ := chip.Output(17, false)
	a := NewActuator([]Rule{{Name: "footwear", Classes: []string{"Sandal", "Sneaker"}, MinConfidence: 0.8, Debounce: 3, Out: out}},
		slog.New(slog.DiscardHandler), &status.Metrics{})
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
	set, _ := golden.Set()
	weights := modeltest.CentroidWeights(t, 1)
	real, err := Load(ctx, modeltest.SmallPlan(t), bytes.NewReader(weights), "sha256:real", fmnist.Classes[:])
	if err != nil {
		t.Fatal(err)
	}
	slot := &Slot{}
	slot.Swap(real)
	src, err := openGolden(t, set)
	if err != nil {
		t.Fatal(err)
	}
	bag := &Model{Classifier: constant{8}, ManifestDigest: "sha256:bag", Classes: fmnist.Classes[:]}
	chip := gpio.NewSim()
	out, _ := chip.Output(22, false)
	metrics := &status.Metrics{}
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
	if got := metrics.Frames.Load(); got != int64(set.Len()) {
		t.Errorf("classified %d frames, want all %d", got, set.Len())
	}
	// After the swap every frame is a confident Bag: the line goes on and
	// stays on until the loop's end resets it.
	h := chip.History(22)
	if len(h) < 2 || h[len(h)-1] != false || h[len(h)-2] != true {
		t.Errorf("bag line history ends %v, want …, true, false (reset at end)", h)
	}
	if !bytes.Contains(logs.Bytes(), []byte("model=sha256:bag")) {
		t.Errorf("no log of the swap:\n%s", logs.String())
	}
}

func openGolden(t *testing.T, set *fmnist.Split) (frames.Source, error) {
	p := t.TempDir() + "/golden.raw"
	if err := os.WriteFile(p, set.Images, 0o644); err != nil {
		return nil, err
	}
	return frames.OpenRaw(p, frames.Options{})
}

func TestLabelsMatchSelfTest(t *testing.T) {
	ctx := context.Background()
	m, err := Load(ctx, modeltest.SmallPlan(t), bytes.NewReader(modeltest.CentroidWeights(t, 1)), "sha256:x", fmnist.Classes[:])
	if err != nil {
		t.Fatal(err)
	}
	res, err := golden.SelfTest(ctx, m.Labels, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("centroid model self-test accuracy %.3f", res.Accuracy)
}
