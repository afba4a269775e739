//lint:file-ignore ST1001 gomlx graph-building code reads as math with graph dot-imported

package cpubackend_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/gobackend"

	"github.com/aerie-ml/aerie/internal/cpubackend"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	timage "github.com/gomlx/gomlx/core/tensors/images"
)

// run builds fn on backend and returns its outputs' values.
func run(t *testing.T, backend compute.Backend, fn func(x, w *Node) []*Node, x, w []float32, xd, wd []int) [][]float32 {
	t.Helper()
	exec, err := NewExec(backend, func(x, w *Node) []*Node { return fn(x, w) })
	if err != nil {
		t.Fatal(err)
	}
	defer exec.Finalize()
	// A first call on other data: the second must not see its buffers.
	other := make([]float32, len(x))
	for i, v := range x {
		other[i] = 1 - 2*v
	}
	outs, err := exec.Call(tensors.FromFlatDataAndDimensions(other, xd...), tensors.FromFlatDataAndDimensions(w, wd...))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range outs {
		o.MustFinalizeAll()
	}
	outs, err = exec.Call(tensors.FromFlatDataAndDimensions(x, xd...), tensors.FromFlatDataAndDimensions(w, wd...))
	if err != nil {
		t.Fatal(err)
	}
	var res [][]float32
	for _, o := range outs {
		res = append(res, tensors.MustCopyFlatData[float32](o))
		o.MustFinalizeAll()
	}
	return res
}

func randoms(rng *rand.Rand, dims []int) []float32 {
	n := 1
	for _, d := range dims {
		n *= d
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

func near(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if d := math.Abs(float64(got[i] - want[i])); d > 1e-4*(1+math.Abs(float64(want[i]))) || math.IsNaN(float64(got[i])) {
			t.Fatalf("%s: [%d] = %g, want %g (gobackend)", what, i, got[i], want[i])
		}
	}
}

// TestConvAndPoolGradients checks values and gradients of convolutions
// and max-pools, as gomlx builds them (its gradients are more
// convolutions, Reverse and SelectAndScatter), against gobackend's direct
// implementations, on random shapes with odd sizes, strides, paddings,
// dilations and groups, in both channel layouts.
func TestConvAndPoolGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	ours := cpubackend.Get()
	ref := gobackend.GetBackend()
	for range 40 {
		batch, h, w := 1+rng.IntN(3), 3+rng.IntN(9), 3+rng.IntN(9)
		groups := 1 + rng.IntN(2)
		cin, cout := groups*(1+rng.IntN(4)), groups*(1+rng.IntN(6))
		k, stride, dil := 1+rng.IntN(3), 1+rng.IntN(2), 1
		if stride == 1 { // gomlx takes strides or dilations, not both
			dil += rng.IntN(2)
		}
		h, w = max(h, (k-1)*dil+1), max(w, (k-1)*dil+1)
		pad := rng.IntN(2) == 0
		first := rng.IntN(2) == 0
		pool := 1 + rng.IntN(2)
		xd := []int{batch, h, w, cin}
		if first {
			xd = []int{batch, cin, h, w}
		}
		wd := []int{k, k, cin / groups, cout}
		if first {
			wd = []int{cout, cin / groups, k, k}
		}
		name := fmt.Sprintf("x%v_w%v_s%d_d%d_g%d_pad%v_first%v_pool%d", xd, wd, stride, dil, groups, pad, first, pool)
		t.Run(name, func(t *testing.T) {
			fn := func(x, kern *Node) []*Node {
				c := Convolve(x, kern).Strides(stride).Dilations(dil).ChannelGroupCount(groups)
				p := MaxPool(Tanh(x)).Window(pool)
				if first {
					c = c.ChannelsAxis(timage.ChannelsFirst)
					p = p.ChannelsAxis(timage.ChannelsFirst)
				}
				if pad {
					c = c.PadSame()
				} else {
					c = c.NoPadding()
				}
				y := c.Done()
				pooled := p.Done()
				// Weights make every output element's gradient distinct.
				loss := Add(ReduceAllSum(Mul(y, Sin(y))), ReduceAllSum(Mul(pooled, pooled)))
				g := Gradient(loss, x, kern)
				return []*Node{y, pooled, g[0], g[1]}
			}
			x, kern := randoms(rng, xd), randoms(rng, wd)
			want := run(t, ref, fn, x, kern, xd, wd)
			got := run(t, ours, fn, x, kern, xd, wd)
			for j, what := range []string{"conv", "pool", "d/dx", "d/dkernel"} {
				near(t, what, got[j], want[j])
			}
		})
	}
}

// TestSegmentsCarryValues checks a graph whose values cross several cuts,
// with parameters and repeated values among the outputs.
func TestSegmentsCarryValues(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	xd, wd := []int{2, 6, 5, 3}, []int{3, 3, 3, 4}
	fn := func(x, kern *Node) []*Node {
		a := Convolve(x, kern).PadSame().Done()
		b := MulScalar(x, 2)
		c := Convolve(Concatenate([]*Node{b, x}, -1), Concatenate([]*Node{kern, kern}, 2)).PadSame().Done()
		d := MaxPool(Add(a, c)).Window(2).Done()
		return []*Node{d, x, b, ReduceAllSum(a), d}
	}
	x, kern := randoms(rng, xd), randoms(rng, wd)
	want := run(t, gobackend.GetBackend(), fn, x, kern, xd, wd)
	got := run(t, cpubackend.Get(), fn, x, kern, xd, wd)
	for j := range want {
		near(t, fmt.Sprint("output ", j), got[j], want[j])
	}
}

// TestBiasAddsAndSums checks the bias additions and sums the backend runs
// itself (a per-channel bias on a channel-first map, a bias per column,
// and the sums of their gradients), with the small operand on either
// side, against gobackend.
func TestBiasAddsAndSums(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	xd, wd := []int{3, 2, 5, 7}, []int{3, 7}
	fn := func(x, w *Node) []*Node {
		rows := Add(x, Reshape(ReduceSum(w, 1), 3, 1, 1, 1))
		cols := Add(Reshape(ReduceSum(w, 0), 1, 1, 1, 7), x)
		dense := Add(Reshape(x, 30, 7), Reshape(ReduceSum(w, 0), 1, 7))
		loss := Add(ReduceAllSum(Mul(rows, Sin(cols))), ReduceAllSum(Mul(dense, dense)))
		g := Gradient(loss, x, w)
		return []*Node{rows, cols, dense, ReduceSum(x, 1, 2, 3), ReduceSum(x, 0, 1), g[0], g[1]}
	}
	x, w := randoms(rng, xd), randoms(rng, wd)
	want := run(t, gobackend.GetBackend(), fn, x, w, xd, wd)
	got := run(t, cpubackend.Get(), fn, x, w, xd, wd)
	for j := range want {
		near(t, fmt.Sprint("output ", j), got[j], want[j])
	}
}

// TestTransposes checks permutations large enough for kernels.Transpose,
// and their gradients, against gobackend.
func TestTransposes(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	xd, wd := []int{8, 9, 10, 11}, []int{11, 8, 9, 10}
	fn := func(x, w *Node) []*Node {
		a := TransposeAllAxes(x, 3, 0, 1, 2)
		b := TransposeAllAxes(x, 1, 2, 3, 0)
		c := TransposeAllAxes(x, 2, 0, 3, 1)
		loss := Add(ReduceAllSum(Mul(a, w)), ReduceAllSum(Mul(b, Sin(b))))
		g := Gradient(Add(loss, ReduceAllSum(Mul(c, c))), x, w)
		return []*Node{a, b, c, g[0], g[1]}
	}
	x, w := randoms(rng, xd), randoms(rng, wd)
	want := run(t, gobackend.GetBackend(), fn, x, w, xd, wd)
	got := run(t, cpubackend.Get(), fn, x, w, xd, wd)
	for j := range want {
		near(t, fmt.Sprint("output ", j), got[j], want[j])
	}
}

// TestBatchNorm checks the batch-norm ops (training, inference and the
// gradient gomlx builds) against their elementwise definition on
// gobackend, which has no batch norm of its own, over a middle axis.
func TestBatchNorm(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	const eps = 1e-3
	xd, wd := []int{4, 6, 5, 3}, []int{2, 6} // w: scale and offset of axis 1
	fn := func(fused bool) func(x, w *Node) []*Node {
		return func(x, w *Node) []*Node {
			scale, offset := Reshape(Slice(w, AxisElem(0)), 6), Reshape(Slice(w, AxisElem(1)), 6)
			perFeature := func(v *Node) *Node { return Reshape(v, 1, 6, 1, 1) }
			var y, mean, variance, inferred *Node
			if fused {
				y, mean, variance = InternalBatchNormForTraining(x, scale, offset, eps, 1)
				inferred = InternalBatchNormForInference(x, scale, offset, AddScalar(mean, 1), MulScalar(variance, 2), eps, 1)
			} else {
				mean = ReduceMean(x, 0, 2, 3)
				centered := Sub(x, perFeature(mean))
				variance = ReduceMean(Square(centered), 0, 2, 3)
				norm := func(m, v *Node) *Node {
					return Add(Mul(Div(Sub(x, perFeature(m)), Sqrt(AddScalar(perFeature(v), eps))), perFeature(scale)), perFeature(offset))
				}
				y = norm(mean, variance)
				inferred = norm(AddScalar(mean, 1), MulScalar(variance, 2))
			}
			g := Gradient(ReduceAllSum(Mul(y, Sin(x))), x, w)
			return []*Node{y, StopGradient(mean), StopGradient(variance), inferred, g[0], g[1]}
		}
	}
	x, w := randoms(rng, xd), randoms(rng, wd)
	want := run(t, gobackend.GetBackend(), fn(false), x, w, xd, wd)
	got := run(t, cpubackend.Get(), fn(true), x, w, xd, wd)
	for j, what := range []string{"y", "mean", "variance", "inference", "d/dx", "d/dw"} {
		near(t, what, got[j], want[j])
	}
}

// TestKernelResultsReused checks that repeated calls reuse a kernel's
// result and its input from a segment (Tanh's, recycled by gobackend):
// a call allocates far less than either.
func TestKernelResultsReused(t *testing.T) {
	xd, wd := []int{16, 28, 28, 8}, []int{3, 3, 8, 32}
	outBytes := uint64(16 * 28 * 28 * 32 * 4)
	exec, err := NewExec(cpubackend.Get(), func(x, w *Node) *Node {
		return ReduceAllSum(Convolve(Tanh(x), w).PadSame().Done())
	})
	if err != nil {
		t.Fatal(err)
	}
	defer exec.Finalize()
	rng := rand.New(rand.NewPCG(1, 2))
	x := tensors.FromFlatDataAndDimensions(randoms(rng, xd), xd...)
	w := tensors.FromFlatDataAndDimensions(randoms(rng, wd), wd...)
	call := func() {
		out, err := exec.Call1(x, w)
		if err != nil {
			t.Fatal(err)
		}
		out.MustFinalizeAll()
	}
	call()
	// No collection while measuring: it empties gobackend's buffer pools
	// (sync.Pool), and how often one runs depends on the heap, not on
	// whether this backend reuses its results.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	const calls = 10
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range calls {
		call()
	}
	runtime.ReadMemStats(&after)
	if perCall := (after.TotalAlloc - before.TotalAlloc) / calls; perCall > outBytes/16 {
		t.Errorf("a call allocates %d bytes; the conv's output is %d", perCall, outBytes)
	}
}
