//go:build goexperiment.simd && amd64

package kernels

import "simd/archsimd"

// The elementwise spans of batch norm and Select, 16 lanes at a time on
// AVX-512 and portably otherwise (elementwise_portable.go holds the other
// builds' dispatch). Sums keep vector accumulators.

func sumSpan(x []float32) float32 {
	if !hasAVX512 {
		return sumSpanPortable(x)
	}
	var s0, s1 archsimd.Float32x16
	i := 0
	for ; i+32 <= len(x); i += 32 {
		s0 = s0.Add(archsimd.LoadFloat32x16Slice(x[i:]))
		s1 = s1.Add(archsimd.LoadFloat32x16Slice(x[i+16:]))
	}
	for ; i < len(x); i += 16 {
		s0 = s0.Add(archsimd.LoadFloat32x16SlicePart(x[i:min(i+16, len(x))]))
	}
	return hsum(s0.Add(s1))
}

func sumSqDevSpan(x []float32, m float32) float32 {
	if !hasAVX512 {
		return sumSqDevSpanPortable(x, m)
	}
	mv := archsimd.BroadcastFloat32x16(m)
	var s0, s1 archsimd.Float32x16
	i := 0
	for ; i+32 <= len(x); i += 32 {
		d0 := archsimd.LoadFloat32x16Slice(x[i:]).Sub(mv)
		d1 := archsimd.LoadFloat32x16Slice(x[i+16:]).Sub(mv)
		s0, s1 = d0.MulAdd(d0, s0), d1.MulAdd(d1, s1)
	}
	// The tail portably: a partial load's zero lanes would add m².
	return hsum(s0.Add(s1)) + sumSqDevSpanPortable(x[i:], m)
}

func affineSpan(y, x []float32, a, c float32) {
	if !hasAVX512 {
		affineSpanPortable(y, x, a, c)
		return
	}
	y = y[:len(x)]
	av, cv := archsimd.BroadcastFloat32x16(a), archsimd.BroadcastFloat32x16(c)
	i := 0
	for ; i+16 <= len(x); i += 16 {
		archsimd.LoadFloat32x16Slice(x[i:]).MulAdd(av, cv).StoreSlice(y[i:])
	}
	if i < len(x) {
		archsimd.LoadFloat32x16SlicePart(x[i:]).MulAdd(av, cv).StoreSlicePart(y[i:])
	}
}

func gradSumsSpan(dy, x []float32, m float32) (sdy, sdyx float32) {
	if !hasAVX512 {
		return gradSumsSpanPortable(dy, x, m)
	}
	x = x[:len(dy)]
	mv := archsimd.BroadcastFloat32x16(m)
	var a, b archsimd.Float32x16
	i := 0
	for ; i+16 <= len(dy); i += 16 {
		g := archsimd.LoadFloat32x16Slice(dy[i:])
		a = a.Add(g)
		b = g.MulAdd(archsimd.LoadFloat32x16Slice(x[i:]).Sub(mv), b)
	}
	if i < len(dy) {
		// dy's missing lanes load as zeros, so both products vanish there.
		g := archsimd.LoadFloat32x16SlicePart(dy[i:])
		a = a.Add(g)
		b = g.MulAdd(archsimd.LoadFloat32x16SlicePart(x[i:]).Sub(mv), b)
	}
	return hsum(a), hsum(b)
}

func gradAffineSpan(dx, dy, x []float32, a, b, c float32) {
	if !hasAVX512 {
		gradAffineSpanPortable(dx, dy, x, a, b, c)
		return
	}
	dx, x = dx[:len(dy)], x[:len(dy)]
	av, bv, cv := archsimd.BroadcastFloat32x16(a), archsimd.BroadcastFloat32x16(b), archsimd.BroadcastFloat32x16(c)
	i := 0
	for ; i+16 <= len(dy); i += 16 {
		xb := archsimd.LoadFloat32x16Slice(x[i:]).MulAdd(bv, cv)
		archsimd.LoadFloat32x16Slice(dy[i:]).MulAdd(av, xb).StoreSlice(dx[i:])
	}
	if i < len(dy) {
		xb := archsimd.LoadFloat32x16SlicePart(x[i:]).MulAdd(bv, cv)
		archsimd.LoadFloat32x16SlicePart(dy[i:]).MulAdd(av, xb).StoreSlicePart(dx[i:])
	}
}

// hsum adds v's lanes.
func hsum(v archsimd.Float32x16) float32 {
	var a [16]float32
	v.Store(&a)
	return sumSpanPortable(a[:])
}

// selectSpan is selectPortable 16 lanes at a time on AVX-512.
func selectSpan(out []float32, cond []uint8, onTrue, onFalse []float32) {
	if !hasAVX512 {
		selectPortable(out, cond, onTrue, onFalse)
		return
	}
	scalarT, scalarF := len(onTrue) == 1, len(onFalse) == 1
	t, f := archsimd.BroadcastFloat32x16(onTrue[0]), archsimd.BroadcastFloat32x16(onFalse[0])
	var zero archsimd.Uint32x16
	i := 0
	for ; i+16 <= len(out); i += 16 {
		m := archsimd.LoadUint8x16Slice(cond[i:]).ExtendToUint32().NotEqual(zero)
		if !scalarT {
			t = archsimd.LoadFloat32x16Slice(onTrue[i:])
		}
		if !scalarF {
			f = archsimd.LoadFloat32x16Slice(onFalse[i:])
		}
		t.Merge(f, m).StoreSlice(out[i:])
	}
	if i < len(out) {
		rest := func(v []float32) []float32 {
			if len(v) == 1 {
				return v
			}
			return v[i:]
		}
		selectPortable(out[i:], cond[i:], rest(onTrue), rest(onFalse))
	}
}

// greaterSpan is greaterPortable 16 lanes at a time on AVX-512: the
// comparison's mask selects ones, narrowed to bytes.
func greaterSpan(out []uint8, x, y []float32) {
	if !hasAVX512 {
		greaterPortable(out, x, y)
		return
	}
	out = out[:len(x)]
	scalar := len(y) == 1
	yv := archsimd.BroadcastFloat32x16(y[0])
	one := archsimd.BroadcastUint32x16(1)
	i := 0
	for ; i+16 <= len(x); i += 16 {
		if !scalar {
			yv = archsimd.LoadFloat32x16Slice(y[i:])
		}
		one.Masked(archsimd.LoadFloat32x16Slice(x[i:]).Greater(yv)).TruncateToUint8().StoreSlice(out[i:])
	}
	if i < len(x) {
		if !scalar {
			y = y[i:]
		}
		greaterPortable(out[i:], x[i:], y)
	}
}

// adamSpan is adamSpanPortable 16 lanes at a time on AVX-512.
func adamSpan(p, m, v, g []float32, c adamCoefficients) {
	if !hasAVX512 {
		adamSpanPortable(p, m, v, g, c)
		return
	}
	m, v, g = m[:len(p)], v[:len(p)], g[:len(p)]
	b1, b2 := archsimd.BroadcastFloat32x16(c.beta1), archsimd.BroadcastFloat32x16(c.beta2)
	nb1, nb2 := archsimd.BroadcastFloat32x16(1-c.beta1), archsimd.BroadcastFloat32x16(1-c.beta2)
	lr1, c2, eps := archsimd.BroadcastFloat32x16(c.lr1), archsimd.BroadcastFloat32x16(c.c2), archsimd.BroadcastFloat32x16(c.eps)
	i := 0
	for ; i+16 <= len(p); i += 16 {
		gi := archsimd.LoadFloat32x16Slice(g[i:])
		mi := archsimd.LoadFloat32x16Slice(m[i:]).MulAdd(b1, gi.Mul(nb1))
		vi := archsimd.LoadFloat32x16Slice(v[i:]).MulAdd(b2, gi.Mul(gi).Mul(nb2))
		mi.StoreSlice(m[i:])
		vi.StoreSlice(v[i:])
		step := lr1.Mul(mi).Div(vi.Mul(c2).Sqrt().Add(eps))
		archsimd.LoadFloat32x16Slice(p[i:]).Sub(step).StoreSlice(p[i:])
	}
	adamSpanPortable(p[i:], m[i:], v[i:], g[i:], c)
}
