//go:build !(goexperiment.simd && amd64)

package kernels

// vecWidth pads the columns of packed matrices.
const vecWidth = 16

// ISA names the instruction set the kernels use.
func ISA() string { return "portable" }

// gemm adds a·b to acc: acc is [m][n] and b [k][n] row-major, a is
// k-major with steps lda apart (a[kk*lda+r]), n a multiple of vecWidth.
func gemm(acc, a, b []float32, m, k, n, lda int) { gemmPortable(acc, a, b, 0, m, k, n, lda) }

func scatterRow(g0, g1, x0, x1, src []float32) { scatterRowPortable(g0, g1, x0, x1, src) }

func maxRow(o, r0, r1 []float32) { maxRowPortable(o, r0, r1) }
