//go:build goexperiment.simd && amd64

package kernels

import "simd/archsimd"

// deinterleave writes src's even elements to even and its odd ones to
// odd: a stride-2 row split into its two column phases.
func deinterleave(even, odd, src []float32) {
	if !hasAVX512 {
		deinterleavePortable(even, odd, src)
		return
	}
	// loadPair's and StoreSlicePart's masks take the last 1 to 31 elements.
	for i := 0; i < len(src); i += 32 {
		n := min(32, len(src)-i)
		x, y := loadPair(src[i : i+n])
		x.ConcatPermute(y, evenLanes).StoreSlicePart(even[i/2:][:(n+1)/2])
		x.ConcatPermute(y, oddLanes).StoreSlicePart(odd[i/2:][:n/2])
	}
}

// transpose16 writes column t of the 16×16 block at src (rows stride
// apart) to dst[rows[t]:][:16]. Interleaving row i with row i+8 into
// rows 2i and 2i+1 (zipLo, zipHi) rotates the 8 bits of an element's
// (row, column) left by one, so four rounds transpose the block.
func transpose16(dst []float32, rows *[16]int, src []float32, stride int) {
	if !hasAVX512 {
		transpose16Portable(dst, rows, src, stride)
		return
	}
	// The block lives on the stack (16 vectors outnumber Go's 15
	// registers); the rounds alternate between two arrays, as copying one
	// array into the other went by 16-byte moves that the next round's
	// 64-byte loads could not forward from (3 ns per element).
	var a, b [16]archsimd.Float32x16
	for i := range a {
		a[i] = archsimd.LoadFloat32x16Slice(src[i*stride:][:16])
	}
	lo, hi := zipLo, zipHi
	m, n := &a, &b
	for range 4 {
		for i := range 8 {
			x, y := m[i], m[i+8]
			n[2*i], n[2*i+1] = x.ConcatPermute(y, lo), x.ConcatPermute(y, hi)
		}
		m, n = n, m
	}
	for t, v := range m {
		v.StoreSlice(dst[rows[t]:][:16])
	}
}
