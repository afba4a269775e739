//go:build !(goexperiment.simd && amd64)

package kernels

func sumSpan(x []float32) float32                 { return sumSpanPortable(x) }
func sumSqDevSpan(x []float32, m float32) float32 { return sumSqDevSpanPortable(x, m) }
func affineSpan(y, x []float32, a, c float32)     { affineSpanPortable(y, x, a, c) }
func gradSumsSpan(dy, x []float32, m float32) (float32, float32) {
	return gradSumsSpanPortable(dy, x, m)
}
func gradAffineSpan(dx, dy, x []float32, a, b, c float32) { gradAffineSpanPortable(dx, dy, x, a, b, c) }

func selectSpan(out []float32, cond []uint8, onTrue, onFalse []float32) {
	selectPortable(out, cond, onTrue, onFalse)
}

func greaterSpan(out []uint8, x, y []float32) { greaterPortable(out, x, y) }

func adamSpan(p, m, v, g []float32, c adamCoefficients) { adamSpanPortable(p, m, v, g, c) }

func transpose16(dst []float32, rows *[16]int, src []float32, stride int) {
	transpose16Portable(dst, rows, src, stride)
}

func deinterleave(even, odd, src []float32) { deinterleavePortable(even, odd, src) }
