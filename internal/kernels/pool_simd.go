//go:build goexperiment.simd && amd64

package kernels

import "simd/archsimd"

// Lane indices for vpermi2ps: the even and odd elements of two vectors,
// and the interleaving of two vectors' lower and upper halves.
var evenLanes, oddLanes, zipLo, zipHi = func() (e, o, lo, hi archsimd.Uint32x16) {
	var ea, oa, la, ha [16]uint32
	for i := range 16 {
		ea[i], oa[i] = uint32(2*i), uint32(2*i+1)
		la[i] = uint32(i/2 + 16*(i%2))
		ha[i] = uint32(8 + i/2 + 16*(i%2))
	}
	return archsimd.LoadUint32x16(&ea), archsimd.LoadUint32x16(&oa), archsimd.LoadUint32x16(&la), archsimd.LoadUint32x16(&ha)
}()

// scatterRow is scatterRowPortable, 16 windows at a time on AVX-512:
// the same comparisons, as masks instead of branches that mispredict on
// every other window.
func scatterRow(g0, g1, x0, x1, src []float32) {
	if !hasAVX512 {
		scatterRowPortable(g0, g1, x0, x1, src)
		return
	}
	var zero archsimd.Float32x16
	for i := 0; i < len(src); i += 16 {
		n := min(16, len(src)-i)
		v := archsimd.LoadFloat32x16SlicePart(src[i : i+n])
		r0, r1 := x0[2*i:2*(i+n)], x1[2*i:2*(i+n)]
		lo0, hi0 := loadPair(r0)
		lo1, hi1 := loadPair(r1)
		a, b := lo0.ConcatPermute(hi0, evenLanes), lo0.ConcatPermute(hi0, oddLanes)
		c, e := lo1.ConcatPermute(hi1, evenLanes), lo1.ConcatPermute(hi1, oddLanes)
		ga, best := v, a
		m := b.Greater(best)
		best, gb, ga := b.Merge(best, m), v.Masked(m), zero.Merge(ga, m)
		m = c.Greater(best)
		best, gc := c.Merge(best, m), v.Masked(m)
		ga, gb = zero.Merge(ga, m), zero.Merge(gb, m)
		m = e.Greater(best)
		ge := v.Masked(m)
		ga, gb, gc = zero.Merge(ga, m), zero.Merge(gb, m), zero.Merge(gc, m)
		storePair(g0[2*i:2*(i+n)], ga.ConcatPermute(gb, zipLo), ga.ConcatPermute(gb, zipHi))
		storePair(g1[2*i:2*(i+n)], gc.ConcatPermute(ge, zipLo), gc.ConcatPermute(ge, zipHi))
	}
}

// maxRow is maxRowPortable, 16 windows at a time on AVX-512, keeping
// the first maximum as ScatterMax does (NaN only where the window's
// first element is NaN).
func maxRow(o, r0, r1 []float32) {
	if !hasAVX512 {
		maxRowPortable(o, r0, r1)
		return
	}
	for i := 0; i < len(o); i += 16 {
		n := min(16, len(o)-i)
		lo0, hi0 := loadPair(r0[2*i : 2*(i+n)])
		lo1, hi1 := loadPair(r1[2*i : 2*(i+n)])
		best := lo0.ConcatPermute(hi0, evenLanes)
		for _, v := range [3]archsimd.Float32x16{lo0.ConcatPermute(hi0, oddLanes), lo1.ConcatPermute(hi1, evenLanes), lo1.ConcatPermute(hi1, oddLanes)} {
			best = v.Merge(best, v.Greater(best))
		}
		if n == 16 {
			best.Store((*[16]float32)(o[i : i+16]))
		} else {
			best.StoreSlicePart(o[i : i+n])
		}
	}
}

// loadPair loads up to 32 elements as two vectors, zero past the end.
func loadPair(s []float32) (lo, hi archsimd.Float32x16) {
	if len(s) >= 32 {
		return load16(s), load16(s[16:])
	}
	if len(s) > 16 {
		return load16(s), archsimd.LoadFloat32x16SlicePart(s[16:])
	}
	return archsimd.LoadFloat32x16SlicePart(s), lo
}

// storePair stores the first len(s) (at most 32) elements of lo, hi.
func storePair(s []float32, lo, hi archsimd.Float32x16) {
	if len(s) >= 32 {
		lo.Store((*[16]float32)(s[:16]))
		hi.Store((*[16]float32)(s[16:32]))
		return
	}
	if len(s) > 16 {
		lo.Store((*[16]float32)(s[:16]))
		hi.StoreSlicePart(s[16:])
		return
	}
	lo.StoreSlicePart(s)
}
