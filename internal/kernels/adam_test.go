package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

// TestAdamMatchesDefinition runs several steps against Adam's definition
// in float64, on sizes around a vector and above the parallel split.
func TestAdamMatchesDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	opt := Adam{Beta1: 0.9, Beta2: 0.999, Epsilon: 1e-8}
	for _, n := range []int{1, 15, 16, 33, 1000, 3*minParallelElements + 7} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			p, m, v := randoms(rng, n), make([]float32, n), make([]float32, n)
			p64, m64, v64 := float64s(p), make([]float64, n), make([]float64, n)
			for step := int64(1); step <= 4; step++ {
				g := randoms(rng, n)
				lr := 1e-3 * float64(step)
				opt.Step(p, m, v, g, float32(lr), step)
				b1, b2 := float64(opt.Beta1), float64(opt.Beta2)
				for i, gi := range float64s(g) {
					m64[i] = b1*m64[i] + (1-b1)*gi
					v64[i] = b2*v64[i] + (1-b2)*gi*gi
					mh, vh := m64[i]/(1-math.Pow(b1, float64(step))), v64[i]/(1-math.Pow(b2, float64(step)))
					p64[i] -= lr * mh / (math.Sqrt(vh) + float64(opt.Epsilon))
				}
				what := fmt.Sprintf("step %d", step)
				near(t, what+": m", m, float32s(m64))
				near(t, what+": v", v, float32s(v64))
				near(t, what+": p", p, float32s(p64))
			}
		})
	}
}

// TestAdamSplitsLikeOneCore: the goroutines' chunks give the same bits as
// one goroutine.
func TestAdamSplitsLikeOneCore(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 20))
	n := 5*minParallelElements + 3
	p0, g := randoms(rng, n), randoms(rng, n)
	run := func(procs int) []float32 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		p, m, v := append([]float32(nil), p0...), make([]float32, n), make([]float32, n)
		Adam{Beta1: 0.9, Beta2: 0.999, Epsilon: 1e-8}.Step(p, m, v, g, 1e-3, 1)
		return p
	}
	one, three := run(1), run(3)
	for i := range one {
		if math.Float32bits(one[i]) != math.Float32bits(three[i]) {
			t.Fatalf("[%d]: %g on 3 goroutines, %g on 1", i, three[i], one[i])
		}
	}
}
