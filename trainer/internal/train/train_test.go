package train

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/aerie-ml/aerie/internal/arch"
	"github.com/aerie-ml/aerie/internal/dataset"
	"github.com/aerie-ml/aerie/internal/exitcode"
	"github.com/aerie-ml/aerie/internal/manifest"
	"github.com/aerie-ml/aerie/internal/model"
	"github.com/aerie-ml/aerie/internal/runspec"
	"github.com/aerie-ml/aerie/trainer/internal/checkpoint"
	"github.com/aerie-ml/aerie/trainer/internal/data"
)

// synthetic ingests a small learnable dataset into a temporary file://
// store and opens it as the trainer does, holding out about a fifth for
// validation. Its shards hold 32 samples and windows 2 shards, so an epoch
// spans several shards and windows.
func synthetic(t testing.TB, nTrain, nTest int) *data.Source {
	t.Helper()
	src, err := data.Synthetic{Shape: dataset.Shape{Height: 28, Width: 28, Channels: 1}, Classes: 10, Train: nTrain, Test: nTest, Seed: 3}.
		Open(t.Context(), t.TempDir(), data.Config{ValFraction: 0.2, Seed: 1, Window: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

// plan plans the architecture file models/<name>.yaml (as built into the
// binary) on Fashion-MNIST's shape.
func plan(name string) *arch.Plan {
	spec, err := arch.Builtin(name)
	if err != nil {
		panic(err)
	}
	p, err := spec.Plan(arch.Input{H: 28, W: 28, C: 1}, 10)
	if err != nil {
		panic(err)
	}
	return p
}

var (
	smallPlan  = plan("small")
	cnnPlan    = plan("cnn")
	resnetPlan = plan("resnet-small")
)

func smallConfig() Config {
	return Config{
		Plan: smallPlan, Epochs: 3, BatchSize: 16, LearningRate: 0.01, Schedule: "cosine", Seed: 5,
		Dropout: true, LabelSmoothing: 0.1, Augment: runspec.Augmentation{RotationDegrees: 5, CropPadding: 1, HorizontalFlip: true, Brightness: 0.1, Contrast: 0.2, Erasing: 0.3},
		EvalBatch: 32,
	}
}

func TestTrainLearnsAndIsDeterministic(t *testing.T) {
	sets := synthetic(t, 200, 100)
	ctx := context.Background()
	var epochs []int
	cfg := smallConfig()
	a, err := Run(ctx, cfg, sets, Options{OnEpoch: func(e manifest.Epoch) { epochs = append(epochs, e.Epoch) }})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int{1, 2, 3}, epochs); diff != "" {
		t.Errorf("epochs observed (-want +got):\n%s", diff)
	}
	if a.TestAccuracy < 0.5 {
		t.Errorf("test accuracy %.3f after 3 epochs on a learnable set, want > 0.5", a.TestAccuracy)
	}
	if steps := 3 * int64(sets.StepsPerEpoch(16)); len(a.ClassAccuracy) != 10 || len(a.Confusion) != 10 || a.Steps != steps {
		t.Errorf("class accuracy %v, confusion rows %d, steps %d (want %d)", a.ClassAccuracy, len(a.Confusion), a.Steps, steps)
	}
	if diff := cmp.Diff(sets.Classes(), a.Classes); diff != "" {
		t.Errorf("result's classes (-want +got):\n%s", diff)
	}
	b, err := Run(ctx, cfg, sets, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a.Weights, b.Weights); diff != "" {
		t.Errorf("two runs with one seed differ:\n%.2000s", diff)
	}
	if diff := cmp.Diff(a.Epochs, b.Epochs, ignoreTiming); diff != "" {
		t.Errorf("epoch metrics differ:\n%s", diff)
	}
}

var ignoreTiming = cmp.FilterPath(func(p cmp.Path) bool {
	s := p.Last().String()
	return s == ".ImagesPerSecond" || s == ".Seconds"
}, cmp.Ignore())

func TestResumeReproducesTrajectory(t *testing.T) {
	sets := synthetic(t, 200, 50)
	ctx := context.Background()
	cfg := smallConfig()
	cfg.CheckpointEvery = 4

	want, err := Run(ctx, cfg, sets, Options{Checkpoints: &checkpoint.Checkpoints{Store: checkpoint.Dir(t.TempDir()), Run: "r"}})
	if err != nil {
		t.Fatal(err)
	}

	// Interrupt at step 14 (checkpoints at 4, 8, 10 = end of epoch 1, 12),
	// corrupt the newest so resume falls back to 12... then to a valid one.
	dir := t.TempDir()
	cps := &checkpoint.Checkpoints{Store: checkpoint.Dir(dir), Run: "r"}
	runUntil(t, ctx, cfg, sets, cps, 14)
	os.Remove(filepath.Join(dir, "checkpoints/r/000000000012", checkpoint.Committed))
	got, err := Run(ctx, cfg, sets, Options{Checkpoints: cps})
	if err != nil {
		t.Fatal(err)
	}
	if got.ResumedFrom == "" || filepath.Base(got.ResumedFrom) != "000000000010" {
		t.Errorf("resumed from %q, want the step-10 checkpoint", got.ResumedFrom)
	}
	if diff := cmp.Diff(want.Weights, got.Weights); diff != "" {
		t.Errorf("resumed run's weights differ from an uninterrupted run's:\n%.2000s", diff)
	}
	if diff := cmp.Diff(want.Epochs, got.Epochs, ignoreTiming); diff != "" {
		t.Errorf("resumed run's epochs differ (-want +got):\n%s", diff)
	}
	if want.TestAccuracy != got.TestAccuracy {
		t.Errorf("test accuracy %v, uninterrupted %v", got.TestAccuracy, want.TestAccuracy)
	}
}

// TestBatchNormResume interrupts and resumes a run of a small net with
// batch norm: the running statistics travel in the checkpoint, so the
// resumed run ends with the uninterrupted run's weights and statistics.
func TestBatchNormResume(t *testing.T) {
	spec, err := arch.Parse("bn.yaml", []byte(`apiVersion: aerie.dev/v1alpha1
kind: Architecture
metadata: {name: bn}
layers:
  - conv: {filters: 4, bias: false}
  - batchnorm
  - relu
  - maxpool: {size: 4}
  - flatten
  - dense: {units: classes}
`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := spec.Plan(arch.Input{H: 28, W: 28, C: 1}, 10)
	if err != nil {
		t.Fatal(err)
	}
	sets := synthetic(t, 200, 50)
	ctx := context.Background()
	cfg := smallConfig()
	cfg.Plan, cfg.GhostBatch, cfg.CheckpointEvery = p, 4, 4
	want, err := Run(ctx, cfg, sets, Options{})
	if err != nil {
		t.Fatal(err)
	}
	cps := &checkpoint.Checkpoints{Store: checkpoint.Dir(t.TempDir()), Run: "r"}
	runUntil(t, ctx, cfg, sets, cps, 14)
	got, err := Run(ctx, cfg, sets, Options{Checkpoints: cps})
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(got.ResumedFrom) != "000000000012" {
		t.Errorf("resumed from %q, want step 12", got.ResumedFrom)
	}
	if diff := cmp.Diff(want.Weights, got.Weights); diff != "" {
		t.Errorf("resumed run's weights and statistics differ from an uninterrupted run's:\n%.2000s", diff)
	}
	var names []string
	for _, w := range got.Weights[len(p.Params):] {
		names = append(names, w.Name)
	}
	if diff := cmp.Diff([]string{"bn1.mean", "bn1.variance"}, names); diff != "" {
		t.Errorf("state in Weights (-want +got):\n%s", diff)
	}
}

// runUntil trains with checkpoints in cps and cancels the run after step.
func runUntil(t *testing.T, ctx context.Context, cfg Config, sets *data.Source, cps *checkpoint.Checkpoints, step int64) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	_, err := Run(ctx, cfg, sets, Options{Checkpoints: cps, OnStep: func(s Step) {
		if s.Step == step {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v", err)
	}
}

// localReducer sums buffers of ranks running in one process.
type localReducer struct {
	mu    sync.Mutex
	cond  *sync.Cond
	n     int
	sum   []float32
	count int
	gen   int
	out   []float32
}

func newLocalReducer(n int) *localReducer {
	r := &localReducer{n: n}
	r.cond = sync.NewCond(&r.mu)
	return r
}

func (r *localReducer) AllReduce(ctx context.Context, buf []float32) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	gen := r.gen
	if r.count == 0 {
		r.sum = make([]float32, len(buf))
	}
	for i, v := range buf {
		r.sum[i] += v
	}
	r.count++
	if r.count == r.n {
		r.out, r.count = r.sum, 0
		r.gen++
		r.cond.Broadcast()
	} else {
		for gen == r.gen {
			r.cond.Wait()
		}
	}
	copy(buf, r.out)
	return nil
}

func TestRanksMatchOneRank(t *testing.T) {
	if testing.Short() {
		t.Skip("trains three times")
	}
	sets := synthetic(t, 120, 40)
	ctx := context.Background()
	cfg := smallConfig()
	cfg.Epochs = 2
	cfg.BatchSize = 15 // 3 ranks: 5 each; 2 ranks: 8 and 7
	one, err := Run(ctx, cfg, sets, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, world := range []int{2, 3} {
		red := newLocalReducer(world)
		results := make([]*Result, world)
		errs := make([]error, world)
		var wg sync.WaitGroup
		for r := range world {
			wg.Go(func() {
				c := cfg
				c.Rank, c.WorldSize = r, world
				results[r], errs[r] = Run(ctx, c, sets, Options{Reducer: red})
			})
		}
		wg.Wait()
		for r := range world {
			if errs[r] != nil {
				t.Fatalf("world %d rank %d: %v", world, r, errs[r])
			}
			d := relDiff(one.Weights, results[r].Weights)
			t.Logf("world %d rank %d vs one rank: relative L2 %.3g", world, r, d)
			if d > 1e-5 {
				t.Errorf("world %d rank %d: weights differ from one rank's by %g (relative L2)", world, r, d)
			}
			if math.Abs(results[r].TestAccuracy-one.TestAccuracy) > 1e-9 {
				t.Errorf("world %d rank %d: test accuracy %v, one rank %v", world, r, results[r].TestAccuracy, one.TestAccuracy)
			}
		}
	}
}

// TestBatchNormRanksMatchOneRank trains resnet-small, whose batch norm
// computes statistics per ghost batch, with one rank in one lane and with
// two ranks of two lanes (one ghost batch each). Each step's loss matches
// to float32 rounding: per-lane statistics would not (the contrast case,
// ghost batches of 16, differs by orders of magnitude more). The weights
// and running statistics match more loosely: in Adam's first steps every
// weight moves by about ±lr whatever its gradient's size, so the few whose
// gradient is near zero, where rounding decides its sign, can differ by
// up to 2·lr (measured: 1.3e-4 relative L2 after 2 steps).
func TestBatchNormRanksMatchOneRank(t *testing.T) {
	if testing.Short() {
		t.Skip("trains resnet-small three times")
	}
	sets := synthetic(t, 100, 20) // 80 training images: 2 steps of 32
	ctx := context.Background()
	cfg := Config{Plan: resnetPlan, Epochs: 1, BatchSize: 32, GhostBatch: 8, LearningRate: 1e-3, Seed: 3, Dropout: true,
		Augment: runspec.Augmentation{RotationDegrees: 5, CropPadding: 1}, EvalBatch: 20}
	var oneLoss []float64
	one, err := Run(ctx, cfg, sets, Options{Lanes: 1, OnStep: func(s Step) { oneLoss = append(oneLoss, s.Loss) }})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(one.Weights); n != len(resnetPlan.Params)+len(resnetPlan.State) {
		t.Fatalf("%d tensors in Weights, want params and state", n)
	}
	if relDiff(one.Weights[len(resnetPlan.Params):], tensorsOf(resnetPlan.State, model.New(resnetPlan).InitState())) == 0 {
		t.Error("batch norm's running statistics did not change")
	}
	lossDiff := func(a, b []float64) float64 {
		d := 0.0
		for i := range a {
			d = max(d, math.Abs(a[i]-b[i])/math.Abs(a[i]))
		}
		return d
	}
	const world = 2
	run := func(cfg Config) ([]*Result, [][]float64) {
		red := newLocalReducer(world)
		results := make([]*Result, world)
		losses := make([][]float64, world)
		errs := make([]error, world)
		var wg sync.WaitGroup
		for r := range world {
			wg.Go(func() {
				c := cfg
				c.Rank, c.WorldSize = r, world
				results[r], errs[r] = Run(ctx, c, sets, Options{Reducer: red, Lanes: 2, OnStep: func(s Step) { losses[r] = append(losses[r], s.Loss) }})
			})
		}
		wg.Wait()
		for r, err := range errs {
			if err != nil {
				t.Fatalf("rank %d: %v", r, err)
			}
		}
		return results, losses
	}
	results, losses := run(cfg)
	for r := range world {
		dl, dw := lossDiff(oneLoss, losses[r]), relDiff(one.Weights, results[r].Weights)
		t.Logf("rank %d vs one rank: step losses %v vs %v (max relative difference %.3g), weights and statistics relative L2 %.3g", r, losses[r], oneLoss, dl, dw)
		if dl > 1e-5 {
			t.Errorf("rank %d: step losses %v, one rank %v", r, losses[r], oneLoss)
		}
		if dw > 1e-3 {
			t.Errorf("rank %d: weights and statistics differ from one rank's by %g (relative L2)", r, dw)
		}
	}
	cfg.GhostBatch = 16
	_, other := run(cfg)
	if d := lossDiff(oneLoss, other[0]); d < 1e-3 {
		t.Errorf("ghost batches of 16: step losses %v differ from 8's %v by only %.3g: the test cannot tell statistics apart", other[0], oneLoss, d)
	} else {
		t.Logf("contrast, ghost batches of 16: step losses differ by %.3g", d)
	}
}

func tensorsOf(qs []arch.Param, vals [][]float32) []model.Tensor {
	var out []model.Tensor
	for i, q := range qs {
		out = append(out, model.FromFloat32s(q.Name, q.Shape, vals[i]))
	}
	return out
}

func TestLanesMatchOneLane(t *testing.T) {
	sets := synthetic(t, 120, 40)
	ctx := context.Background()
	cfg := smallConfig()
	cfg.Epochs = 2
	cfg.BatchSize = 15
	one, err := Run(ctx, cfg, sets, Options{Lanes: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, lanes := range []int{2, 4} {
		got, err := Run(ctx, cfg, sets, Options{Lanes: lanes})
		if err != nil {
			t.Fatal(err)
		}
		if d := relDiff(one.Weights, got.Weights); d > 1e-5 {
			t.Errorf("%d lanes: weights differ from one lane's by %g (relative L2)", lanes, d)
		}
		if got.TestAccuracy != one.TestAccuracy {
			t.Errorf("%d lanes: test accuracy %v, one lane %v", lanes, got.TestAccuracy, one.TestAccuracy)
		}
	}
}

func TestRanksMustResumeAtOneStep(t *testing.T) {
	sets := synthetic(t, 120, 40)
	ctx := context.Background()
	cfg := smallConfig()
	cfg.Epochs = 2
	cfg.CheckpointEvery = 4
	// Rank 0 sees checkpoints up to the end; rank 1 sees none.
	full := &checkpoint.Checkpoints{Store: checkpoint.Dir(t.TempDir()), Run: "r"}
	if _, err := Run(ctx, cfg, sets, Options{Checkpoints: full, MaxSteps: 5}); err != nil {
		t.Fatal(err)
	}
	empty := &checkpoint.Checkpoints{Store: checkpoint.Dir(t.TempDir()), Run: "r"}
	red := newLocalReducer(2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for r, cps := range []*checkpoint.Checkpoints{full, empty} {
		wg.Go(func() {
			c := cfg
			c.Rank, c.WorldSize = r, 2
			_, errs[r] = Run(ctx, c, sets, Options{Reducer: red, Checkpoints: cps})
		})
	}
	wg.Wait()
	for r, err := range errs {
		if exitcode.Of(err) != exitcode.StorageDown || !strings.Contains(err.Error(), "1 of 2 ranks resumed at another step than rank 0 (step 4;") {
			t.Errorf("rank %d: %v, want a retryable error naming both steps", r, err)
		}
	}
}

// relDiff is ‖a−b‖/‖a‖ over all tensors.
func relDiff(a, b []model.Tensor) float64 {
	var d2, n2 float64
	for i := range a {
		x, y := a[i].Float32s(), b[i].Float32s()
		for j := range x {
			d2 += float64(x[j]-y[j]) * float64(x[j]-y[j])
			n2 += float64(x[j]) * float64(x[j])
		}
	}
	return math.Sqrt(d2 / n2)
}

// TestCNNDeterministic checks that the cnn's larger, parallelized kernels
// still give bit-identical weights for a seed.
func TestCNNDeterministic(t *testing.T) {
	if testing.Short() {
		t.Skip("a few cnn steps")
	}
	sets := synthetic(t, 64*4, 64)
	cfg := Config{Plan: cnnPlan, Epochs: 1, BatchSize: 64, LearningRate: 1e-3, Seed: 9, Dropout: true,
		Augment: runspec.Augmentation{RotationDegrees: 10, CropPadding: 4}}
	a, err := Run(context.Background(), cfg, sets, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Run(context.Background(), cfg, sets, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d := relDiff(a.Weights, b.Weights); d != 0 {
		t.Errorf("two cnn runs with one seed differ by %g (relative L2)", d)
	}
}

// TestResumeWithOtherWorldSize interrupts a one-rank run and resumes it
// with two ranks: the trajectory is the same up to float summation order.
func TestResumeWithOtherWorldSize(t *testing.T) {
	if testing.Short() {
		t.Skip("trains three times")
	}
	sets := synthetic(t, 200, 50)
	ctx := context.Background()
	cfg := smallConfig()
	cfg.CheckpointEvery = 4
	want, err := Run(ctx, cfg, sets, Options{})
	if err != nil {
		t.Fatal(err)
	}
	cps := &checkpoint.Checkpoints{Store: checkpoint.Dir(t.TempDir()), Run: "r"}
	runUntil(t, ctx, cfg, sets, cps, 14)
	red := newLocalReducer(2)
	results := make([]*Result, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for r := range 2 {
		wg.Go(func() {
			c := cfg
			c.Rank, c.WorldSize = r, 2
			results[r], errs[r] = Run(ctx, c, sets, Options{Reducer: red, Checkpoints: cps})
		})
	}
	wg.Wait()
	for r := range 2 {
		if errs[r] != nil {
			t.Fatalf("rank %d: %v", r, errs[r])
		}
		if filepath.Base(results[r].ResumedFrom) != "000000000012" {
			t.Errorf("rank %d resumed from %q, want step 12", r, results[r].ResumedFrom)
		}
		if d := relDiff(want.Weights, results[r].Weights); d > 1e-5 {
			t.Errorf("rank %d: weights differ from the uninterrupted run's by %g (relative L2)", r, d)
		}
	}
}

// TestPhasesSplitTheWarmSteps checks that Result.Phases covers the steps
// after the first (which compiles the graphs) and that each rank's step
// time is split among its phases.
func TestPhasesSplitTheWarmSteps(t *testing.T) {
	sets := synthetic(t, 64, 16)
	cfg := Config{Plan: smallPlan, Epochs: 100, BatchSize: 16, LearningRate: 1e-3, Seed: 1}
	res, err := Run(context.Background(), cfg, sets, Options{MaxSteps: 4})
	if err != nil {
		t.Fatal(err)
	}
	ph := res.Phases
	if ph.Steps != 3 {
		t.Errorf("Phases.Steps = %d, want 3 (4 steps less the first)", ph.Steps)
	}
	if ph.Gradients <= 0 || ph.AllReduce < 0 || ph.Update <= 0 {
		t.Errorf("Phases = %+v, want positive gradient and update times", ph)
	}
}
