package kernels

import (
	"fmt"
	"math"
)

// Adam is the Adam optimizer's update (Kingma and Ba, 2015) with decay
// rates Beta1 and Beta2 and Epsilon added to the denominator, as gomlx's
// and PyTorch's Adam apply it.
type Adam struct{ Beta1, Beta2, Epsilon float32 }

// Step applies update t (from 1) with learning rate lr to the parameters
// p and their moments m and v, in place, by gradient g:
//
//	m ← β1·m + (1−β1)·g
//	v ← β2·v + (1−β2)·g²
//	p ← p − lr·m̂ / (√v̂ + ε),  m̂ = m/(1−β1ᵗ), v̂ = v/(1−β2ᵗ)
//
// Large slices are split across the cores.
func (a Adam) Step(p, m, v, g []float32, lr float32, t int64) {
	if len(m) != len(p) || len(v) != len(p) || len(g) != len(p) {
		panic(fmt.Sprintf("adam: parameters %d, moments %d and %d, gradient %d", len(p), len(m), len(v), len(g)))
	}
	if t < 1 {
		panic(fmt.Sprintf("adam: step %d, want 1 or more", t))
	}
	c := adamCoefficients{
		beta1: a.Beta1, beta2: a.Beta2, eps: a.Epsilon,
		lr1: lr / float32(1-math.Pow(float64(a.Beta1), float64(t))),
		c2:  1 / float32(1-math.Pow(float64(a.Beta2), float64(t))),
	}
	// Whole vectors a goroutine, so the chunks start on them.
	n := len(p)
	splitWork((n+vecWidth-1)/vecWidth, minParallelElements/vecWidth, func(lo, hi int) {
		lo, hi = lo*vecWidth, min(n, hi*vecWidth)
		adamSpan(p[lo:hi], m[lo:hi], v[lo:hi], g[lo:hi], c)
	})
}

// adamCoefficients are one step's: lr1 is the learning rate over β1's
// bias correction, c2 the inverse of β2's.
type adamCoefficients struct{ beta1, beta2, eps, lr1, c2 float32 }

func adamSpanPortable(p, m, v, g []float32, c adamCoefficients) {
	m, v, g = m[:len(p)], v[:len(p)], g[:len(p)]
	for i := range p {
		gi := g[i]
		mi := c.beta1*m[i] + (1-c.beta1)*gi
		vi := c.beta2*v[i] + (1-c.beta2)*gi*gi
		m[i], v[i] = mi, vi
		p[i] -= c.lr1 * mi / (float32(math.Sqrt(float64(vi*c.c2))) + c.eps)
	}
}
