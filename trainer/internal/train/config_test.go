package train

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/aerie-ml/aerie/internal/exitcode"
	"github.com/aerie-ml/aerie/internal/runspec"
)

func TestLearningRate(t *testing.T) {
	for _, tc := range []struct {
		schedule string
		step     int64
		want     float64
	}{
		{"constant", 0, 1}, {"constant", 99, 1},
		{"cosine", 0, 1}, {"cosine", 50, 0.5}, {"cosine", 100, 0},
		{"step", 0, 1}, {"step", 49, 1}, {"step", 50, 0.1}, {"step", 74, 0.1}, {"step", 75, 0.01},
	} {
		c := Config{LearningRate: 1, Schedule: tc.schedule, Epochs: 4}
		if got := c.learningRate(tc.step, 100, 25); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%s: learningRate(%d) = %v, want %v", tc.schedule, tc.step, got, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	good := smallConfig()
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(*Config){
		"arch":       func(c *Config) { c.Plan = nil },
		"ghost":      func(c *Config) { c.Plan, c.BatchSize, c.GhostBatch = resnetPlan, 48, 32 },
		"ghosts":     func(c *Config) { c.Plan, c.BatchSize, c.GhostBatch, c.WorldSize = resnetPlan, 64, 32, 3 },
		"epochs":     func(c *Config) { c.Epochs = 0 },
		"epochs-max": func(c *Config) { c.Epochs = runspec.MaxEpochs + 1 },
		"lr-max":     func(c *Config) { c.LearningRate = 2 },
		"patience":   func(c *Config) { c.Patience = runspec.MaxPatience + 1 },
		"checkpoint": func(c *Config) { c.CheckpointEvery = -1 },
		"batch":      func(c *Config) { c.BatchSize, c.WorldSize = 2, 3 },
		"lr":         func(c *Config) { c.LearningRate = math.NaN() },
		"schedule":   func(c *Config) { c.Schedule = "linear" },
		"rank":       func(c *Config) { c.Rank, c.WorldSize = 2, 2 },
		"smoothing":  func(c *Config) { c.LabelSmoothing = 1 },
		"crop":       func(c *Config) { c.Augment.CropPadding = 65 },
		"erasing":    func(c *Config) { c.Augment.Erasing = 1.5 },
		"contrast":   func(c *Config) { c.Augment.Contrast = math.NaN() },
	} {
		c := smallConfig()
		edit(&c)
		if err := c.Validate(); exitcode.Of(err) != exitcode.Config {
			t.Errorf("%s: Validate() = %v, want a Config error", name, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	// Without batch norm, the ghost batch does not constrain the split.
	c := smallConfig()
	c.BatchSize, c.GhostBatch, c.WorldSize = 15, 32, 3
	if err := c.Validate(); err != nil {
		t.Errorf("small, batch 15 over 3 workers: %v", err)
	}
}

// TestCropPaddingFitsTheImages: the crop padding is checked against the
// dataset's shape when training starts.
func TestCropPaddingFitsTheImages(t *testing.T) {
	cfg := smallConfig()
	cfg.Augment.CropPadding = 15
	_, err := Run(t.Context(), cfg, synthetic(t, 40, 10), Options{})
	if exitcode.Of(err) != exitcode.Config || !strings.Contains(err.Error(), "crop padding 15 is more than half the 28x28x1 images' shorter side") {
		t.Errorf("Run with crop padding 15 on 28×28 images = %v, want a Config error", err)
	}
}

func TestEarlyStopping(t *testing.T) {
	sets := synthetic(t, 160, 20)
	cfg := smallConfig()
	cfg.Epochs, cfg.Patience, cfg.LearningRate, cfg.Schedule = 6, 1, 1, "constant" // the largest rate: diverges
	res, err := Run(context.Background(), cfg, sets, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.StoppedEarly || len(res.Epochs) >= cfg.Epochs {
		t.Errorf("StoppedEarly = %v after %d of %d epochs, want an early stop", res.StoppedEarly, len(res.Epochs), cfg.Epochs)
	}
}
