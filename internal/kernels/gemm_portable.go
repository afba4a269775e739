//go:build !(goexperiment.simd && amd64)

package kernels

// vecWidth pads the columns of packed matrices.
const vecWidth = 16

// ISA names the instruction set the kernels use.
func ISA() string { return "portable" }

// gemm adds a·b to acc: acc is [m][n] row-major, a is k-major with steps
// lda apart (a[kk*lda+r], or a[kk*lda+rows[r]] with row offsets), b is k
// rows of n with steps ldb apart, n a multiple of vecWidth.
func gemm(acc, a []float32, rows []int, b []float32, m, k, n, lda, ldb int) {
	if m == 0 || k == 0 {
		return
	}
	checkGemm(acc, a, rows, b, m, k, n, lda, ldb)
	gemmPortable(acc, a, rows, b, m, k, n, lda, ldb)
}

func scatterRow(g0, g1, x0, x1, src []float32) { scatterRowPortable(g0, g1, x0, x1, src) }

func maxRow(o, r0, r1 []float32) { maxRowPortable(o, r0, r1) }
