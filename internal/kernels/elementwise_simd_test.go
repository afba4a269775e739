//go:build goexperiment.simd && amd64

package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestElementwiseSpans checks the AVX-512 spans against the portable
// ones, on lengths around whole vectors.
func TestElementwiseSpans(t *testing.T) {
	if !hasAVX512 {
		t.Skip("no AVX-512: the spans are the portable ones")
	}
	rng := rand.New(rand.NewPCG(21, 22))
	for _, n := range []int{1, 15, 16, 17, 31, 32, 33, 100} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			x, dy := randoms(rng, n), randoms(rng, n)
			m, a, b, c := float32(rng.NormFloat64()), float32(rng.NormFloat64()), float32(rng.NormFloat64()), float32(rng.NormFloat64())
			one := func(v float32) []float32 { return []float32{v} }
			near(t, "sum", one(sumSpan(x)), one(sumSpanPortable(x)))
			near(t, "sum of squared deviations", one(sumSqDevSpan(x, m)), one(sumSqDevSpanPortable(x, m)))
			s1, s2 := gradSumsSpan(dy, x, m)
			w1, w2 := gradSumsSpanPortable(dy, x, m)
			near(t, "gradient sums", []float32{s1, s2}, []float32{w1, w2})
			got, want := make([]float32, n), make([]float32, n)
			affineSpan(got, x, a, c)
			affineSpanPortable(want, x, a, c)
			near(t, "affine", got, want)
			gradAffineSpan(got, dy, x, a, b, c)
			gradAffineSpanPortable(want, dy, x, a, b, c)
			near(t, "gradient affine", got, want)
			cond := make([]uint8, n)
			for i := range cond {
				cond[i] = uint8(rng.IntN(2))
			}
			selectSpan(got, cond, x, one(0))
			selectPortable(want, cond, x, one(0))
			near(t, "select", got, want)
			p, mo, v := randoms(rng, n), randoms(rng, n), randoms(rng, n)
			for i := range v {
				v[i] *= v[i]
			}
			p2, mo2, v2 := append([]float32(nil), p...), append([]float32(nil), mo...), append([]float32(nil), v...)
			co := adamCoefficients{beta1: 0.9, beta2: 0.999, eps: 1e-8, lr1: 1e-2, c2: 1.5}
			adamSpan(p, mo, v, dy, co)
			adamSpanPortable(p2, mo2, v2, dy, co)
			near(t, "adam", append(append(p, mo...), v...), append(append(p2, mo2...), v2...))
		})
	}
}
