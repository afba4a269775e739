package kernels

// rowAt is row r's offset in a: rows[r], or r when rows is nil.
func rowAt(rows []int, r int) int {
	if rows == nil {
		return r
	}
	return rows[r]
}

// gemmPortable is gemm in plain Go: the arm64 build's kernel and the
// fallback for CPUs without AVX2.
func gemmPortable(acc, a []float32, rows []int, b []float32, m, k, n, lda, ldb int) {
	for r := range m {
		c := acc[r*n:][:n]
		ar := rowAt(rows, r)
		for kk := range k {
			av := a[kk*lda+ar]
			if av == 0 {
				continue
			}
			br := b[kk*ldb:][:n]
			for j, bv := range br {
				c[j] += av * bv
			}
		}
	}
}

// checkGemm panics unless every element gemm would read and write is in
// its slice: the SIMD kernels step raw pointers and check nothing.
func checkGemm(acc, a []float32, rows []int, b []float32, m, k, n, lda, ldb int) {
	hi := m - 1
	if rows != nil {
		hi = 0
		for _, o := range rows[:m] {
			if o < 0 {
				panic("kernels: gemm row offset below zero")
			}
			hi = max(hi, o)
		}
	}
	_, _, _ = acc[m*n-1], a[(k-1)*lda+hi], b[(k-1)*ldb+n-1]
}
