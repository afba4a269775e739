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

// BenchmarkCNNStep measures the cnn's training throughput at batch 64 on
// synthetic data: img/s (wall) and img/cpu-s, images per CPU second, which
// is steadier than wall time on a shared machine.
//
//	GOEXPERIMENT=simd go test ./trainer/internal/train -run XXX -bench CNNStep -benchtime 40x
func BenchmarkCNNStep(b *testing.B) {
	sets := synthetic(b, 64*8, 64)
	cfg := Config{Plan: cnnPlan, Epochs: 1000, BatchSize: 64, LearningRate: 1e-3, Seed: 1, Dropout: true}
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
	b.ReportMetric(float64(64*(b.N+1))/cpu.Seconds(), "img/cpu-s")
}
