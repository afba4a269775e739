package kernels

import (
	"fmt"
	"math"
)

// BatchNorm normalizes a tensor per feature: viewed as [outer, features,
// inner] (the feature axis in the middle), feature f's statistics are over
// its outer×inner elements. Variances are biased (divided by the count),
// as the forward pass uses them.
type BatchNorm struct {
	outer, features, inner int
	eps                    float32
}

// NewBatchNorm plans batch norm of a tensor of dims over featureAxis,
// with eps added to the variance.
func NewBatchNorm(dims []int, featureAxis int, eps float32) (*BatchNorm, error) {
	if featureAxis < 0 || featureAxis >= len(dims) {
		return nil, fmt.Errorf("batch norm: feature axis %d of a rank-%d tensor", featureAxis, len(dims))
	}
	p := &BatchNorm{outer: 1, features: dims[featureAxis], inner: 1, eps: eps}
	for i, d := range dims {
		if d < 0 {
			return nil, fmt.Errorf("batch norm: dimensions %v", dims)
		}
		switch {
		case i < featureAxis:
			p.outer *= d
		case i > featureAxis:
			p.inner *= d
		}
	}
	return p, nil
}

// Features is the length of the per-feature vectors.
func (p *BatchNorm) Features() int { return p.features }

func (p *BatchNorm) size() int { return p.outer * p.features * p.inner }

// spans calls fn with each of feature f's contiguous runs of inner elements.
func (p *BatchNorm) spans(f int, fn func(off int)) {
	for o := range p.outer {
		fn((o*p.features + f) * p.inner)
	}
}

// inv is 1/√(variance+eps).
func (p *BatchNorm) inv(variance float32) float32 {
	return float32(1 / math.Sqrt(float64(variance)+float64(p.eps)))
}

// Train sets y to x normalized by its features' statistics, times scale
// plus offset, and mean and variance to those statistics.
func (p *BatchNorm) Train(y, mean, variance, x, scale, offset []float32) {
	p.check(x, y, scale, offset, mean, variance)
	n := float32(p.outer * p.inner)
	p.perFeature(func(f int) {
		var s float32
		p.spans(f, func(off int) { s += sumSpan(x[off:][:p.inner]) })
		m := s / n
		var q float32
		p.spans(f, func(off int) { q += sumSqDevSpan(x[off:][:p.inner], m) })
		v := q / n
		mean[f], variance[f] = m, v
		a := scale[f] * p.inv(v)
		c := offset[f] - m*a
		p.spans(f, func(off int) { affineSpan(y[off:][:p.inner], x[off:][:p.inner], a, c) })
	})
}

// Infer sets y to x normalized by the given statistics, times scale plus
// offset.
func (p *BatchNorm) Infer(y, x, scale, offset, mean, variance []float32) {
	p.check(x, y, scale, offset, mean, variance)
	p.perFeature(func(f int) {
		a := scale[f] * p.inv(variance[f])
		c := offset[f] - mean[f]*a
		p.spans(f, func(off int) { affineSpan(y[off:][:p.inner], x[off:][:p.inner], a, c) })
	})
}

// Gradient sets dx, dscale and doffset to the gradients of Train's y, by
// dy, with respect to x, scale and offset; mean and variance are Train's.
//
// With x̂ = (x−m)·r, r = 1/√(v+eps) and N elements a feature:
// doffset = Σdy, dscale = Σdy·x̂ and
// dx = scale·r·(dy − doffset/N − x̂·dscale/N), an affine map of dy and x.
func (p *BatchNorm) Gradient(dx, dscale, doffset, x, scale, mean, variance, dy []float32) {
	p.check(x, dx, scale, mean, variance, dscale, doffset)
	if len(dy) != p.size() {
		panic(fmt.Sprintf("batch norm: gradient of %d elements, want %d", len(dy), p.size()))
	}
	n := float32(p.outer * p.inner)
	p.perFeature(func(f int) {
		m, r := mean[f], p.inv(variance[f])
		var sdy, sdyx float32
		p.spans(f, func(off int) {
			a, b := gradSumsSpan(dy[off:][:p.inner], x[off:][:p.inner], m)
			sdy, sdyx = sdy+a, sdyx+b
		})
		ds := sdyx * r
		dscale[f], doffset[f] = ds, sdy
		a := scale[f] * r
		b := -a * r * ds / n
		c := -a*sdy/n - b*m
		p.spans(f, func(off int) { gradAffineSpan(dx[off:][:p.inner], dy[off:][:p.inner], x[off:][:p.inner], a, b, c) })
	})
}

func (p *BatchNorm) check(x, y []float32, perFeature ...[]float32) {
	if len(x) != p.size() || len(y) != p.size() {
		panic(fmt.Sprintf("batch norm: tensors of %d and %d elements, want %d", len(x), len(y), p.size()))
	}
	for _, v := range perFeature {
		if len(v) != p.features {
			panic(fmt.Sprintf("batch norm: a per-feature vector of %d, want %d", len(v), p.features))
		}
	}
}

// perFeature runs fn for every feature, split across the cores in runs
// of at least minParallelElements elements.
func (p *BatchNorm) perFeature(fn func(f int)) {
	perFeature := max(1, p.outer*p.inner)
	splitWork(p.features, (minParallelElements+perFeature-1)/perFeature, func(lo, hi int) {
		for f := lo; f < hi; f++ {
			fn(f)
		}
	})
}

func sumSpanPortable(x []float32) float32 {
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(x); i += 4 {
		s0, s1, s2, s3 = s0+x[i], s1+x[i+1], s2+x[i+2], s3+x[i+3]
	}
	for ; i < len(x); i++ {
		s0 += x[i]
	}
	return (s0 + s1) + (s2 + s3)
}

func sumSqDevSpanPortable(x []float32, m float32) float32 {
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(x); i += 4 {
		d0, d1, d2, d3 := x[i]-m, x[i+1]-m, x[i+2]-m, x[i+3]-m
		s0, s1, s2, s3 = s0+d0*d0, s1+d1*d1, s2+d2*d2, s3+d3*d3
	}
	for ; i < len(x); i++ {
		d := x[i] - m
		s0 += d * d
	}
	return (s0 + s1) + (s2 + s3)
}

func affineSpanPortable(y, x []float32, a, c float32) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] = v*a + c
	}
}

// gradSumsSpanPortable returns Σdy and Σdy·(x−m).
func gradSumsSpanPortable(dy, x []float32, m float32) (sdy, sdyx float32) {
	x = x[:len(dy)]
	var a0, a1, b0, b1 float32
	i := 0
	for ; i+2 <= len(dy); i += 2 {
		a0, a1 = a0+dy[i], a1+dy[i+1]
		b0, b1 = b0+dy[i]*(x[i]-m), b1+dy[i+1]*(x[i+1]-m)
	}
	for ; i < len(dy); i++ {
		a0 += dy[i]
		b0 += dy[i] * (x[i] - m)
	}
	return a0 + a1, b0 + b1
}

func gradAffineSpanPortable(dx, dy, x []float32, a, b, c float32) {
	dx, x = dx[:len(dy)], x[:len(dy)]
	for i, g := range dy {
		dx[i] = g*a + x[i]*b + c
	}
}
