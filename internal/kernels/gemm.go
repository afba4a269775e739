package kernels

// gemmPortable is gemm in plain Go: the arm64 build's kernel and the
// fallback for CPUs without AVX2. a is k-major: a[kk*lda+r] for rows r of
// acc, from row r0.
func gemmPortable(acc, a, b []float32, r0, m, k, n, lda int) {
	for r := r0; r < m; r++ {
		c := acc[r*n:][:n]
		for kk := range k {
			av := a[kk*lda+r]
			if av == 0 {
				continue
			}
			br := b[kk*n:][:n]
			for j, bv := range br {
				c[j] += av * bv
			}
		}
	}
}
