package kernels

// gemmPortable is the reference order of gemm's sums, in plain Go: the
// arm64 build's kernel and the fallback for CPUs without AVX2.
func gemmPortable(acc, a, b []float32, m, k, n int) {
	for r := range m {
		c := acc[r*n:][:n]
		ar := a[r*k:][:k]
		for kk, av := range ar {
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
