//go:build goexperiment.simd && amd64

package kernels

import "simd/archsimd"

// Index vectors of one perfect-shuffle round: x[0] y[0] x[1] y[1] … over
// the low halves of x and y, and over the high halves.
var (
	shuffleLo = archsimd.LoadUint32x16(&[16]uint32{0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23})
	shuffleHi = archsimd.LoadUint32x16(&[16]uint32{8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31})
)

// Index vectors that pick the even and the odd elements of x and y.
var (
	pickEven = archsimd.LoadUint32x16(&[16]uint32{0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30})
	pickOdd  = archsimd.LoadUint32x16(&[16]uint32{1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31})
)

// deinterleave writes src's even elements to even and its odd ones to
// odd: a stride-2 row split into its two column phases.
func deinterleave(even, odd, src []float32) {
	if !hasAVX512 {
		deinterleavePortable(even, odd, src)
		return
	}
	// Masked loads and stores take the last 1 to 31 elements.
	for i := 0; i < len(src); i += 32 {
		n := min(32, len(src)-i)
		x := archsimd.LoadFloat32x16SlicePart(src[i:][:min(n, 16)])
		var y archsimd.Float32x16
		if n > 16 {
			y = archsimd.LoadFloat32x16SlicePart(src[i+16:][:n-16])
		}
		x.ConcatPermute(y, pickEven).StoreSlicePart(even[i/2:][:(n+1)/2])
		x.ConcatPermute(y, pickOdd).StoreSlicePart(odd[i/2:][:n/2])
	}
}

// transpose16 writes column t of the 16×16 block at src (rows stride
// apart) to dst[rows[t]:][:16]. Interleaving row i with row i+8 into rows
// 2i and 2i+1 rotates the 8 bits of an element's (row, column) left by
// one, so four rounds transpose the block.
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
			n[2*i] = m[i].ConcatPermute(m[i+8], shuffleLo)
			n[2*i+1] = m[i].ConcatPermute(m[i+8], shuffleHi)
		}
		m = n
	}
	for t, v := range m {
		v.StoreSlice(dst[rows[t]:][:16])
	}
}
