//go:build goexperiment.simd && amd64

package kernels

import (
	"simd/archsimd"
	"testing"
)

// peakSink keeps the chains' results alive.
var peakSink float32

// BenchmarkFMAPeak measures one core's FP32 peak: twelve independent FMA
// chains (enough to cover the FMA latency on two pipes) of each vector
// width the CPU has, with nothing else in the loop. bench/train.sh reports
// training FLOP rates as a fraction of the fastest. It is read off the
// machine rather than worked out from the clock: a core with AVX-512 has
// one or two 512-bit FMA pipes (Intel server cores) or two 256-bit ones
// (AMD Zen 4), and boosts past /proc/cpuinfo's MHz. The two widths are two
// functions: the chains must stay in registers, which a generic function
// over archsimd's types would not promise.
//
//	GOMAXPROCS=1 GOEXPERIMENT=simd go test ./internal/kernels -run '^$' -bench FMAPeak
func BenchmarkFMAPeak(b *testing.B) {
	const steps = 1000
	var init [14][16]float32 // distinct starts: equal chains would be merged into one
	for i := range init {
		for j := range init[i] {
			init[i][j] = float32(i*16+j) * 1e-3
		}
	}
	report := func(b *testing.B, lanes int) {
		flops := float64(b.N) * steps * 12 * float64(lanes) * 2
		b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	}
	if !hasAVX2 {
		b.Skip("no AVX2: the portable kernels have no SIMD peak to measure")
	}
	b.Run("avx2", func(b *testing.B) { peakChains256(b, &init, steps); report(b, 8) })
	if hasAVX512 {
		b.Run("avx512", func(b *testing.B) { peakChains512(b, &init, steps); report(b, 16) })
	}
}

func peakChains512(b *testing.B, init *[14][16]float32, steps int) {
	ld := func(i int) archsimd.Float32x16 { return archsimd.LoadFloat32x16(&init[i]) }
	x, y := ld(12), ld(13)
	c0, c1, c2, c3 := ld(0), ld(1), ld(2), ld(3)
	c4, c5, c6, c7 := ld(4), ld(5), ld(6), ld(7)
	c8, c9, c10, c11 := ld(8), ld(9), ld(10), ld(11)
	for range b.N {
		for range steps {
			c0, c1, c2, c3 = x.MulAdd(y, c0), x.MulAdd(y, c1), x.MulAdd(y, c2), x.MulAdd(y, c3)
			c4, c5, c6, c7 = x.MulAdd(y, c4), x.MulAdd(y, c5), x.MulAdd(y, c6), x.MulAdd(y, c7)
			c8, c9, c10, c11 = x.MulAdd(y, c8), x.MulAdd(y, c9), x.MulAdd(y, c10), x.MulAdd(y, c11)
		}
	}
	var out [16]float32
	c0.Add(c1).Add(c2.Add(c3)).Add(c4.Add(c5).Add(c6.Add(c7))).Add(c8.Add(c9).Add(c10.Add(c11))).Store(&out)
	peakSink = out[0]
}

func peakChains256(b *testing.B, init *[14][16]float32, steps int) {
	ld := func(i int) archsimd.Float32x8 { return archsimd.LoadFloat32x8((*[8]float32)(init[i][:8])) }
	x, y := ld(12), ld(13)
	c0, c1, c2, c3 := ld(0), ld(1), ld(2), ld(3)
	c4, c5, c6, c7 := ld(4), ld(5), ld(6), ld(7)
	c8, c9, c10, c11 := ld(8), ld(9), ld(10), ld(11)
	for range b.N {
		for range steps {
			c0, c1, c2, c3 = x.MulAdd(y, c0), x.MulAdd(y, c1), x.MulAdd(y, c2), x.MulAdd(y, c3)
			c4, c5, c6, c7 = x.MulAdd(y, c4), x.MulAdd(y, c5), x.MulAdd(y, c6), x.MulAdd(y, c7)
			c8, c9, c10, c11 = x.MulAdd(y, c8), x.MulAdd(y, c9), x.MulAdd(y, c10), x.MulAdd(y, c11)
		}
	}
	var out [8]float32
	c0.Add(c1).Add(c2.Add(c3)).Add(c4.Add(c5).Add(c6.Add(c7))).Add(c8.Add(c9).Add(c10.Add(c11))).Store(&out)
	peakSink = out[0]
}
