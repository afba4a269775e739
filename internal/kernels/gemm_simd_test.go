//go:build goexperiment.simd && amd64

package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestGemmKernels checks every kernel this CPU can run, not only the one
// gemm picks, against the portable one, on odd row and inner counts.
func TestGemmKernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	kernels := map[string]func(acc, a, b []float32, m, k, n int){}
	if hasAVX512 {
		kernels["avx512"] = gemm512
	}
	if hasAVX2 {
		kernels["avx2"] = gemm256
	}
	for name, kern := range kernels {
		for _, m := range []int{1, 3, 4, 7, 64} {
			for _, n := range []int{16, 32, 48, 64, 80, 144} {
				k := 1 + rng.IntN(40)
				t.Run(fmt.Sprintf("%s/%dx%dx%d", name, m, k, n), func(t *testing.T) {
					a, b, acc := randoms(rng, m*k), randoms(rng, k*n), randoms(rng, m*n)
					want := append([]float32(nil), acc...)
					gemmPortable(want, a, b, 0, m, k, n, m)
					kern(acc, a, b, m, k, n)
					near(t, "gemm", acc, want)
				})
			}
		}
	}
}
