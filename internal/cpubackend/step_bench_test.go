//lint:file-ignore ST1001 gomlx graph-building code reads as math with graph dot-imported

package cpubackend_test

import (
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/aerie-ml/aerie/internal/arch"
	"github.com/aerie-ml/aerie/internal/cpubackend"
	"github.com/aerie-ml/aerie/internal/model"
)

// BenchmarkTrainStep times one SGD step of a declared model on aerie's
// backend: forward, loss, gradients and update for a micro-batch of 32
// Fashion-MNIST-sized images (one ghost batch, one lane's share of the
// trainer's global batch of 64 on 2 cores), in images per wall and per
// CPU second.
//
//	GOEXPERIMENT=simd go test ./internal/cpubackend -run XXX -bench TrainStep -count 6
func BenchmarkTrainStep(b *testing.B) {
	for _, name := range []string{"cnn", "resnet-small"} {
		b.Run(name, func(b *testing.B) { benchStep(b, name) })
	}
}

func benchStep(b *testing.B, name string) {
	const batch = 32
	spec, err := arch.Builtin(name)
	if err != nil {
		b.Fatal(err)
	}
	plan, err := spec.Plan(arch.Input{H: 28, W: 28, C: 1}, 10)
	if err != nil {
		b.Fatal(err)
	}
	net := model.New(plan)
	np, nm := len(plan.Params), len(plan.Dropouts)
	exec, err := NewExec(cpubackend.Get(), func(in []*Node) []*Node {
		params, x, y, masks := in[:np], in[np], in[np+1], in[np+2:]
		logits, _ := net.TrainLogits(params, x, masks, batch)
		loss := ReduceAllMean(Neg(ReduceSum(Mul(OneHot(y, 10, dtypes.Float32), LogSoftmax(logits, -1)), 1)))
		grads := Gradient(loss, params...)
		out := make([]*Node, 0, np+1)
		for i, p := range params {
			out = append(out, Sub(p, MulScalar(grads[i], 1e-3)))
		}
		return append(out, loss)
	})
	if err != nil {
		b.Fatal(err)
	}
	defer exec.Finalize()
	rng := rand.New(rand.NewPCG(1, 2))
	args := make([]any, 0, np+2+nm)
	for i, v := range net.Init(1) {
		args = append(args, tensors.FromFlatDataAndDimensions(v, plan.Params[i].Shape...))
	}
	x := make([]float32, batch*28*28)
	for i := range x {
		x[i] = float32(rng.IntN(256))/127.5 - 1
	}
	labels := make([]int32, batch)
	for i := range labels {
		labels[i] = int32(rng.IntN(10))
	}
	args = append(args, tensors.FromFlatDataAndDimensions(x, batch, 28, 28, 1), tensors.FromFlatDataAndDimensions(labels, batch))
	for _, d := range plan.Dropouts {
		m := make([]float32, batch*int(d.Shape.Size()))
		for j := range m {
			if rng.Float64() >= d.Rate {
				m[j] = float32(1 / (1 - d.Rate))
			}
		}
		args = append(args, tensors.FromFlatDataAndDimensions(m, append([]int{batch}, d.Shape...)...))
	}
	step := func() {
		out, err := exec.Call(args...)
		if err != nil {
			b.Fatal(err)
		}
		for _, o := range out {
			o.MustFinalizeAll()
		}
	}
	step() // compile
	b.ResetTimer()
	cpu := cpuTime()
	for range b.N {
		step()
	}
	b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "img/s")
	b.ReportMetric(float64(batch*b.N)/(cpuTime()-cpu).Seconds(), "img/cpu-s")
}

// cpuTime is the process's CPU time: on a shared machine a rate per CPU
// second is steadier than one per wall second.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
