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
	kernels := map[string]func(acc, a []float32, rows []int, b []float32, m, k, n, lda, ldb int){}
	if hasAVX512 {
		kernels["avx512"] = gemm512
	}
	if hasAVX2 {
		kernels["avx2"] = gemm256
	}
	for name, kern := range kernels {
		for _, m := range []int{1, 3, 4, 7, 64} {
			for _, n := range []int{16, 32, 48, 64, 80, 144} {
				k, lda, ldb := 1+rng.IntN(40), m+rng.IntN(3), n+rng.IntN(2)*(1+rng.IntN(20))
				var rows []int // nil: rows 0 to m-1
				if rng.IntN(2) == 0 {
					rows = rng.Perm(lda)[:m]
				}
				t.Run(fmt.Sprintf("%s/%dx%dx%d/lda%d/ldb%d/rows%v", name, m, k, n, lda, ldb, rows != nil), func(t *testing.T) {
					a, b, acc := randoms(rng, (k-1)*lda+lda), randoms(rng, (k-1)*ldb+n), randoms(rng, m*n)
					want := append([]float32(nil), acc...)
					gemmPortable(want, a, rows, b, m, k, n, lda, ldb)
					kern(acc, a, rows, b, m, k, n, lda, ldb)
					near(t, "gemm", acc, want)
				})
			}
		}
	}
}

// BenchmarkGemm reports the gemm kernel's rate on resnet-small's tile
// shapes (64 rows, k = 3·3·cin, n = cout) in GFLOP per CPU second.
//
//	GOEXPERIMENT=simd go test ./internal/kernels -run XXX -bench Gemm
func BenchmarkGemm(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, sh := range [][3]int{{64, 288, 32}, {64, 512, 64}, {64, 512, 128}, {49, 512, 128}} {
		m, k, n := sh[0], sh[1], sh[2]
		b.Run(fmt.Sprintf("%dx%dx%d", m, k, n), func(b *testing.B) {
			a, bm, acc := randoms(rng, m*k), randoms(rng, k*n), make([]float32, m*n)
			cpu := cpuTime()
			for b.Loop() {
				gemm(acc, a, nil, bm, m, k, n, m, n)
			}
			b.ReportMetric(2*float64(m*k*n)*float64(b.N)/(cpuTime()-cpu).Seconds()/1e9, "GFLOP/cpu-s")
		})
	}
}
