package report

import (
	"time"

	"github.com/aerie-ml/aerie/internal/manifest"
)

// fashionClasses are Fashion-MNIST's class names, in label order.
var fashionClasses = []string{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"}

// sample is a plausible manifest of a cnn run of n epochs, with a confusion
// matrix shaped like Fashion-MNIST's (shirts mistaken for T-shirts,
// pullovers and coats).
func sample(n int) *manifest.Manifest {
	var epochs []manifest.Epoch
	for i := 1; i <= n; i++ {
		f := float64(i)
		epochs = append(epochs, manifest.Epoch{
			Epoch: i, Step: int64(i) * 844, LearningRate: 0.001 / f,
			TrainLoss: 0.2 + 0.45/f, TrainAccuracy: 0.93 - 0.12/f,
			ValLoss: 0.23 + 0.3/f + 0.004*f, ValAccuracy: 0.925 - 0.08/f,
			ImagesPerSecond: 560 + f, Seconds: 96.5,
		})
	}
	classAcc := []float64{0.87, 0.985, 0.88, 0.925, 0.89, 0.98, 0.765, 0.97, 0.985, 0.965}
	confusion := make([][]float64, len(fashionClasses))
	for r := range confusion {
		confusion[r] = make([]float64, len(fashionClasses))
		confusion[r][r] = classAcc[r]
	}
	spread := func(r int, to map[int]float64) {
		for c, v := range to {
			confusion[r][c] = v
		}
	}
	spread(0, map[int]float64{6: 0.09, 3: 0.02, 2: 0.015, 8: 0.005})
	spread(1, map[int]float64{3: 0.01, 6: 0.005})
	spread(2, map[int]float64{4: 0.06, 6: 0.05, 0: 0.01})
	spread(3, map[int]float64{4: 0.03, 0: 0.02, 6: 0.025})
	spread(4, map[int]float64{2: 0.06, 6: 0.04, 3: 0.01})
	spread(5, map[int]float64{7: 0.015, 9: 0.005})
	spread(6, map[int]float64{0: 0.1, 2: 0.06, 4: 0.05, 3: 0.025})
	spread(7, map[int]float64{9: 0.025, 5: 0.005})
	spread(8, map[int]float64{6: 0.005, 2: 0.005, 0: 0.005})
	spread(9, map[int]float64{7: 0.03, 5: 0.005})
	return &manifest.Manifest{
		SchemaVersion: manifest.SchemaVersion,
		Run:           "fmnist-cnn",
		Version:       "3f2a9c0d1e4b5a67",
		CreatedAt:     time.Date(2026, 11, 29, 14, 3, 0, 0, time.UTC),
		Model: manifest.Model{
			Architecture: "cnn", Parameters: 421642, Weights: "model.safetensors",
			Input:   manifest.Input{Height: 28, Width: 28, Channels: 1, Mean: []float64{0.5}, Std: []float64{0.5}},
			Classes: fashionClasses,
		},
		SelfTest: manifest.SelfTest{File: "selftest.tar", Split: "test", Seed: 1, PerClass: 30, ClassCounts: []int{30, 30, 30, 30, 30, 30, 30, 30, 30, 30}},
		Files:    []manifest.File{{Name: "model.safetensors", Size: 1686784, SHA256: "3f2a9c0d1e4b5a67" + "89abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}},
		Dataset: manifest.Dataset{
			URI:    "file:///usr/share/datasets/fashion-mnist",
			Digest: "f37bf62265b0989968a94c78e420344f1ede1007dabf032a0dc5e88371fef370",
		},
		Lineage: manifest.Lineage{GitCommit: "2a8ff51d070fed0123456789abcdef0123456789", ImageDigest: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", WorldSize: 1},
		Hyperparameters: manifest.Hyperparameters{
			Epochs: n, BatchSize: 64, LearningRate: 0.001, Schedule: "cosine", Optimizer: "adam",
			Seed: 1, RotationDegrees: 10, CropPadding: 4, Dropout: true,
		},
		Metrics: manifest.Metrics{
			Epochs: epochs, TestLoss: 0.241, TestAccuracy: 0.9215,
			ClassAccuracy: classAcc, Confusion: confusion,
			ModelBytes: 1686784, Parameters: 421642, ImagesPerSecond: 561.3,
			CPUUtilization: 0.934, PeakRSSBytes: 412 << 20, WallSeconds: 1012.4,
		},
		Gates: manifest.Evaluate(manifest.Metrics{TestAccuracy: 0.9215, ClassAccuracy: classAcc, ModelBytes: 1686784},
			fashionClasses, manifest.Gates{MinTestAccuracy: 0.915, MinClassAccuracy: 0.75, MaxModelBytes: 4 << 20}),
	}
}
