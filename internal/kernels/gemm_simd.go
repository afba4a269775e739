//go:build goexperiment.simd && amd64

package kernels

import "simd/archsimd"

// vecWidth pads the columns of packed matrices: one AVX-512 vector.
const vecWidth = 16

var (
	hasAVX512 = archsimd.X86.AVX512()
	hasAVX2   = archsimd.X86.AVX2() && archsimd.X86.FMA()
)

// ISA names the instruction set the kernels use.
func ISA() string {
	switch {
	case hasAVX512:
		return "avx512"
	case hasAVX2:
		return "avx2"
	}
	return "portable"
}

// gemm adds a·b to acc: acc is [m][n] and b [k][n] row-major, a is
// k-major ([k][m], so the four rows a step reads are adjacent), n a
// multiple of vecWidth. Four rows at a time, in column panels of 64 (four
// vectors of accumulators per row).
func gemm(acc, a, b []float32, m, k, n int) {
	switch {
	case hasAVX512:
		gemm512(acc, a, b, m, k, n)
	case hasAVX2:
		gemm256(acc, a, b, m, k, n)
	default:
		gemmPortable(acc, a, b, 0, m, k, n, m)
	}
}

func gemm512(acc, a, b []float32, m, k, n int) {
	r := 0
	for ; r+4 <= m; r += 4 {
		j := 0
		for ; j+64 <= n; j += 64 {
			kern4x64(acc[r*n+j:], a[r:], b[j:], k, n, m)
		}
		for ; j+32 <= n; j += 32 {
			kern4x32(acc[r*n+j:], a[r:], b[j:], k, n, m)
		}
		for ; j < n; j += 16 {
			kern4x16(acc[r*n+j:], a[r:], b[j:], k, n, m)
		}
	}
	// Leftover rows, one at a time: four accumulator chains per row hide
	// the FMA latency that one chain (kern1x16) is bound by.
	for ; r < m; r++ {
		j := 0
		for ; j+64 <= n; j += 64 {
			kern1x64(acc[r*n+j:], a[r:], b[j:], k, n, m)
		}
		for ; j < n; j += 16 {
			kern1x16(acc[r*n+j:], a[r:], b[j:], k, n, m)
		}
	}
}

func kern1x64(c, a, b []float32, k, n, lda int) {
	c0, c1, c2, c3 := load16(c[0:]), load16(c[16:]), load16(c[32:]), load16(c[48:])
	for kk := range k {
		x := archsimd.BroadcastFloat32x16(a[kk*lda])
		br := b[kk*n:][:64]
		c0, c1 = load16(br[0:]).MulAdd(x, c0), load16(br[16:]).MulAdd(x, c1)
		c2, c3 = load16(br[32:]).MulAdd(x, c2), load16(br[48:]).MulAdd(x, c3)
	}
	store16(c, c0, c1, c2, c3)
}

func load16(s []float32) archsimd.Float32x16 { return archsimd.LoadFloat32x16((*[16]float32)(s[:16])) }

func kern4x64(c, a, b []float32, k, n, lda int) {
	var c00, c01, c02, c03, c10, c11, c12, c13 archsimd.Float32x16
	var c20, c21, c22, c23, c30, c31, c32, c33 archsimd.Float32x16
	c00, c01, c02, c03 = load16(c[0:]), load16(c[16:]), load16(c[32:]), load16(c[48:])
	c10, c11, c12, c13 = load16(c[n:]), load16(c[n+16:]), load16(c[n+32:]), load16(c[n+48:])
	c20, c21, c22, c23 = load16(c[2*n:]), load16(c[2*n+16:]), load16(c[2*n+32:]), load16(c[2*n+48:])
	c30, c31, c32, c33 = load16(c[3*n:]), load16(c[3*n+16:]), load16(c[3*n+32:]), load16(c[3*n+48:])
	for kk := range k {
		ak := a[kk*lda:][:4]
		br := b[kk*n:][:64]
		b0, b1, b2, b3 := load16(br[0:]), load16(br[16:]), load16(br[32:]), load16(br[48:])
		x := archsimd.BroadcastFloat32x16(ak[0])
		c00, c01, c02, c03 = b0.MulAdd(x, c00), b1.MulAdd(x, c01), b2.MulAdd(x, c02), b3.MulAdd(x, c03)
		x = archsimd.BroadcastFloat32x16(ak[1])
		c10, c11, c12, c13 = b0.MulAdd(x, c10), b1.MulAdd(x, c11), b2.MulAdd(x, c12), b3.MulAdd(x, c13)
		x = archsimd.BroadcastFloat32x16(ak[2])
		c20, c21, c22, c23 = b0.MulAdd(x, c20), b1.MulAdd(x, c21), b2.MulAdd(x, c22), b3.MulAdd(x, c23)
		x = archsimd.BroadcastFloat32x16(ak[3])
		c30, c31, c32, c33 = b0.MulAdd(x, c30), b1.MulAdd(x, c31), b2.MulAdd(x, c32), b3.MulAdd(x, c33)
	}
	store16(c[0:], c00, c01, c02, c03)
	store16(c[n:], c10, c11, c12, c13)
	store16(c[2*n:], c20, c21, c22, c23)
	store16(c[3*n:], c30, c31, c32, c33)
}

func store16(c []float32, v0, v1, v2, v3 archsimd.Float32x16) {
	v0.Store((*[16]float32)(c[0:16]))
	v1.Store((*[16]float32)(c[16:32]))
	v2.Store((*[16]float32)(c[32:48]))
	v3.Store((*[16]float32)(c[48:64]))
}

func kern4x32(c, a, b []float32, k, n, lda int) {
	c00, c01 := load16(c[0:]), load16(c[16:])
	c10, c11 := load16(c[n:]), load16(c[n+16:])
	c20, c21 := load16(c[2*n:]), load16(c[2*n+16:])
	c30, c31 := load16(c[3*n:]), load16(c[3*n+16:])
	for kk := range k {
		ak := a[kk*lda:][:4]
		br := b[kk*n:][:32]
		b0, b1 := load16(br[0:]), load16(br[16:])
		x := archsimd.BroadcastFloat32x16(ak[0])
		c00, c01 = b0.MulAdd(x, c00), b1.MulAdd(x, c01)
		x = archsimd.BroadcastFloat32x16(ak[1])
		c10, c11 = b0.MulAdd(x, c10), b1.MulAdd(x, c11)
		x = archsimd.BroadcastFloat32x16(ak[2])
		c20, c21 = b0.MulAdd(x, c20), b1.MulAdd(x, c21)
		x = archsimd.BroadcastFloat32x16(ak[3])
		c30, c31 = b0.MulAdd(x, c30), b1.MulAdd(x, c31)
	}
	c00.Store((*[16]float32)(c[0:16]))
	c01.Store((*[16]float32)(c[16:32]))
	c10.Store((*[16]float32)(c[n : n+16]))
	c11.Store((*[16]float32)(c[n+16 : n+32]))
	c20.Store((*[16]float32)(c[2*n : 2*n+16]))
	c21.Store((*[16]float32)(c[2*n+16 : 2*n+32]))
	c30.Store((*[16]float32)(c[3*n : 3*n+16]))
	c31.Store((*[16]float32)(c[3*n+16 : 3*n+32]))
}

func kern4x16(c, a, b []float32, k, n, lda int) {
	c0, c1, c2, c3 := load16(c[0:]), load16(c[n:]), load16(c[2*n:]), load16(c[3*n:])
	for kk := range k {
		ak := a[kk*lda:][:4]
		bv := load16(b[kk*n:])
		c0 = bv.MulAdd(archsimd.BroadcastFloat32x16(ak[0]), c0)
		c1 = bv.MulAdd(archsimd.BroadcastFloat32x16(ak[1]), c1)
		c2 = bv.MulAdd(archsimd.BroadcastFloat32x16(ak[2]), c2)
		c3 = bv.MulAdd(archsimd.BroadcastFloat32x16(ak[3]), c3)
	}
	c0.Store((*[16]float32)(c[0:16]))
	c1.Store((*[16]float32)(c[n : n+16]))
	c2.Store((*[16]float32)(c[2*n : 2*n+16]))
	c3.Store((*[16]float32)(c[3*n : 3*n+16]))
}

func kern1x16(c, a, b []float32, k, n, lda int) {
	c0 := load16(c)
	for kk := range k {
		c0 = load16(b[kk*n:]).MulAdd(archsimd.BroadcastFloat32x16(a[kk*lda]), c0)
	}
	c0.Store((*[16]float32)(c[0:16]))
}

func load8(s []float32) archsimd.Float32x8 { return archsimd.LoadFloat32x8((*[8]float32)(s[:8])) }

// gemm256 is gemm with AVX2: four rows by 16 columns, then one.
func gemm256(acc, a, b []float32, m, k, n int) {
	r := 0
	for ; r+4 <= m; r += 4 {
		for j := 0; j < n; j += 16 {
			c := acc[r*n+j:]
			c00, c01 := load8(c[0:]), load8(c[8:])
			c10, c11 := load8(c[n:]), load8(c[n+8:])
			c20, c21 := load8(c[2*n:]), load8(c[2*n+8:])
			c30, c31 := load8(c[3*n:]), load8(c[3*n+8:])
			for kk := range k {
				ak := a[kk*m+r:][:4]
				br := b[kk*n+j:][:16]
				b0, b1 := load8(br[0:]), load8(br[8:])
				x := archsimd.BroadcastFloat32x8(ak[0])
				c00, c01 = b0.MulAdd(x, c00), b1.MulAdd(x, c01)
				x = archsimd.BroadcastFloat32x8(ak[1])
				c10, c11 = b0.MulAdd(x, c10), b1.MulAdd(x, c11)
				x = archsimd.BroadcastFloat32x8(ak[2])
				c20, c21 = b0.MulAdd(x, c20), b1.MulAdd(x, c21)
				x = archsimd.BroadcastFloat32x8(ak[3])
				c30, c31 = b0.MulAdd(x, c30), b1.MulAdd(x, c31)
			}
			store8(c[0:], c00, c01)
			store8(c[n:], c10, c11)
			store8(c[2*n:], c20, c21)
			store8(c[3*n:], c30, c31)
		}
	}
	// Leftover rows (a 7×7 map's 49, a 1×1 weight gradient's single row)
	// one at a time, with the inner dimension in two accumulator chains.
	for ; r < m; r++ {
		for j := 0; j < n; j += 16 {
			row1x16avx2(acc[r*n+j:], a[r:], b[j:], k, n, m)
		}
	}
}

func row1x16avx2(c, a, b []float32, k, n, lda int) {
	c0, c1 := load8(c[0:]), load8(c[8:])
	var c2, c3 archsimd.Float32x8
	kk := 0
	for ; kk+2 <= k; kk += 2 {
		x := archsimd.BroadcastFloat32x8(a[kk*lda])
		br := b[kk*n:][:16]
		c0, c1 = load8(br[0:]).MulAdd(x, c0), load8(br[8:]).MulAdd(x, c1)
		y := archsimd.BroadcastFloat32x8(a[(kk+1)*lda])
		br = b[(kk+1)*n:][:16]
		c2, c3 = load8(br[0:]).MulAdd(y, c2), load8(br[8:]).MulAdd(y, c3)
	}
	if kk < k {
		x := archsimd.BroadcastFloat32x8(a[kk*lda])
		br := b[kk*n:][:16]
		c0, c1 = load8(br[0:]).MulAdd(x, c0), load8(br[8:]).MulAdd(x, c1)
	}
	store8(c, c0.Add(c2), c1.Add(c3))
}

func store8(c []float32, v0, v1 archsimd.Float32x8) {
	v0.Store((*[8]float32)(c[0:8]))
	v1.Store((*[8]float32)(c[8:16]))
}
