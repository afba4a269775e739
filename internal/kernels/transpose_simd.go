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
	var m [16]archsimd.Float32x16
	for i := range m {
		m[i] = archsimd.LoadFloat32x16Slice(src[i*stride:][:16])
	}
	for range 4 {
		var n [16]archsimd.Float32x16
		for i := range 8 {
			n[2*i] = m[i].ConcatPermute(m[i+8], zipLo)
			n[2*i+1] = m[i].ConcatPermute(m[i+8], zipHi)
		}
		m = n
	}
	for t, v := range m {
		v.StoreSlice(dst[rows[t]:][:16])
	}
}
