package train

import (
	"context"
	"syscall"
	"testing"
	"time"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCNNStep measures the cnn's training throughput on synthetic
// data, at batch 64 (one process) and at 32 (one rank's share of batch
// 64 in the 2×1 layout, without the all-reduce): img/s (wall) and
// img/cpu-s, images per CPU second, which is steadier than wall time on a
// shared machine. The CPU time includes building the trainer.
//
//	GOEXPERIMENT=simd go test ./trainer/internal/train -run XXX -bench CNNStep -benchtime 40x
//	GOEXPERIMENT=simd GOMAXPROCS=1 go test ./trainer/internal/train -run XXX -bench CNNStep/rank32 -benchtime 200x
func BenchmarkCNNStep(b *testing.B) {
	for _, c := range []struct {
		name  string
		batch int
	}{{"batch64", 64}, {"rank32", 32}} {
		b.Run(c.name, func(b *testing.B) { benchCNNStep(b, c.batch) })
	}
}

func benchCNNStep(b *testing.B, batch int) {
	// Enough images that no epoch (and its evaluation) ends in a run.
	sets := synthetic(b, batch*400, 64)
	cfg := Config{Plan: cnnPlan, Epochs: 1000, BatchSize: batch, LearningRate: 1e-3, Seed: 1, Dropout: true}
	// One step to compile, outside the measurement.
	if _, err := Run(context.Background(), cfg, sets, Options{MaxSteps: 1}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	cpu := cpuTime()
	res, err := Run(context.Background(), cfg, sets, Options{MaxSteps: int64(b.N) + 1})
	if err != nil {
		b.Fatal(err)
	}
	cpu = cpuTime() - cpu
	b.ReportMetric(res.ImagesPerSecond, "img/s")
	b.ReportMetric(float64(batch*(b.N+1))/cpu.Seconds(), "img/cpu-s")
}
