//go:build goexperiment.simd && amd64

package kernels

import (
	"simd/archsimd"
	"unsafe"
)

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

// gemm adds a·b to acc: acc is [m][n] row-major, a is k-major with steps
// lda apart (a[kk*lda+r], so the four rows a step reads are adjacent; or
// a[kk*lda+rows[r]] with row offsets), b is k rows of n with steps ldb
// apart, n a multiple of vecWidth.
func gemm(acc, a []float32, rows []int, b []float32, m, k, n, lda, ldb int) {
	if m == 0 || k == 0 {
		return
	}
	checkGemm(acc, a, rows, b, m, k, n, lda, ldb)
	switch {
	case hasAVX512:
		gemm512(acc, a, rows, b, m, k, n, lda, ldb)
	case hasAVX2:
		gemm256(acc, a, rows, b, m, k, n, lda, ldb)
	default:
		gemmPortable(acc, a, rows, b, m, k, n, lda, ldb)
	}
}

// rowBytes are the byte offsets in a of rows r to r+3.
func rowBytes(rows []int, r int) *[4]uintptr {
	return &[4]uintptr{uintptr(rowAt(rows, r) * 4), uintptr(rowAt(rows, r+1) * 4), uintptr(rowAt(rows, r+2) * 4), uintptr(rowAt(rows, r+3) * 4)}
}

// gemm512 works in tiles of four rows by 32 columns: eight accumulators,
// two vectors of b and a broadcast fit the 15 vector registers Go's
// register allocator uses (Z0–Z14), where four rows by 64 columns spilled
// its accumulators to the stack on every step (2–3× slower).
func gemm512(acc, a []float32, rows []int, b []float32, m, k, n, lda, ldb int) {
	pa := unsafe.Pointer(&a[0])
	r := 0
	for ; r+4 <= m; r += 4 {
		j := 0
		if rows == nil {
			for ; j+32 <= n; j += 32 {
				kern4x32(&acc[r*n+j], &a[r], &b[j], k, n, lda, ldb)
			}
			if j < n {
				kern4x16(&acc[r*n+j], &a[r], &b[j], k, n, lda, ldb)
			}
			continue
		}
		o := rowBytes(rows, r)
		for ; j+32 <= n; j += 32 {
			kern4x32rows(&acc[r*n+j], pa, o, &b[j], k, n, lda, ldb)
		}
		if j < n {
			kern4x16rows(&acc[r*n+j], pa, o, &b[j], k, n, lda, ldb)
		}
	}
	// Leftover rows, one at a time, with four accumulator chains.
	for ; r < m; r++ {
		ar := &a[rowAt(rows, r)]
		j := 0
		for ; j+64 <= n; j += 64 {
			kern1x64(&acc[r*n+j], ar, &b[j], k, n, lda, ldb)
		}
		for ; j < n; j += 16 {
			kern1x16(&acc[r*n+j], ar, &b[j], k, n, lda, ldb)
		}
	}
}

func load16(s []float32) archsimd.Float32x16 { return archsimd.LoadFloat32x16((*[16]float32)(s[:16])) }

// vec16 is the 16 floats at p plus off bytes.
func vec16(p unsafe.Pointer, off uintptr) archsimd.Float32x16 {
	return archsimd.LoadFloat32x16((*[16]float32)(unsafe.Add(p, off)))
}

func put16(v archsimd.Float32x16, p unsafe.Pointer, off uintptr) {
	v.Store((*[16]float32)(unsafe.Add(p, off)))
}

// addTo16 adds v to the 16 floats at p plus off bytes.
func addTo16(v archsimd.Float32x16, p unsafe.Pointer, off uintptr) {
	put16(vec16(p, off).Add(v), p, off)
}

// bcast16 is the float at p plus off bytes in every lane.
func bcast16(p unsafe.Pointer, off uintptr) archsimd.Float32x16 {
	return archsimd.BroadcastFloat32x16(*(*float32)(unsafe.Add(p, off)))
}

// The kernels below add a tile of a·b to c. c is row-major with rows n
// floats apart, a k-major with steps lda floats apart, b row-major with
// rows ldb apart; gemm has checked the bounds. The contiguous four-row
// kernels' offsets are constants: as four registers (the rows variants)
// they measured ~20% slower, the loop running short of scalar registers.
// MulAdd's receiver is the register the FMA overwrites (VFMADD213PS), so
// it is the broadcast, used twice, not b's vector, used four times: one
// register copy per row instead of three (+4–10% on an Intel core, where
// the loop is bound by the uops it issues). The rows variants sum from
// zero and add the sums to c after the loop: holding c's eight addresses
// through it, with the four offsets, spilled scalar registers on every
// step (weight gradients +9–40%).

func kern4x32(c, a, b *float32, k, n, lda, ldb int) {
	pc, pa, pb := unsafe.Pointer(c), unsafe.Pointer(a), unsafe.Pointer(b)
	rs, sa, sb := uintptr(n*4), uintptr(lda*4), uintptr(ldb*4)
	c00, c01 := vec16(pc, 0), vec16(pc, 64)
	c10, c11 := vec16(pc, rs), vec16(pc, rs+64)
	c20, c21 := vec16(pc, 2*rs), vec16(pc, 2*rs+64)
	c30, c31 := vec16(pc, 3*rs), vec16(pc, 3*rs+64)
	for range k {
		b0, b1 := vec16(pb, 0), vec16(pb, 64)
		x := bcast16(pa, 0)
		c00, c01 = x.MulAdd(b0, c00), x.MulAdd(b1, c01)
		x = bcast16(pa, 4)
		c10, c11 = x.MulAdd(b0, c10), x.MulAdd(b1, c11)
		x = bcast16(pa, 8)
		c20, c21 = x.MulAdd(b0, c20), x.MulAdd(b1, c21)
		x = bcast16(pa, 12)
		c30, c31 = x.MulAdd(b0, c30), x.MulAdd(b1, c31)
		pa, pb = unsafe.Add(pa, sa), unsafe.Add(pb, sb)
	}
	put16(c00, pc, 0)
	put16(c01, pc, 64)
	put16(c10, pc, rs)
	put16(c11, pc, rs+64)
	put16(c20, pc, 2*rs)
	put16(c21, pc, 2*rs+64)
	put16(c30, pc, 3*rs)
	put16(c31, pc, 3*rs+64)
}

// kern4x32rows is kern4x32 with row i of a at byte offset o[i].
func kern4x32rows(c *float32, pa unsafe.Pointer, o *[4]uintptr, b *float32, k, n, lda, ldb int) {
	pc, pb := unsafe.Pointer(c), unsafe.Pointer(b)
	rs, sa, sb := uintptr(n*4), uintptr(lda*4), uintptr(ldb*4)
	o0, o1, o2, o3 := o[0], o[1], o[2], o[3]
	var c00, c01, c10, c11, c20, c21, c30, c31 archsimd.Float32x16
	for range k {
		b0, b1 := vec16(pb, 0), vec16(pb, 64)
		x := bcast16(pa, o0)
		c00, c01 = x.MulAdd(b0, c00), x.MulAdd(b1, c01)
		x = bcast16(pa, o1)
		c10, c11 = x.MulAdd(b0, c10), x.MulAdd(b1, c11)
		x = bcast16(pa, o2)
		c20, c21 = x.MulAdd(b0, c20), x.MulAdd(b1, c21)
		x = bcast16(pa, o3)
		c30, c31 = x.MulAdd(b0, c30), x.MulAdd(b1, c31)
		pa, pb = unsafe.Add(pa, sa), unsafe.Add(pb, sb)
	}
	addTo16(c00, pc, 0)
	addTo16(c01, pc, 64)
	addTo16(c10, pc, rs)
	addTo16(c11, pc, rs+64)
	addTo16(c20, pc, 2*rs)
	addTo16(c21, pc, 2*rs+64)
	addTo16(c30, pc, 3*rs)
	addTo16(c31, pc, 3*rs+64)
}

func kern4x16(c, a, b *float32, k, n, lda, ldb int) {
	pc, pa, pb := unsafe.Pointer(c), unsafe.Pointer(a), unsafe.Pointer(b)
	rs, sa, sb := uintptr(n*4), uintptr(lda*4), uintptr(ldb*4)
	c0, c1, c2, c3 := vec16(pc, 0), vec16(pc, rs), vec16(pc, 2*rs), vec16(pc, 3*rs)
	for range k {
		bv := vec16(pb, 0)
		c0 = bcast16(pa, 0).MulAdd(bv, c0)
		c1 = bcast16(pa, 4).MulAdd(bv, c1)
		c2 = bcast16(pa, 8).MulAdd(bv, c2)
		c3 = bcast16(pa, 12).MulAdd(bv, c3)
		pa, pb = unsafe.Add(pa, sa), unsafe.Add(pb, sb)
	}
	put16(c0, pc, 0)
	put16(c1, pc, rs)
	put16(c2, pc, 2*rs)
	put16(c3, pc, 3*rs)
}

// kern4x16rows is kern4x16 with row i of a at byte offset o[i].
func kern4x16rows(c *float32, pa unsafe.Pointer, o *[4]uintptr, b *float32, k, n, lda, ldb int) {
	pc, pb := unsafe.Pointer(c), unsafe.Pointer(b)
	rs, sa, sb := uintptr(n*4), uintptr(lda*4), uintptr(ldb*4)
	o0, o1, o2, o3 := o[0], o[1], o[2], o[3]
	var c0, c1, c2, c3 archsimd.Float32x16
	for range k {
		bv := vec16(pb, 0)
		c0 = bcast16(pa, o0).MulAdd(bv, c0)
		c1 = bcast16(pa, o1).MulAdd(bv, c1)
		c2 = bcast16(pa, o2).MulAdd(bv, c2)
		c3 = bcast16(pa, o3).MulAdd(bv, c3)
		pa, pb = unsafe.Add(pa, sa), unsafe.Add(pb, sb)
	}
	addTo16(c0, pc, 0)
	addTo16(c1, pc, rs)
	addTo16(c2, pc, 2*rs)
	addTo16(c3, pc, 3*rs)
}

func kern1x64(c, a, b *float32, k, n, lda, ldb int) {
	pc, pa, pb := unsafe.Pointer(c), unsafe.Pointer(a), unsafe.Pointer(b)
	sa, sb := uintptr(lda*4), uintptr(ldb*4)
	c0, c1, c2, c3 := vec16(pc, 0), vec16(pc, 64), vec16(pc, 128), vec16(pc, 192)
	for range k {
		x := bcast16(pa, 0)
		c0, c1 = vec16(pb, 0).MulAdd(x, c0), vec16(pb, 64).MulAdd(x, c1)
		c2, c3 = vec16(pb, 128).MulAdd(x, c2), vec16(pb, 192).MulAdd(x, c3)
		pa, pb = unsafe.Add(pa, sa), unsafe.Add(pb, sb)
	}
	put16(c0, pc, 0)
	put16(c1, pc, 64)
	put16(c2, pc, 128)
	put16(c3, pc, 192)
}

// kern1x16 splits k into four accumulator chains: one chain waits on the
// FMA latency at every step (a 3×3 weight gradient's ninth row).
func kern1x16(c, a, b *float32, k, n, lda, ldb int) {
	pc, pa, pb := unsafe.Pointer(c), unsafe.Pointer(a), unsafe.Pointer(b)
	sa, sb := uintptr(lda*4), uintptr(ldb*4)
	c0 := vec16(pc, 0)
	var c1, c2, c3 archsimd.Float32x16
	kk := 0
	for ; kk+4 <= k; kk += 4 {
		c0 = vec16(pb, 0).MulAdd(bcast16(pa, 0), c0)
		c1 = vec16(pb, sb).MulAdd(bcast16(pa, sa), c1)
		c2 = vec16(pb, 2*sb).MulAdd(bcast16(pa, 2*sa), c2)
		c3 = vec16(pb, 3*sb).MulAdd(bcast16(pa, 3*sa), c3)
		pa, pb = unsafe.Add(pa, 4*sa), unsafe.Add(pb, 4*sb)
	}
	for ; kk < k; kk++ {
		c0 = vec16(pb, 0).MulAdd(bcast16(pa, 0), c0)
		pa, pb = unsafe.Add(pa, sa), unsafe.Add(pb, sb)
	}
	put16(c0.Add(c1).Add(c2.Add(c3)), pc, 0)
}

// gemm256 is gemm with AVX2: four rows by 16 columns (eight accumulators),
// then one row at a time.
func gemm256(acc, a []float32, rows []int, b []float32, m, k, n, lda, ldb int) {
	pa := unsafe.Pointer(&a[0])
	r := 0
	for ; r+4 <= m; r += 4 {
		if rows == nil {
			for j := 0; j < n; j += 16 {
				kern4x16avx2(&acc[r*n+j], &a[r], &b[j], k, n, lda, ldb)
			}
			continue
		}
		o := rowBytes(rows, r)
		for j := 0; j < n; j += 16 {
			kern4x16avx2rows(&acc[r*n+j], pa, o, &b[j], k, n, lda, ldb)
		}
	}
	// Leftover rows (a 7×7 map's 49th, a 1×1 weight gradient's single row)
	// with the inner dimension in two accumulator chains.
	for ; r < m; r++ {
		ar := &a[rowAt(rows, r)]
		for j := 0; j < n; j += 16 {
			kern1x16avx2(&acc[r*n+j], ar, &b[j], k, n, lda, ldb)
		}
	}
}

func vec8(p unsafe.Pointer, off uintptr) archsimd.Float32x8 {
	return archsimd.LoadFloat32x8((*[8]float32)(unsafe.Add(p, off)))
}

func put8(v archsimd.Float32x8, p unsafe.Pointer, off uintptr) {
	v.Store((*[8]float32)(unsafe.Add(p, off)))
}

func bcast8(p unsafe.Pointer, off uintptr) archsimd.Float32x8 {
	return archsimd.BroadcastFloat32x8(*(*float32)(unsafe.Add(p, off)))
}

func kern4x16avx2(c, a, b *float32, k, n, lda, ldb int) {
	pc, pa, pb := unsafe.Pointer(c), unsafe.Pointer(a), unsafe.Pointer(b)
	rs, sa, sb := uintptr(n*4), uintptr(lda*4), uintptr(ldb*4)
	c00, c01 := vec8(pc, 0), vec8(pc, 32)
	c10, c11 := vec8(pc, rs), vec8(pc, rs+32)
	c20, c21 := vec8(pc, 2*rs), vec8(pc, 2*rs+32)
	c30, c31 := vec8(pc, 3*rs), vec8(pc, 3*rs+32)
	for range k {
		b0, b1 := vec8(pb, 0), vec8(pb, 32)
		x := bcast8(pa, 0)
		c00, c01 = x.MulAdd(b0, c00), x.MulAdd(b1, c01)
		x = bcast8(pa, 4)
		c10, c11 = x.MulAdd(b0, c10), x.MulAdd(b1, c11)
		x = bcast8(pa, 8)
		c20, c21 = x.MulAdd(b0, c20), x.MulAdd(b1, c21)
		x = bcast8(pa, 12)
		c30, c31 = x.MulAdd(b0, c30), x.MulAdd(b1, c31)
		pa, pb = unsafe.Add(pa, sa), unsafe.Add(pb, sb)
	}
	put8(c00, pc, 0)
	put8(c01, pc, 32)
	put8(c10, pc, rs)
	put8(c11, pc, rs+32)
	put8(c20, pc, 2*rs)
	put8(c21, pc, 2*rs+32)
	put8(c30, pc, 3*rs)
	put8(c31, pc, 3*rs+32)
}

// kern4x16avx2rows is kern4x16avx2 with row i of a at byte offset o[i].
func kern4x16avx2rows(c *float32, pa unsafe.Pointer, o *[4]uintptr, b *float32, k, n, lda, ldb int) {
	pc, pb := unsafe.Pointer(c), unsafe.Pointer(b)
	rs, sa, sb := uintptr(n*4), uintptr(lda*4), uintptr(ldb*4)
	o0, o1, o2, o3 := o[0], o[1], o[2], o[3]
	c00, c01 := vec8(pc, 0), vec8(pc, 32)
	c10, c11 := vec8(pc, rs), vec8(pc, rs+32)
	c20, c21 := vec8(pc, 2*rs), vec8(pc, 2*rs+32)
	c30, c31 := vec8(pc, 3*rs), vec8(pc, 3*rs+32)
	for range k {
		b0, b1 := vec8(pb, 0), vec8(pb, 32)
		x := bcast8(pa, o0)
		c00, c01 = x.MulAdd(b0, c00), x.MulAdd(b1, c01)
		x = bcast8(pa, o1)
		c10, c11 = x.MulAdd(b0, c10), x.MulAdd(b1, c11)
		x = bcast8(pa, o2)
		c20, c21 = x.MulAdd(b0, c20), x.MulAdd(b1, c21)
		x = bcast8(pa, o3)
		c30, c31 = x.MulAdd(b0, c30), x.MulAdd(b1, c31)
		pa, pb = unsafe.Add(pa, sa), unsafe.Add(pb, sb)
	}
	put8(c00, pc, 0)
	put8(c01, pc, 32)
	put8(c10, pc, rs)
	put8(c11, pc, rs+32)
	put8(c20, pc, 2*rs)
	put8(c21, pc, 2*rs+32)
	put8(c30, pc, 3*rs)
	put8(c31, pc, 3*rs+32)
}

func kern1x16avx2(c, a, b *float32, k, n, lda, ldb int) {
	pc, pa, pb := unsafe.Pointer(c), unsafe.Pointer(a), unsafe.Pointer(b)
	sa, sb := uintptr(lda*4), uintptr(ldb*4)
	c0, c1 := vec8(pc, 0), vec8(pc, 32)
	var c2, c3 archsimd.Float32x8
	kk := 0
	for ; kk+2 <= k; kk += 2 {
		x, y := bcast8(pa, 0), bcast8(pa, sa)
		c0, c1 = vec8(pb, 0).MulAdd(x, c0), vec8(pb, 32).MulAdd(x, c1)
		c2, c3 = vec8(pb, sb).MulAdd(y, c2), vec8(pb, sb+32).MulAdd(y, c3)
		pa, pb = unsafe.Add(pa, 2*sa), unsafe.Add(pb, 2*sb)
	}
	if kk < k {
		x := bcast8(pa, 0)
		c0, c1 = vec8(pb, 0).MulAdd(x, c0), vec8(pb, 32).MulAdd(x, c1)
	}
	put8(c0.Add(c2), pc, 0)
	put8(c1.Add(c3), pc, 32)
}
