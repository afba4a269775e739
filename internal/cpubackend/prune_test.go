package cpubackend

import (
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/gobackend"
	"github.com/gomlx/compute/shapes"
)

// TestPruneSkipsDeadKernels builds a convolution only dead ops read, as
// the input-image gradient of a training step is, in a segment that also
// makes the output: the kernel is marked dead, and the output is right.
func TestPruneSkipsDeadKernels(t *testing.T) {
	be := New(gobackend.GetBackend())
	b := be.Builder("prune")
	fn := b.Main()
	must := func(v compute.Value, err error) compute.Value {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	x := must(fn.Parameter("x", shapes.Make(dtypes.Float32, 1, 4, 4, 1), nil))
	w := must(fn.Parameter("w", shapes.Make(dtypes.Float32, 3, 3, 1, 2), nil))
	axes := compute.ConvolveAxesConfig{InputBatch: 0, InputChannels: 3, InputSpatial: []int{1, 2},
		KernelInputChannels: 2, KernelOutputChannels: 3, KernelSpatial: []int{0, 1},
		OutputBatch: 0, OutputChannels: 3, OutputSpatial: []int{1, 2}}
	twice := must(fn.Add(x, x))
	conv := must(fn.ConvGeneral(x, w, axes, nil, nil, nil, nil, 1, 1))
	must(fn.ReduceSum(conv, 0, 1, 2, 3)) // dead, in the output's segment
	square := must(fn.Mul(twice, twice))
	if err := fn.Return([]compute.Value{square}, nil); err != nil {
		t.Fatal(err)
	}
	exe, err := b.Compile()
	if err != nil {
		t.Fatal(err)
	}
	defer exe.Finalize()
	for _, s := range b.(*Builder).steps {
		if s.k != nil && !s.dead {
			t.Errorf("the convolution nothing reads is not marked dead")
		}
	}
	xs := make([]float32, 16)
	for i := range xs {
		xs[i] = float32(i)
	}
	xb, err := be.BufferFromFlatData(0, xs, shapes.Make(dtypes.Float32, 1, 4, 4, 1))
	if err != nil {
		t.Fatal(err)
	}
	wb, err := be.BufferFromFlatData(0, make([]float32, 18), shapes.Make(dtypes.Float32, 3, 3, 1, 2))
	if err != nil {
		t.Fatal(err)
	}
	outs, err := exe.Execute([]compute.Buffer{xb, wb}, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	flat, err := outs[0].Data()
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range flat.([]float32) {
		if want := float32(4 * i * i); v != want {
			t.Errorf("output[%d] = %g, want %g", i, v, want)
		}
	}
}
