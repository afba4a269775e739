package cpubackend

import (
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/gobackend"
	"github.com/gomlx/compute/shapes"
)

// TestSlotsReusedAlongAChain builds six transposes in a row, each read
// only by the next: a frame needs two slots for their five kept results,
// and two calls on other data still give the right output.
func TestSlotsReusedAlongAChain(t *testing.T) {
	be := New(gobackend.GetBackend())
	b := be.Builder("chain")
	fn := b.Main()
	shape := shapes.Make(dtypes.Float32, 64, 64) // a kernel: minElementwiseKernel elements
	x, err := fn.Parameter("x", shape, nil)
	if err != nil {
		t.Fatal(err)
	}
	v := x
	for range 6 {
		if v, err = fn.Transpose(v, 1, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := fn.Return([]compute.Value{v}, nil); err != nil {
		t.Fatal(err)
	}
	exe, err := b.Compile()
	if err != nil {
		t.Fatal(err)
	}
	defer exe.Finalize()
	if n := exe.(*Executable).nSlots; n != 2 {
		t.Errorf("a frame has %d slots, want 2", n)
	}
	for call := range 2 {
		xs := make([]float32, shape.Size())
		for i := range xs {
			xs[i] = float32(i * (call + 1))
		}
		xb, err := be.BufferFromFlatData(0, xs, shape)
		if err != nil {
			t.Fatal(err)
		}
		outs, err := exe.Execute([]compute.Buffer{xb}, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		flat, err := outs[0].Data()
		if err != nil {
			t.Fatal(err)
		}
		for i, got := range flat.([]float32) {
			if got != xs[i] {
				t.Fatalf("call %d: output[%d] = %g, want %g (six transposes are none)", call, i, got, xs[i])
			}
		}
	}
}
