package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

// refBatchNorm is batch norm by its definition in float64: y, and each
// feature's mean and biased variance over every axis but featureAxis.
func refBatchNorm(dims []int, featureAxis int, eps float64, x, scale, offset []float64) (y, mean, variance []float64) {
	st := rowMajor(dims)
	feature := func(i int) int { return i / st[featureAxis] % dims[featureAxis] }
	nf := dims[featureAxis]
	mean, variance = make([]float64, nf), make([]float64, nf)
	count := float64(len(x) / nf)
	for i, v := range x {
		mean[feature(i)] += v / count
	}
	for i, v := range x {
		d := v - mean[feature(i)]
		variance[feature(i)] += d * d / count
	}
	y = make([]float64, len(x))
	for i, v := range x {
		f := feature(i)
		y[i] = (v-mean[f])/math.Sqrt(variance[f]+eps)*scale[f] + offset[f]
	}
	return y, mean, variance
}

func float64s(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

func float32s(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

// batchNormCase draws dims of at most maxSize elements (odd sizes, spans
// shorter and longer than a vector), a feature axis and inputs away from
// zero mean.
func batchNormCase(rng *rand.Rand, maxSize int) (dims []int, axis int, x, scale, offset []float32) {
	for dims == nil || size(dims) > maxSize {
		dims, axis = drawBatchNormDims(rng)
	}
	shift := 4 * float32(rng.NormFloat64())
	x = randoms(rng, size(dims))
	for i := range x {
		x[i] = 2*x[i] + shift
	}
	return dims, axis, x, randoms(rng, dims[axis]), randoms(rng, dims[axis])
}

func drawBatchNormDims(rng *rand.Rand) (dims []int, axis int) {
	dims = make([]int, 1+rng.IntN(4))
	for i := range dims {
		dims[i] = 1 + rng.IntN(9)
	}
	if rng.IntN(2) == 0 {
		dims[len(dims)-1] = 1 + rng.IntN(70)
	}
	if len(dims) == 1 {
		dims = append(dims, 3)
	}
	axis = rng.IntN(len(dims))
	if size(dims)/dims[axis] < 2 {
		dims[(axis+1)%len(dims)] += 2 // a variance over one element is 0
	}
	return dims, axis
}

func TestBatchNormMatchesDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	const eps = 1e-3
	for i := range 300 {
		dims, axis, x, scale, offset := batchNormCase(rng, 1<<16)
		what := fmt.Sprintf("case %d: dims %v axis %d", i, dims, axis)
		p, err := NewBatchNorm(dims, axis, eps)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		wantY, wantMean, wantVar := refBatchNorm(dims, axis, eps, float64s(x), float64s(scale), float64s(offset))
		y, mean, variance := randoms(rng, len(x)), randoms(rng, dims[axis]), randoms(rng, dims[axis])
		p.Train(y, mean, variance, x, scale, offset)
		near(t, what+": y", y, float32s(wantY))
		near(t, what+": mean", mean, float32s(wantMean))
		near(t, what+": variance", variance, float32s(wantVar))

		// Inference by other statistics.
		m, v := randoms(rng, dims[axis]), randoms(rng, dims[axis])
		for f := range v {
			v[f] *= v[f]
		}
		p.Infer(y, x, scale, offset, m, v)
		want := make([]float32, len(x))
		st := rowMajor(dims)
		for i, xv := range x {
			f := i / st[axis] % dims[axis]
			want[i] = float32((float64(xv)-float64(m[f]))/math.Sqrt(float64(v[f])+eps)*float64(scale[f]) + float64(offset[f]))
		}
		near(t, what+": inference", y, want)
	}
}

// TestBatchNormGradient checks Gradient against central differences of
// L = Σ dy·y through refBatchNorm.
func TestBatchNormGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	const eps = 1e-3
	for i := range 60 {
		dims, axis, x, scale, offset := batchNormCase(rng, 400) // finite differences cost size²
		what := fmt.Sprintf("case %d: dims %v axis %d", i, dims, axis)
		p, err := NewBatchNorm(dims, axis, eps)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		dy := randoms(rng, len(x))
		x64, s64, o64, dy64 := float64s(x), float64s(scale), float64s(offset), float64s(dy)
		loss := func() float64 {
			y, _, _ := refBatchNorm(dims, axis, eps, x64, s64, o64)
			var l float64
			for j, v := range y {
				l += v * dy64[j]
			}
			return l
		}
		diff := func(v []float64) []float32 {
			const h = 1e-5
			g := make([]float32, len(v))
			for j := range v {
				v0 := v[j]
				v[j] = v0 + h
				up := loss()
				v[j] = v0 - h
				g[j] = float32((up - loss()) / (2 * h))
				v[j] = v0
			}
			return g
		}
		y, mean, variance := make([]float32, len(x)), make([]float32, dims[axis]), make([]float32, dims[axis])
		p.Train(y, mean, variance, x, scale, offset)
		dx, ds, do := randoms(rng, len(x)), randoms(rng, dims[axis]), randoms(rng, dims[axis])
		p.Gradient(dx, ds, do, x, scale, mean, variance, dy)
		nearGrad(t, what+": dx", dx, diff(x64))
		nearGrad(t, what+": dscale", ds, diff(s64))
		nearGrad(t, what+": doffset", do, diff(o64))
	}
}

// nearGrad allows for the finite differences' error, relative to the
// gradient's largest element.
func nearGrad(t *testing.T, what string, got, want []float32) {
	t.Helper()
	var top float64
	for _, v := range want {
		top = math.Max(top, math.Abs(float64(v)))
	}
	for i := range got {
		if d := math.Abs(float64(got[i] - want[i])); d > 1e-3*(1+top) || math.IsNaN(float64(got[i])) {
			t.Fatalf("%s: [%d] = %g, want %g", what, i, got[i], want[i])
		}
	}
}

// TestBatchNormSplitsLikeOneCore: the features split across goroutines
// give the same bits as one goroutine.
func TestBatchNormSplitsLikeOneCore(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	dims := []int{24, 8, 9, 10} // above minParallelElements
	x, scale, offset, dy := randoms(rng, size(dims)), randoms(rng, 24), randoms(rng, 24), randoms(rng, size(dims))
	p, err := NewBatchNorm(dims, 0, 1e-5)
	if err != nil {
		t.Fatal(err)
	}
	run := func(procs int) [][]float32 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		y, m, v := make([]float32, len(x)), make([]float32, 24), make([]float32, 24)
		p.Train(y, m, v, x, scale, offset)
		dx, ds, do := make([]float32, len(x)), make([]float32, 24), make([]float32, 24)
		p.Gradient(dx, ds, do, x, scale, m, v, dy)
		return [][]float32{y, m, v, dx, ds, do}
	}
	one, four := run(1), run(4)
	for i := range one {
		for j := range one[i] {
			if math.Float32bits(one[i][j]) != math.Float32bits(four[i][j]) {
				t.Fatalf("output %d [%d]: %g on 4 goroutines, %g on 1", i, j, four[i][j], one[i][j])
			}
		}
	}
}

func TestNewBatchNormRejects(t *testing.T) {
	for _, c := range []struct {
		dims []int
		axis int
	}{{[]int{2, 3}, 2}, {[]int{2, 3}, -1}, {nil, 0}} {
		if _, err := NewBatchNorm(c.dims, c.axis, 1e-5); err == nil {
			t.Errorf("NewBatchNorm(%v, %d): no error", c.dims, c.axis)
		}
	}
}
