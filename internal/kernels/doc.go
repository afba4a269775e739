// Package kernels holds aerie's float32 CPU kernels, which
// internal/cpubackend runs in place of gomlx's pure-Go backend ops:
// convolutions of any layout, stride, padding, dilation and groups (Conv),
// max and sum pooling and the max-pool gradient (Pool), batch norm and its
// gradient (BatchNorm), selections (Select: ReLU and its gradient),
// transposes and per-channel bias sums. The trainer applies Adam's update
// with Adam.
//
// A convolution is a matrix product. For most 2-d convolutions it reads a
// padded, phase-split copy of the input in place (implicit.go); the rest
// gather an im2col block first (conv.go). The product's inner kernels
// (gemm_simd.go) are AVX-512 or AVX2 through Go's simd experiment
// (GOEXPERIMENT=simd), in tiles of four rows that fit the 15 vector
// registers Go allocates; gemm_portable.go serves arm64 and other CPUs.
// The elementwise kernels' spans are AVX-512 (elementwise_simd.go) or
// portable (elementwise_portable.go). With GOMAXPROCS=1 everything runs on
// the calling goroutine.
//
// Every kernel is tested against a direct float64 definition on random
// shapes, odd sizes included (conv_test.go, pool_test.go,
// batchnorm_test.go, adam_test.go), batch norm's gradient against finite
// differences, and every SIMD kernel against the portable one.
package kernels
