//lint:file-ignore ST1001 gomlx graph-building code reads as math with graph dot-imported

package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	gmodel "github.com/gomlx/gomlx/ml/model"

	"github.com/aerie-ml/aerie/internal/arch"
	"github.com/aerie-ml/aerie/internal/dataset"
	"github.com/aerie-ml/aerie/internal/exitcode"
	"github.com/aerie-ml/aerie/internal/manifest"
	"github.com/aerie-ml/aerie/internal/model"
	"github.com/aerie-ml/aerie/trainer/internal/checkpoint"
	"github.com/aerie-ml/aerie/trainer/internal/data"
)

// Options wires a run to the rest of the trainer. Every field is optional.
type Options struct {
	// Reducer sums across ranks; nil for a single process.
	Reducer Reducer
	// Checkpoints are resumed from on every rank and written by rank 0.
	Checkpoints *checkpoint.Checkpoints
	// OnStep and OnEpoch observe progress (called on the training goroutine).
	OnStep  func(Step)
	OnEpoch func(manifest.Epoch)
	Log     *slog.Logger
	// MaxSteps ends training after this many global steps, skipping the
	// final test (benchmarks); 0: no limit.
	MaxSteps int64
	// Lanes splits each rank's batch into this many micro-batches whose
	// gradients are computed concurrently and summed: the Go backend keeps
	// only about 1.5 of 2 cores busy with one graph, and one core each with
	// two. 0 means GOMAXPROCS.
	Lanes int
}

// Step is the progress after one global step.
type Step struct {
	Epoch, StepInEpoch, StepsPerEpoch int
	Step                              int64 // global steps done
	Loss, Accuracy                    float64
	LearningRate                      float64
	Images                            int // in this global batch
}

// Result is what a finished run produced.
type Result struct {
	// Weights are the plan's Params and State (batch norm's running
	// statistics), in plan order: a weights file's tensors.
	Weights []model.Tensor
	Epochs  []manifest.Epoch
	// Classes are the dataset's class names, the order of ClassAccuracy
	// and Confusion.
	Classes []string
	// Test figures are on the dataset's test split.
	TestLoss, TestAccuracy float64
	ClassAccuracy          []float64
	Confusion              [][]float64 // row-normalized [true][predicted]
	// ImagesPerSecond is the global training throughput of this process's
	// steps (excluding evaluation).
	ImagesPerSecond float64
	// Phases splits the same steps' time.
	Phases       StepPhases
	Steps        int64
	ResumedFrom  string
	StoppedEarly bool
}

// progress is the trainer's state beyond the variables, kept in
// checkpoints as JSON.
type progress struct {
	Arch        string           `json:"arch"`
	Seed        int64            `json:"seed"`
	BatchSize   int              `json:"batchSize"`
	Epoch       int              `json:"epoch"`       // in progress
	StepInEpoch int              `json:"stepInEpoch"` // steps of Epoch done
	Step        int64            `json:"step"`
	Train       sums             `json:"train"` // of Epoch so far
	EpochSecs   float64          `json:"epochSeconds"`
	StepSecs    float64          `json:"stepSeconds"` // of Epoch's training steps
	BestVal     float64          `json:"bestValLoss"`
	BadEpochs   int              `json:"badEpochs"`
	Stopped     bool             `json:"stopped"`
	History     []manifest.Epoch `json:"history"`
}

type sums struct {
	Loss, Correct, Count float64
}

const progressKey = "aerie.progress"

type trainer struct {
	cfg    Config
	opts   Options
	net    *model.Net
	store  *gmodel.Store
	params []*gmodel.Variable
	state  []*gmodel.Variable // batch norm's running statistics
	// nParams and nState are the values of params and state.
	nParams, nState int
	grad            *gmodel.Exec
	adam            *adam
	eval            *gmodel.Exec
	reducer         Reducer
	log             *slog.Logger
	buf             []float32
	phases          StepPhases
	// lanes is the number of micro-batches per step; compiled is set once
	// their graphs are.
	lanes    int
	compiled bool
}

// StepPhases is where training steps' time went: the lanes' gradients,
// the all-reduce (with any wait for the slowest rank) and the optimizer
// update, summed over Steps steps.
type StepPhases struct {
	Steps                        int64
	Gradients, AllReduce, Update time.Duration
}

// Run trains cfg.Plan on src, resuming from the newest valid checkpoint.
// Each rank reads only its part of every batch and evaluation from src.
func Run(ctx context.Context, cfg Config, src *data.Source, opts Options) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t := &trainer{cfg: cfg, opts: opts, reducer: opts.Reducer, log: opts.Log, lanes: opts.Lanes}
	if t.lanes <= 0 {
		t.lanes = runtime.GOMAXPROCS(0)
	}
	if t.reducer == nil {
		t.reducer = single{}
	}
	if t.log == nil {
		t.log = slog.Default()
	}
	t.net = model.New(cfg.Plan)
	if err := cfg.checkInput(src.Shape(), len(src.Classes())); err != nil {
		return nil, err
	}
	steps := src.StepsPerEpoch(cfg.BatchSize)
	if steps < 1 {
		return nil, exitcode.Errorf(exitcode.Config, "batch size %d is larger than the %d training images", cfg.BatchSize, src.TrainLen())
	}
	prog := progress{Arch: cfg.Plan.Name, Seed: cfg.Seed, BatchSize: cfg.BatchSize, BestVal: math.MaxFloat64}
	res := &Result{Classes: src.Classes()}
	var state *checkpoint.State
	if opts.Checkpoints != nil {
		var err error
		if state, res.ResumedFrom, err = opts.Checkpoints.Latest(ctx); err != nil {
			return nil, err
		}
	}
	if err := t.build(state, &prog); err != nil {
		return nil, err
	}
	if err := t.agreeOnStart(ctx, prog.Step); err != nil {
		return nil, err
	}
	if state != nil {
		t.log.Info("resuming", "checkpoint", res.ResumedFrom, "step", prog.Step, "epoch", prog.Epoch+1)
	}
	total := int64(steps * cfg.Epochs)
	var trainSecs float64
	var trainImages int64
	warm := false
	for !prog.Stopped && prog.Epoch < cfg.Epochs {
		epoch := prog.Epoch
		start := time.Now().Add(-time.Duration(prog.EpochSecs * float64(time.Second)))
		unit := t.cfg.unit()
		lo, hi := dataset.Part(cfg.BatchSize/unit, cfg.Rank, cfg.WorldSize)
		seq := src.Epoch(epoch, cfg.BatchSize, lo*unit, hi*unit)
		seq.Skip(prog.StepInEpoch)
		bt := &batcher{cfg: &t.cfg, src: src, ep: seq, aug: data.Augment{Augmentation: cfg.Augment, Shape: src.Shape()},
			epoch: epoch, lanes: t.lanes, unit: unit}
		if cfg.Dropout {
			bt.dropouts = cfg.Plan.Dropouts
		}
		batches, stop := prefetch(ctx, prog.StepInEpoch, steps, bt.make)
		for pb := range batches {
			if err := ctx.Err(); err != nil {
				stop()
				return nil, err
			}
			if pb.err != nil {
				stop()
				return nil, pb.err
			}
			b := pb.b
			stepStart := time.Now()
			lr := cfg.learningRate(prog.Step, total, steps)
			s, err := t.step(ctx, b, prog.Step+1, lr)
			if err != nil {
				stop()
				return nil, err
			}
			prog.StepSecs += time.Since(stepStart).Seconds()
			// The first step compiles the graphs: leave it out of the rate.
			if warm {
				trainSecs += time.Since(stepStart).Seconds()
				trainImages += int64(s.Count)
			} else {
				t.phases = StepPhases{}
			}
			warm = true
			prog.Step++
			prog.StepInEpoch++
			prog.Train.Loss += s.Loss
			prog.Train.Correct += s.Correct
			prog.Train.Count += s.Count
			if opts.OnStep != nil {
				opts.OnStep(Step{Epoch: epoch, StepInEpoch: prog.StepInEpoch, StepsPerEpoch: steps, Step: prog.Step,
					Loss: s.Loss / s.Count, Accuracy: s.Correct / s.Count, LearningRate: lr, Images: int(s.Count)})
			}
			if opts.MaxSteps > 0 && prog.Step >= opts.MaxSteps {
				stop()
				res.Steps, res.ImagesPerSecond, res.Phases = prog.Step, float64(trainImages)/trainSecs, t.phases
				return res, nil
			}
			if cfg.CheckpointEvery > 0 && prog.Step%int64(cfg.CheckpointEvery) == 0 && prog.StepInEpoch < steps {
				prog.EpochSecs = time.Since(start).Seconds()
				if err := t.save(ctx, &prog); err != nil {
					stop()
					return nil, err
				}
			}
		}
		stop()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		val, err := t.evaluate(ctx, src.Val(cfg.Rank, cfg.WorldSize))
		if err != nil {
			return nil, err
		}
		secs := time.Since(start).Seconds()
		ep := manifest.Epoch{
			Epoch: epoch + 1, Step: prog.Step, LearningRate: cfg.learningRate(prog.Step-1, total, steps),
			TrainLoss: prog.Train.Loss / prog.Train.Count, TrainAccuracy: prog.Train.Correct / prog.Train.Count,
			ValLoss: val.loss(), ValAccuracy: val.accuracy(),
			ImagesPerSecond: prog.Train.Count / prog.StepSecs, Seconds: secs,
		}
		prog.History = append(prog.History, ep)
		if opts.OnEpoch != nil {
			opts.OnEpoch(ep)
		}
		if val.count > 0 && cfg.Patience > 0 {
			if ep.ValLoss < prog.BestVal {
				prog.BestVal, prog.BadEpochs = ep.ValLoss, 0
			} else if prog.BadEpochs++; prog.BadEpochs >= cfg.Patience {
				prog.Stopped = true
				t.log.Info("early stopping", "epoch", epoch+1, "valLoss", ep.ValLoss, "best", prog.BestVal, "patience", cfg.Patience)
			}
		}
		prog.Epoch, prog.StepInEpoch, prog.Train, prog.EpochSecs, prog.StepSecs = epoch+1, 0, sums{}, 0, 0
		if err := t.save(ctx, &prog); err != nil {
			return nil, err
		}
	}
	test, err := t.evaluate(ctx, src.Test(cfg.Rank, cfg.WorldSize))
	if err != nil {
		return nil, err
	}
	res.Epochs = prog.History
	res.Steps = prog.Step
	res.StoppedEarly = prog.Stopped && prog.Epoch < cfg.Epochs
	if trainSecs > 0 {
		res.ImagesPerSecond, res.Phases = float64(trainImages)/trainSecs, t.phases
	}
	res.TestLoss, res.TestAccuracy = test.loss(), test.accuracy()
	res.ClassAccuracy, res.Confusion = test.perClass()
	res.Weights, err = t.tensors(true)
	return res, err
}

// build creates the variables (from state when resuming, else seeded) and
// the three execs.
func (t *trainer) build(state *checkpoint.State, prog *progress) error {
	t.store = gmodel.NewStore()
	plan := t.cfg.Plan
	t.nParams, t.nState = int(plan.NumParams), 0
	for _, q := range plan.State {
		t.nState += size(q.Shape)
	}
	if state != nil {
		if err := json.Unmarshal([]byte(state.Meta[progressKey]), prog); err != nil {
			return exitcode.Errorf(exitcode.Data, "checkpoint at step %d: progress: %w", state.Step, err)
		}
		if prog.Arch != plan.Name || prog.Seed != t.cfg.Seed || prog.BatchSize != t.cfg.BatchSize {
			return exitcode.Errorf(exitcode.Config, "checkpoint at step %d is of architecture %s, seed %d, batch size %d; this run has %s, %d, %d (use a new output location)",
				state.Step, prog.Arch, prog.Seed, prog.BatchSize, plan.Name, t.cfg.Seed, t.cfg.BatchSize)
		}
		byName := map[string]model.Tensor{}
		for _, ts := range state.Tensors {
			byName[ts.Name] = ts
		}
		// Parameters first, in their order: Adam pairs gradients with
		// trainable variables by creation order.
		vals, stats, err := t.net.Match(modelTensors(byName, plan), nil)
		if err != nil {
			return exitcode.Errorf(exitcode.Data, "checkpoint at step %d: %w", state.Step, err)
		}
		if err := t.createVariables(vals, stats); err != nil {
			return err
		}
		for _, q := range append(slices.Clone(plan.Params), plan.State...) {
			delete(byName, q.Name)
		}
		names := make([]string, 0, len(byName))
		for n := range byName {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			ts := byName[n]
			var tt *tensors.Tensor
			switch ts.DType {
			case model.F32:
				tt = tensors.FromFlatDataAndDimensions(ts.Float32s(), ts.Shape...)
			case model.I64:
				tt = tensors.FromFlatDataAndDimensions(ts.Int64s(), ts.Shape...)
			}
			v, err := t.store.CreateVariable(n, tt)
			if err != nil {
				return err
			}
			v.SetTrainable(false)
		}
	} else if err := t.createVariables(t.net.Init(uint64(t.cfg.Seed)), t.net.InitState()); err != nil {
		return err
	}
	var err error
	if t.adam, err = newAdam(t.store, t.params); err != nil {
		return err
	}
	backend := model.Backend()
	nMasks := 0
	if t.cfg.Dropout {
		nMasks = len(plan.Dropouts)
	}
	classes := plan.Classes
	t.grad, err = gmodel.NewExec(backend, t.store, func(scope *gmodel.Scope, in []*Node) []*Node {
		g := in[0].Graph()
		var masks []*Node
		if nMasks > 0 {
			masks = in[2 : 2+nMasks]
		}
		logits, stats := t.net.TrainLogits(t.nodes(g), in[0], masks, t.cfg.GhostBatch)
		lossSum := ReduceAllSum(crossEntropy(logits, in[1], classes, t.cfg.LabelSmoothing))
		grads := scope.BuildTrainableVariablesGradientsGraph(lossSum)
		return append(append(grads, stats...), lossSum, correct(logits, in[1]))
	})
	if err != nil {
		return err
	}
	t.eval, err = gmodel.NewExec(backend, t.store, func(scope *gmodel.Scope, x, labels, weights *Node) (*Node, *Node) {
		g := x.Graph()
		state := make([]*Node, len(t.state))
		for i, v := range t.state {
			state[i] = v.NodeValue(g)
		}
		logits := t.net.Logits(t.nodes(g), state, x)
		return ReduceAllSum(Mul(crossEntropy(logits, labels, classes, 0), weights)), ArgMax(logits, 1, dtypes.Int32)
	})
	t.buf = make([]float32, t.nParams+t.nState+3)
	return err
}

// createVariables creates the parameters (trainable, in plan order), then
// the batch norm state (not trained).
func (t *trainer) createVariables(params, state [][]float32) error {
	plan := t.cfg.Plan
	for i, q := range plan.Params {
		v, err := t.store.CreateVariable("/"+q.Name, tensors.FromFlatDataAndDimensions(params[i], q.Shape...))
		if err != nil {
			return err
		}
		t.params = append(t.params, v)
	}
	for i, q := range plan.State {
		v, err := t.store.CreateVariable("/"+q.Name, tensors.FromFlatDataAndDimensions(state[i], q.Shape...))
		if err != nil {
			return err
		}
		v.SetTrainable(false)
		t.state = append(t.state, v)
	}
	return nil
}

// modelTensors picks the plan's Params and State out of a checkpoint's
// tensors.
func modelTensors(byName map[string]model.Tensor, plan *arch.Plan) []model.Tensor {
	var out []model.Tensor
	for _, q := range append(slices.Clone(plan.Params), plan.State...) {
		if ts, ok := byName[q.Name]; ok {
			out = append(out, ts)
		}
	}
	return out
}

func (t *trainer) nodes(g *Graph) []*Node {
	out := make([]*Node, len(t.params))
	for i, v := range t.params {
		out[i] = v.NodeValue(g)
	}
	return out
}

// crossEntropy is the per-example softmax cross-entropy against labels
// smoothed by eps.
func crossEntropy(logits, labels *Node, classes int, eps float64) *Node {
	logp := LogSoftmax(logits, -1)
	target := OneHot(labels, classes, dtypes.Float32)
	if eps > 0 {
		target = AddScalar(MulScalar(target, 1-eps), eps/float64(classes))
	}
	return Neg(ReduceSum(Mul(target, logp), 1))
}

func correct(logits, labels *Node) *Node {
	return ReduceAllSum(ConvertDType(Equal(ArgMax(logits, 1, dtypes.Int32), labels), dtypes.Float32))
}

// step runs global step number step (from 1) with the learning rate lr
// and returns the global batch's loss sum, correct count and size.
func (t *trainer) step(ctx context.Context, b *batch, step int64, lr float64) (sums, error) {
	start := time.Now()
	if err := t.gradients(b); err != nil {
		return sums{}, err
	}
	reduce := time.Now()
	off := t.nParams + t.nState
	t.buf[off+2] = float32(b.n)
	if err := t.reducer.AllReduce(ctx, t.buf); err != nil {
		return sums{}, err
	}
	update := time.Now()
	defer func() {
		t.phases.Steps++
		t.phases.Gradients += reduce.Sub(start)
		t.phases.AllReduce += update.Sub(reduce)
		t.phases.Update += time.Since(update)
	}()
	s := sums{Loss: float64(t.buf[off]), Correct: float64(t.buf[off+1]), Count: float64(t.buf[off+2])}
	if err := t.updateState(t.buf[t.nParams:off], int(s.Count)/t.cfg.GhostBatch); err != nil {
		return sums{}, err
	}
	// The mean over the global batch: gradients are of the summed loss.
	grads := t.buf[:t.nParams]
	scale := float32(1 / s.Count)
	for i := range grads {
		grads[i] *= scale
	}
	if err := t.adam.apply(step, float32(lr), grads); err != nil {
		return sums{}, err
	}
	return s, nil
}

// updateState moves batch norm's running statistics toward the average of
// the global batch's ghost batches, from the statistics' sums in buf.
func (t *trainer) updateState(buf []float32, ghosts int) error {
	if len(t.state) == 0 {
		return nil
	}
	state, sums := make([][]float32, len(t.state)), make([][]float32, len(t.state))
	off := 0
	for i, v := range t.state {
		val, err := v.Value()
		if err != nil {
			return fmt.Errorf("variable %s: %w", v.Path(), err)
		}
		state[i] = tensors.MustCopyFlatData[float32](val)
		sums[i] = buf[off : off+len(state[i])]
		off += len(state[i])
	}
	t.net.UpdateState(state, sums, ghosts)
	for i, v := range t.state {
		if err := v.SetValue(tensors.FromFlatDataAndDimensions(state[i], t.cfg.Plan.State[i].Shape...)); err != nil {
			return err
		}
	}
	return nil
}

// gradients computes the summed-loss gradients of b's lanes, concurrently
// once every lane's graph is compiled, and adds them in lane order into
// t.buf, followed by the batch norm statistics' sums, the loss sum and the
// correct count.
func (t *trainer) gradients(b *batch) error {
	outs := make([][]*tensors.Tensor, len(b.lanes))
	errs := make([]error, len(b.lanes))
	run := func(i int) {
		outs[i], errs[i] = t.grad.Exec(b.lanes[i]...)
		for _, in := range b.lanes[i] {
			in.(*tensors.Tensor).MustFinalizeAll()
		}
	}
	if t.compiled {
		var wg sync.WaitGroup
		for i := range b.lanes {
			wg.Go(func() { run(i) })
		}
		wg.Wait()
	} else {
		// Compile one lane shape at a time.
		for i := range b.lanes {
			run(i)
		}
		t.compiled = true
	}
	defer func() {
		for _, out := range outs {
			for _, o := range out {
				o.MustFinalizeAll()
			}
		}
	}()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("gradient step: %w", err)
	}
	n := len(t.params) + len(t.state)
	for lane, out := range outs {
		off := 0
		for i := range n + 2 {
			err := out[i].ConstFlatData(func(flat any) {
				v := flat.([]float32)
				if lane == 0 {
					copy(t.buf[off:], v)
				} else {
					dst := t.buf[off : off+len(v)]
					for j := range dst {
						dst[j] += v[j]
					}
				}
				off += len(v)
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// evalSums are reduced metrics of one set.
type evalSums struct {
	lossSum, count float64
	confusion      [][]float64 // [true][predicted] counts
}

func (e *evalSums) loss() float64 {
	if e.count == 0 {
		return 0
	}
	return e.lossSum / e.count
}

func (e *evalSums) accuracy() float64 {
	if e.count == 0 {
		return 0
	}
	var c float64
	for k := range e.confusion {
		c += e.confusion[k][k]
	}
	return c / e.count
}

func (e *evalSums) perClass() ([]float64, [][]float64) {
	classes := len(e.confusion)
	acc := make([]float64, classes)
	conf := make([][]float64, classes)
	for k := range classes {
		var row float64
		for j := range classes {
			row += e.confusion[k][j]
		}
		conf[k] = make([]float64, classes)
		for j := range classes {
			if row > 0 {
				conf[k][j] = e.confusion[k][j] / row
			}
		}
		acc[k] = conf[k][k]
	}
	return acc, conf
}

// evaluate computes the loss and confusion counts of a set, each rank on
// its part, summed over ranks.
func (t *trainer) evaluate(ctx context.Context, set *data.Eval) (*evalSums, error) {
	bs := t.cfg.EvalBatch
	in0 := t.cfg.Plan.Input
	px := in0.H * in0.W * in0.C
	x := make([]float32, bs*px)
	y := make([]int32, bs)
	w := make([]float32, bs)
	var loss float64
	classes := t.cfg.Plan.Classes
	conf := make([]float64, classes*classes)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// The last batch is padded to the same size, with weight 0, so one
		// compiled graph serves every batch.
		clear(x)
		clear(y)
		clear(w)
		n, err := set.Next(ctx, x, y)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			break
		}
		for i := range n {
			w[i] = 1
		}
		in := []*tensors.Tensor{
			tensors.FromFlatDataAndDimensions(x, bs, in0.H, in0.W, in0.C),
			tensors.FromFlatDataAndDimensions(y, bs),
			tensors.FromFlatDataAndDimensions(w, bs),
		}
		out, err := t.eval.Exec(in[0], in[1], in[2])
		for _, tt := range in {
			tt.MustFinalizeAll()
		}
		if err != nil {
			return nil, fmt.Errorf("evaluate: %w", err)
		}
		loss += float64(tensors.MustCopyFlatData[float32](out[0])[0])
		preds := tensors.MustCopyFlatData[int32](out[1])
		for _, o := range out {
			o.MustFinalizeAll()
		}
		for i := range n {
			conf[int(y[i])*classes+int(preds[i])]++
		}
	}
	buf := make([]float32, 2+len(conf))
	buf[0], buf[1] = float32(loss), float32(set.Len())
	for i, c := range conf {
		buf[2+i] = float32(c)
	}
	if err := t.reducer.AllReduce(ctx, buf); err != nil {
		return nil, err
	}
	e := &evalSums{lossSum: float64(buf[0]), count: float64(buf[1]), confusion: make([][]float64, classes)}
	for k := range classes {
		e.confusion[k] = make([]float64, classes)
		for j := range classes {
			e.confusion[k][j] = float64(buf[2+k*classes+j])
		}
	}
	return e, nil
}

// tensors returns the store's variables: only the model's (parameters
// and batch norm state, as a weights file holds them) when modelOnly, else
// everything a checkpoint needs.
func (t *trainer) tensors(modelOnly bool) ([]model.Tensor, error) {
	var out []model.Tensor
	own := append(slices.Clone(t.params), t.state...)
	vars := own
	if !modelOnly {
		vars = slices.Collect(t.store.IterVariables())
	}
	for _, v := range vars {
		val, err := v.Value()
		if err != nil {
			return nil, fmt.Errorf("variable %s: %w", v.Path(), err)
		}
		name := v.Path()
		if slices.Contains(own, v) {
			name = v.Name()
		}
		dims := val.Shape().Dimensions
		switch val.DType() {
		case dtypes.Float32:
			out = append(out, model.FromFloat32s(name, dims, tensors.MustCopyFlatData[float32](val)))
		case dtypes.Int64:
			out = append(out, model.FromInt64s(name, dims, tensors.MustCopyFlatData[int64](val)))
		default:
			return nil, fmt.Errorf("variable %s has dtype %s, which checkpoints do not hold", v.Path(), val.DType())
		}
	}
	return out, nil
}

// save writes a checkpoint of the current state (rank 0 only).
func (t *trainer) save(ctx context.Context, prog *progress) error {
	if t.opts.Checkpoints == nil || t.cfg.Rank != 0 {
		return nil
	}
	ts, err := t.tensors(false)
	if err != nil {
		return err
	}
	meta, err := json.Marshal(prog)
	if err != nil {
		return err
	}
	uri, err := t.opts.Checkpoints.Save(ctx, &checkpoint.State{Step: prog.Step, Tensors: ts, Meta: map[string]string{progressKey: string(meta)}})
	if err != nil {
		return err
	}
	t.log.Info("checkpoint", "uri", uri, "step", prog.Step, "epoch", prog.Epoch)
	return nil
}

// agreeOnStart checks that every rank resumed at the step rank 0 resumed
// at: a rank that read an older checkpoint (a listing not yet consistent)
// would apply other updates and diverge silently. Rank 0's step travels as
// 12-bit digits, so the float32 sums stay exact.
func (t *trainer) agreeOnStart(ctx context.Context, step int64) error {
	if t.cfg.WorldSize == 1 {
		return nil
	}
	var digits [3]float32
	if t.cfg.Rank == 0 {
		for i := range digits {
			digits[i] = float32(step >> (12 * i) & 0xfff)
		}
	}
	if err := t.reducer.AllReduce(ctx, digits[:]); err != nil {
		return err
	}
	var first int64
	for i, d := range digits {
		first |= int64(d) << (12 * i)
	}
	differ := []float32{0}
	if first != step {
		differ[0] = 1
	}
	if err := t.reducer.AllReduce(ctx, differ); err != nil {
		return err
	}
	if differ[0] > 0 {
		return exitcode.Errorf(exitcode.StorageDown, "%d of %d ranks resumed at another step than rank 0 (step %d; this rank: step %d): the checkpoint listing differs between ranks",
			int(differ[0]), t.cfg.WorldSize, first, step)
	}
	return nil
}
