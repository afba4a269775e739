package cpubackend

import (
	"fmt"
	"slices"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapeinference"
	"github.com/gomlx/compute/shapes"

	"github.com/aerie-ml/aerie/internal/kernels"
)

// ConvGeneral runs float32 convolutions without batch grouping with
// kernels.Conv: the forward pass and both gradients gomlx builds from it.
func (f *Function) ConvGeneral(input, kernel compute.Value, axes compute.ConvolveAxesConfig, strides []int, paddings [][2]int,
	inputDilations, kernelDilations []int, channelGroupCount, batchGroupCount int) (compute.Value, error) {
	x, err := f.b.handle(input)
	if err != nil {
		return nil, err
	}
	w, err := f.b.handle(kernel)
	if err != nil {
		return nil, err
	}
	shape, err := shapeinference.ConvGeneral(x.shape, w.shape, axes, strides, paddings, inputDilations, kernelDilations, channelGroupCount, batchGroupCount)
	if err != nil {
		return nil, err
	}
	if batchGroupCount > 1 || !isF32(x.shape, w.shape) {
		return f.forwardConv(input, kernel, axes, strides, paddings, inputDilations, kernelDilations, channelGroupCount, batchGroupCount)
	}
	spec := kernels.ConvSpec{
		In: x.shape.Dimensions, Kernel: w.shape.Dimensions, Out: shape.Dimensions,
		InBatch: axes.InputBatch, InChannels: axes.InputChannels, InSpatial: slices.Clone(axes.InputSpatial),
		KernelIn: axes.KernelInputChannels, KernelOut: axes.KernelOutputChannels, KernelSpatial: slices.Clone(axes.KernelSpatial),
		OutBatch: axes.OutputBatch, OutChannels: axes.OutputChannels, OutSpatial: slices.Clone(axes.OutputSpatial),
		Strides: slices.Clone(strides), Paddings: slices.Clone(paddings),
		InputDilations: slices.Clone(inputDilations), KernelDilations: slices.Clone(kernelDilations),
		Groups: max(1, channelGroupCount),
	}
	plan, err := kernels.NewConv(spec)
	if err != nil {
		return nil, err
	}
	return f.b.addKernel(&convKernel{plan: plan, out: shape}, x, w), nil
}

func (f *Function) forwardConv(input, kernel compute.Value, axes compute.ConvolveAxesConfig, strides []int, paddings [][2]int,
	inputDilations, kernelDilations []int, channelGroupCount, batchGroupCount int) (compute.Value, error) {
	a, err := f.in(input)
	if err != nil {
		return nil, err
	}
	k, err := f.in(kernel)
	if err != nil {
		return nil, err
	}
	seg, err := f.segment()
	if err != nil {
		return nil, err
	}
	r, err := seg.ConvGeneral(a, k, axes, strides, paddings, inputDilations, kernelDilations, channelGroupCount, batchGroupCount)
	if err != nil {
		return nil, err
	}
	return f.out(r), nil
}

type convKernel struct {
	plan *kernels.Conv
	out  shapes.Shape
}

func (k *convKernel) shapes() []shapes.Shape { return []shapes.Shape{k.out} }
func (k *convKernel) run(out, in []any) {
	k.plan.Run(out[0].([]float32), in[0].([]float32), in[1].([]float32))
}

// ReduceWindow runs float32 max and sum windows without dilations with
// kernels.Pool (max-pooling, and the sums gomlx's mean pooling uses).
func (f *Function) ReduceWindow(input compute.Value, reductionType compute.ReduceOpType, windowDimensions, strides, inputDilations, windowDilations []int, paddings [][2]int) (compute.Value, error) {
	x, err := f.b.handle(input)
	if err != nil {
		return nil, err
	}
	shape, err := shapeinference.ReduceWindow(x.shape, windowDimensions, strides, inputDilations, windowDilations, paddings)
	if err != nil {
		return nil, err
	}
	op := kernels.PoolMax
	switch reductionType {
	case compute.ReduceOpMax:
	case compute.ReduceOpSum:
		op = kernels.PoolSum
	default:
		op = -1
	}
	if op < 0 || !isF32(x.shape) || !allOnes(inputDilations) || !allOnes(windowDilations) {
		a, err := f.in(input)
		if err != nil {
			return nil, err
		}
		seg, err := f.segment()
		if err != nil {
			return nil, err
		}
		r, err := seg.ReduceWindow(a, reductionType, windowDimensions, strides, inputDilations, windowDilations, paddings)
		if err != nil {
			return nil, err
		}
		return f.out(r), nil
	}
	plan, err := kernels.NewPool(op, x.shape.Dimensions, windowDimensions, strides, paddings)
	if err != nil {
		return nil, err
	}
	return f.b.addKernel(&poolKernel{plan: plan, out: shape}, x), nil
}

type poolKernel struct {
	plan *kernels.Pool
	out  shapes.Shape
}

func (k *poolKernel) shapes() []shapes.Shape { return []shapes.Shape{k.out} }
func (k *poolKernel) run(out, in []any) {
	k.plan.Forward(out[0].([]float32), in[0].([]float32))
}

// SelectAndScatterMax is max-pooling's gradient, with kernels.Pool.
func (f *Function) SelectAndScatterMax(operand, source compute.Value, windowDimensions, windowStrides []int, paddings [][2]int) (compute.Value, error) {
	x, err := f.b.handle(operand)
	if err != nil {
		return nil, err
	}
	s, err := f.b.handle(source)
	if err != nil {
		return nil, err
	}
	if !isF32(x.shape, s.shape) {
		a, err := f.in(operand)
		if err != nil {
			return nil, err
		}
		b, err := f.in(source)
		if err != nil {
			return nil, err
		}
		seg, err := f.segment()
		if err != nil {
			return nil, err
		}
		r, err := seg.SelectAndScatterMax(a, b, windowDimensions, windowStrides, paddings)
		if err != nil {
			return nil, err
		}
		return f.out(r), nil
	}
	plan, err := kernels.NewPool(kernels.PoolMax, x.shape.Dimensions, windowDimensions, windowStrides, paddings)
	if err != nil {
		return nil, err
	}
	if !slices.Equal(plan.OutDims(), s.shape.Dimensions) {
		return nil, errShape("SelectAndScatterMax source", s.shape, plan.OutDims())
	}
	return f.b.addKernel(&scatterKernel{plan: plan, out: x.shape}, x, s), nil
}

type scatterKernel struct {
	plan *kernels.Pool
	out  shapes.Shape
}

func (k *scatterKernel) shapes() []shapes.Shape { return []shapes.Shape{k.out} }
func (k *scatterKernel) run(out, in []any) {
	k.plan.ScatterMax(out[0].([]float32), in[0].([]float32), in[1].([]float32))
}

func allOnes(v []int) bool {
	for _, d := range v {
		if d != 1 {
			return false
		}
	}
	return true
}

// Add runs float32 bias additions with kernels.AddRows and AddColumns:
// an operand of the other's rank whose dimensions are a prefix of the
// result's followed by ones ([F, 1, 1, 1] on a channel-first map), or
// ones followed by a suffix ([1, N] on a [batch, N] matrix). Any other
// Add runs in a segment.
func (f *Function) Add(lhs, rhs compute.Value) (compute.Value, error) {
	l, err := f.b.handle(lhs)
	if err != nil {
		return nil, err
	}
	r, err := f.b.handle(rhs)
	if err != nil {
		return nil, err
	}
	x, b := l, r
	if b.shape.Size() > x.shape.Size() {
		x, b = b, x
	}
	if isF32(x.shape, b.shape) && x.shape.Rank() == b.shape.Rank() && b.shape.Size() < x.shape.Size() {
		if rows, cols := broadcastPattern(x.shape.Dimensions, b.shape.Dimensions); rows || cols {
			return f.b.addKernel(&addKernel{rows: rows, out: x.shape}, x, b), nil
		}
	}
	return f.forward(func(seg compute.Function, a []compute.Value) (compute.Value, error) { return seg.Add(a[0], a[1]) }, lhs, rhs)
}

// broadcastPattern reports whether small is big's leading dimensions
// followed by ones (rows) or ones followed by big's trailing ones (cols).
func broadcastPattern(big, small []int) (rows, cols bool) {
	n := len(big)
	lead := 0 // leading dimensions equal to big's
	for lead < n && small[lead] == big[lead] {
		lead++
	}
	ones := 0 // trailing ones
	for ones < n && small[n-1-ones] == 1 {
		ones++
	}
	rows = lead+ones >= n
	lead1 := 0 // leading ones
	for lead1 < n && small[lead1] == 1 {
		lead1++
	}
	trail := 0 // trailing dimensions equal to big's
	for trail < n && small[n-1-trail] == big[n-1-trail] {
		trail++
	}
	cols = lead1+trail >= n
	return rows, cols
}

type addKernel struct {
	rows bool
	out  shapes.Shape
}

func (k *addKernel) shapes() []shapes.Shape { return []shapes.Shape{k.out} }
func (k *addKernel) run(out, in []any) {
	x, b := in[0].([]float32), in[1].([]float32)
	if k.rows {
		kernels.AddRows(out[0].([]float32), x, b)
	} else {
		kernels.AddColumns(out[0].([]float32), x, b)
	}
}

// ReduceSum runs float32 sums over trailing axes (a channel-first bias
// gradient) or leading axes (a dense bias gradient) with kernels.SumRows
// and SumColumns; any other runs in a segment.
func (f *Function) ReduceSum(x compute.Value, axes ...int) (compute.Value, error) {
	v, err := f.b.handle(x)
	if err != nil {
		return nil, err
	}
	shape, err := shapeinference.Reduce(v.shape, axes)
	if err == nil && isF32(v.shape) && len(axes) > 0 && shape.Size() > 0 {
		sorted := slices.Sorted(slices.Values(axes))
		r := v.shape.Rank()
		suffix := sorted[0] == r-len(sorted) && sorted[len(sorted)-1] == r-1
		prefix := sorted[0] == 0 && sorted[len(sorted)-1] == len(sorted)-1
		if suffix || prefix {
			return f.b.addKernel(&sumKernel{rows: suffix, out: shape}, v), nil
		}
	}
	return f.forward(func(seg compute.Function, a []compute.Value) (compute.Value, error) {
		return seg.ReduceSum(a[0], axes...)
	}, x)
}

type sumKernel struct {
	rows bool
	out  shapes.Shape
}

func (k *sumKernel) shapes() []shapes.Shape { return []shapes.Shape{k.out} }
func (k *sumKernel) run(out, in []any) {
	if k.rows {
		kernels.SumRows(out[0].([]float32), in[0].([]float32))
	} else {
		kernels.SumColumns(out[0].([]float32), in[0].([]float32))
	}
}

// forward runs op on args in the open segment.
func (f *Function) forward(op func(seg compute.Function, args []compute.Value) (compute.Value, error), args ...compute.Value) (compute.Value, error) {
	a, err := f.ins(args)
	if err != nil {
		return nil, err
	}
	seg, err := f.segment()
	if err != nil {
		return nil, err
	}
	r, err := op(seg, a)
	if err != nil {
		return nil, err
	}
	return f.out(r), nil
}

// minElementwiseKernel is the size from which a float32 Transpose or
// Where runs as a kernel: a smaller one costs less in its segment than the
// cut.
const minElementwiseKernel = 4096

// Transpose runs float32 permutations of at least minElementwiseKernel
// elements with kernels.Transpose (dropout masks and flattening between
// layouts); others run in a segment.
func (f *Function) Transpose(x compute.Value, permutation ...int) (compute.Value, error) {
	v, err := f.b.handle(x)
	if err != nil {
		return nil, err
	}
	if isF32(v.shape) && v.shape.Size() >= minElementwiseKernel {
		shape, err := shapeinference.Transpose(v.shape, permutation)
		if err != nil {
			return nil, err
		}
		plan, err := kernels.NewTranspose(v.shape.Dimensions, permutation)
		if err != nil {
			return nil, err
		}
		return f.b.addKernel(&transposeKernel{plan: plan, out: shape}, v), nil
	}
	return f.forward(func(seg compute.Function, a []compute.Value) (compute.Value, error) {
		return seg.Transpose(a[0], permutation...)
	}, x)
}

type transposeKernel struct {
	plan *kernels.Transpose
	out  shapes.Shape
}

func (k *transposeKernel) shapes() []shapes.Shape { return []shapes.Shape{k.out} }
func (k *transposeKernel) run(out, in []any) {
	k.plan.Run(out[0].([]float32), in[0].([]float32))
}

// BatchNormForTraining runs float32 batch norm with kernels.BatchNorm:
// the normalized operand and each feature's mean and biased variance.
func (f *Function) BatchNormForTraining(operand, scale, offset compute.Value, epsilon float32, featureAxis int) (normalized, batchMean, batchVariance compute.Value, err error) {
	vs, err := f.handles(operand, scale, offset)
	if err != nil {
		return nil, nil, nil, err
	}
	plan, err := f.batchNormPlan(vs, epsilon, featureAxis)
	if err != nil {
		return nil, nil, nil, err
	}
	x, perFeature := vs[0].shape, vs[1].shape
	r := f.b.addKernelResults(&batchNormKernel{plan: plan, outs: []shapes.Shape{x, perFeature, perFeature}}, vs...)
	return r[0], r[1], r[2], nil
}

// BatchNormForInference runs float32 batch norm by given statistics with
// kernels.BatchNorm.
func (f *Function) BatchNormForInference(operand, scale, offset, mean, variance compute.Value, epsilon float32, featureAxis int) (compute.Value, error) {
	vs, err := f.handles(operand, scale, offset, mean, variance)
	if err != nil {
		return nil, err
	}
	plan, err := f.batchNormPlan(vs, epsilon, featureAxis)
	if err != nil {
		return nil, err
	}
	return f.b.addKernel(&batchNormKernel{plan: plan, inference: true, outs: []shapes.Shape{vs[0].shape}}, vs...), nil
}

// BatchNormGradient is BatchNormForTraining's gradient, with
// kernels.BatchNorm: of the operand, the scale and the offset.
func (f *Function) BatchNormGradient(operand, scale, mean, variance, gradOutput compute.Value, epsilon float32, featureAxis int) (gradOperand, gradScale, gradOffset compute.Value, err error) {
	vs, err := f.handles(operand, scale, mean, variance, gradOutput)
	if err != nil {
		return nil, nil, nil, err
	}
	if !vs[4].shape.Equal(vs[0].shape) {
		return nil, nil, nil, errShape("BatchNormGradient gradOutput", vs[4].shape, vs[0].shape.Dimensions)
	}
	plan, err := f.batchNormPlan(vs[:4], epsilon, featureAxis)
	if err != nil {
		return nil, nil, nil, err
	}
	x, perFeature := vs[0].shape, vs[1].shape
	r := f.b.addKernelResults(&batchNormGradKernel{plan: plan, outs: []shapes.Shape{x, perFeature, perFeature}}, vs...)
	return r[0], r[1], r[2], nil
}

func (f *Function) handles(ops ...compute.Value) ([]*value, error) {
	vs := make([]*value, len(ops))
	for i, op := range ops {
		var err error
		if vs[i], err = f.b.handle(op); err != nil {
			return nil, err
		}
	}
	return vs, nil
}

// batchNormPlan checks that vs are a float32 operand and vectors of its
// featureAxis's length, and plans their batch norm. gobackend has no batch
// norm, so there is nothing to fall back to.
func (f *Function) batchNormPlan(vs []*value, epsilon float32, featureAxis int) (*kernels.BatchNorm, error) {
	x := vs[0].shape
	for _, v := range vs {
		if !isF32(v.shape) {
			return nil, fmt.Errorf("backend %s: batch norm of %s: float32 only", Name, v.shape)
		}
	}
	plan, err := kernels.NewBatchNorm(x.Dimensions, featureAxis, epsilon)
	if err != nil {
		return nil, fmt.Errorf("backend %s: %w", Name, err)
	}
	for _, v := range vs[1:] {
		if v.shape.Rank() != 1 || v.shape.Dimensions[0] != plan.Features() {
			return nil, errShape("batch norm per-feature vector", v.shape, []int{plan.Features()})
		}
	}
	return plan, nil
}

type batchNormKernel struct {
	plan      *kernels.BatchNorm
	inference bool
	outs      []shapes.Shape
}

func (k *batchNormKernel) shapes() []shapes.Shape { return k.outs }
func (k *batchNormKernel) run(out, in []any) {
	x, scale, offset := in[0].([]float32), in[1].([]float32), in[2].([]float32)
	if k.inference {
		k.plan.Infer(out[0].([]float32), x, scale, offset, in[3].([]float32), in[4].([]float32))
		return
	}
	k.plan.Train(out[0].([]float32), out[1].([]float32), out[2].([]float32), x, scale, offset)
}

type batchNormGradKernel struct {
	plan *kernels.BatchNorm
	outs []shapes.Shape
}

func (k *batchNormGradKernel) shapes() []shapes.Shape { return k.outs }
func (k *batchNormGradKernel) run(out, in []any) {
	k.plan.Gradient(out[0].([]float32), out[1].([]float32), out[2].([]float32),
		in[0].([]float32), in[1].([]float32), in[2].([]float32), in[3].([]float32), in[4].([]float32))
}

// Where runs float32 selections of at least minElementwiseKernel elements
// by a condition of their shape, each operand whole or a scalar, with
// kernels.Select: ReLU and its gradient. Others run in a segment.
func (f *Function) Where(condition, onTrue, onFalse compute.Value) (compute.Value, error) {
	vs, err := f.handles(condition, onTrue, onFalse)
	if err != nil {
		return nil, err
	}
	c, t, e := vs[0].shape, vs[1].shape, vs[2].shape
	wholeOrScalar := func(s shapes.Shape) bool { return s.IsScalar() || slices.Equal(s.Dimensions, c.Dimensions) }
	if c.DType == dtypes.Bool && c.Size() >= minElementwiseKernel && isF32(t, e) && wholeOrScalar(t) && wholeOrScalar(e) {
		return f.b.addKernel(&selectKernel{out: shapes.Make(dtypes.Float32, c.Dimensions...)}, vs...), nil
	}
	return f.forward(func(seg compute.Function, a []compute.Value) (compute.Value, error) {
		return seg.Where(a[0], a[1], a[2])
	}, condition, onTrue, onFalse)
}

// GreaterThan runs float32 comparisons of at least minElementwiseKernel
// elements with an operand of the same shape or a scalar on the right
// with kernels.Greater: ReLU's condition. Others run in a segment.
func (f *Function) GreaterThan(lhs, rhs compute.Value) (compute.Value, error) {
	vs, err := f.handles(lhs, rhs)
	if err != nil {
		return nil, err
	}
	x, y := vs[0].shape, vs[1].shape
	if isF32(x, y) && x.Size() >= minElementwiseKernel && (y.IsScalar() || slices.Equal(x.Dimensions, y.Dimensions)) {
		return f.b.addKernel(&greaterKernel{out: shapes.Make(dtypes.Bool, x.Dimensions...)}, vs...), nil
	}
	return f.forward(func(seg compute.Function, a []compute.Value) (compute.Value, error) {
		return seg.GreaterThan(a[0], a[1])
	}, lhs, rhs)
}

type greaterKernel struct{ out shapes.Shape }

func (k *greaterKernel) shapes() []shapes.Shape { return []shapes.Shape{k.out} }
func (k *greaterKernel) run(out, in []any) {
	kernels.Greater(out[0].([]bool), in[0].([]float32), in[1].([]float32))
}

type selectKernel struct{ out shapes.Shape }

func (k *selectKernel) shapes() []shapes.Shape { return []shapes.Shape{k.out} }
func (k *selectKernel) run(out, in []any) {
	kernels.Select(out[0].([]float32), in[0].([]bool), in[1].([]float32), in[2].([]float32))
}
