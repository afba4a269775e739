package cpubackend

import (
	"slices"

	"github.com/gomlx/compute"
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

func (k *convKernel) shape() shapes.Shape { return k.out }
func (k *convKernel) run(out any, in []any) {
	k.plan.Run(out.([]float32), in[0].([]float32), in[1].([]float32))
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

func (k *poolKernel) shape() shapes.Shape { return k.out }
func (k *poolKernel) run(out any, in []any) {
	k.plan.Forward(out.([]float32), in[0].([]float32))
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

func (k *scatterKernel) shape() shapes.Shape { return k.out }
func (k *scatterKernel) run(out any, in []any) {
	k.plan.ScatterMax(out.([]float32), in[0].([]float32), in[1].([]float32))
}

func allOnes(v []int) bool {
	for _, d := range v {
		if d != 1 {
			return false
		}
	}
	return true
}
