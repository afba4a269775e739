package kernels

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's CPU time: on a shared machine a rate per CPU
// second is steadier than one per wall second.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cnnConvs are the convolutions of one cnn training step at batch 64 in
// internal/model's channel-first layout, [C, batch, H, W], as gomlx
// builds them: both forward passes, conv2's input gradient and both
// weight gradients.
func cnnConvs() map[string]ConvSpec {
	cf := func(in, kernel, out []int, ia, ka, oa [4]int, pad int) ConvSpec {
		return ConvSpec{In: in, Kernel: kernel, Out: out,
			InBatch: ia[0], InChannels: ia[1], InSpatial: []int{ia[2], ia[3]},
			KernelIn: ka[0], KernelOut: ka[1], KernelSpatial: []int{ka[2], ka[3]},
			OutBatch: oa[0], OutChannels: oa[1], OutSpatial: []int{oa[2], oa[3]},
			Paddings: [][2]int{{pad, pad}, {pad, pad}}, Groups: 1}
	}
	fwd := [4]int{1, 0, 2, 3}
	hwio := [4]int{2, 3, 0, 1}
	return map[string]ConvSpec{
		"conv1":    cf([]int{1, 64, 28, 28}, []int{3, 3, 1, 32}, []int{32, 64, 28, 28}, fwd, hwio, fwd, 1),
		"conv2":    cf([]int{32, 64, 14, 14}, []int{3, 3, 32, 64}, []int{64, 64, 14, 14}, fwd, hwio, fwd, 1),
		"conv2.dx": cf([]int{64, 64, 14, 14}, []int{3, 3, 32, 64}, []int{32, 64, 14, 14}, fwd, [4]int{3, 2, 0, 1}, fwd, 1),
		// Weight gradients: the batch is the contracted "channel" axis.
		"conv1.dw": cf([]int{1, 64, 28, 28}, []int{32, 64, 28, 28}, []int{3, 3, 1, 32}, [4]int{0, 1, 2, 3}, [4]int{1, 0, 2, 3}, [4]int{2, 3, 0, 1}, 1),
		"conv2.dw": cf([]int{32, 64, 14, 14}, []int{64, 64, 14, 14}, []int{3, 3, 32, 64}, [4]int{0, 1, 2, 3}, [4]int{1, 0, 2, 3}, [4]int{2, 3, 0, 1}, 1),
	}
}

// resnetConvs are the 3×3 block convolutions of resnet-small
// (models/resnet-small.yaml) at one lane's 32 images, in the same layout:
// per stage, the forward pass, the input gradient and the weight gradient
// of its unstrided conv, and the strided conv into stages 2 and 3 with
// its input gradient (a dilated input) and weight gradient.
func resnetConvs() map[string]ConvSpec {
	const batch = 32
	fwd, hwio, hwoi := [4]int{1, 0, 2, 3}, [4]int{2, 3, 0, 1}, [4]int{3, 2, 0, 1}
	cf := func(in, kernel, out []int, ia, ka, oa [4]int, stride, dil int, pad [2]int) ConvSpec {
		return ConvSpec{In: in, Kernel: kernel, Out: out,
			InBatch: ia[0], InChannels: ia[1], InSpatial: []int{ia[2], ia[3]},
			KernelIn: ka[0], KernelOut: ka[1], KernelSpatial: []int{ka[2], ka[3]},
			OutBatch: oa[0], OutChannels: oa[1], OutSpatial: []int{oa[2], oa[3]},
			Strides: []int{stride, stride}, InputDilations: []int{dil, dil},
			Paddings: [][2]int{pad, pad}, Groups: 1}
	}
	convs := map[string]ConvSpec{}
	for i, st := range []struct{ c, hw int }{{32, 28}, {64, 14}, {128, 7}} {
		name := fmt.Sprintf("stage%d", i+1)
		x := []int{st.c, batch, st.hw, st.hw}
		w := []int{3, 3, st.c, st.c}
		convs[name] = cf(x, w, x, fwd, hwio, fwd, 1, 1, [2]int{1, 1})
		convs[name+".dx"] = cf(x, w, x, fwd, hwoi, fwd, 1, 1, [2]int{1, 1})
		convs[name+".dw"] = cf(x, x, w, [4]int{0, 1, 2, 3}, [4]int{1, 0, 2, 3}, hwio, 1, 1, [2]int{1, 1})
		if i == 0 {
			continue
		}
		// The strided conv from the stage before: 2× the spatial size, half the channels.
		in := []int{st.c / 2, batch, 2 * st.hw, 2 * st.hw}
		ws := []int{3, 3, st.c / 2, st.c}
		convs[name+"s"] = cf(in, ws, x, fwd, hwio, fwd, 2, 1, [2]int{1, 1})
		// Its input gradient reads the output gradient dilated by the stride.
		convs[name+"s.dx"] = cf(x, ws, in, fwd, hwoi, fwd, 1, 2, [2]int{1, 2})
	}
	return convs
}

// BenchmarkConv reports each cnn and resnet-small convolution's rate in
// GFLOP per CPU second.
//
//	GOEXPERIMENT=simd go test ./internal/kernels -run XXX -bench Conv/
func BenchmarkConv(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	convs := map[string]ConvSpec{}
	for name, sp := range cnnConvs() {
		convs["cnn/"+name] = sp
	}
	for name, sp := range resnetConvs() {
		convs["resnet-small/"+name] = sp
	}
	for _, name := range slices.Sorted(maps.Keys(convs)) {
		sp := convs[name]
		b.Run(name, func(b *testing.B) {
			c, err := NewConv(sp)
			if err != nil {
				b.Fatal(err)
			}
			in, w, out := randoms(rng, size(sp.In)), randoms(rng, size(sp.Kernel)), make([]float32, size(sp.Out))
			// An input dilation's zeros are not multiplied.
			flops := 2 * float64(size(sp.Out)) * float64(c.k) / float64(c.idil[0]*c.idil[1])
			cpu := cpuTime()
			for b.Loop() {
				c.Run(out, in, w)
			}
			b.ReportMetric(flops*float64(b.N)/(cpuTime()-cpu).Seconds()/1e9, "GFLOP/cpu-s")
		})
	}
}

// BenchmarkPoolCNN times the cnn's two 2×2 max-pools at batch 32 in the
// channel-first layout, forward and gradient, in ns per window.
//
//	GOEXPERIMENT=simd go test ./internal/kernels -run XXX -bench PoolCNN
func BenchmarkPoolCNN(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	for name, dims := range map[string][]int{"pool1": {32, 32, 28, 28}, "pool2": {64, 32, 14, 14}} {
		p, err := NewPool(PoolMax, dims, []int{1, 1, 2, 2}, []int{1, 1, 2, 2}, nil)
		if err != nil {
			b.Fatal(err)
		}
		x, src := randoms(rng, size(dims)), randoms(rng, size(p.OutDims()))
		out, grad := make([]float32, len(src)), make([]float32, len(x))
		b.Run(name+"/forward", func(b *testing.B) {
			for b.Loop() {
				p.Forward(out, x)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(out)), "ns/window")
		})
		b.Run(name+"/scatter", func(b *testing.B) {
			for b.Loop() {
				p.ScatterMax(grad, x, src)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(out)), "ns/window")
		})
	}
}

// BenchmarkTransposeCNN times the cnn's large transposes at batch 32: its
// dropout masks to channel-first and its flattening, in ns per element.
//
//	GOEXPERIMENT=simd go test ./internal/kernels -run XXX -bench TransposeCNN
func BenchmarkTransposeCNN(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	for name, c := range map[string][2][]int{
		"mask1":   {{32, 14, 14, 32}, {3, 0, 1, 2}},
		"mask2":   {{32, 7, 7, 64}, {3, 0, 1, 2}},
		"flatten": {{64, 32, 7, 7}, {1, 2, 3, 0}},
	} {
		tr, err := NewTranspose(c[0], c[1])
		if err != nil {
			b.Fatal(err)
		}
		in := randoms(rng, size(c[0]))
		out := make([]float32, len(in))
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				tr.Run(out, in)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(in)), "ns/elem")
		})
	}
}
