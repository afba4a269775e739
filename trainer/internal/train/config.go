// Package train is the training loop: Adam over the model's parameters,
// data-parallel ready. Each step runs in three parts so that a distributed
// run can all-reduce gradients on the host:
//
//  1. an exec computes, on this rank's shard of the global batch, the
//     gradients of the SUMMED loss, batch norm's ghost-batch statistics
//     (summed), the loss sum and the correct count;
//  2. the Reducer sums [gradients…, loss sum, correct, examples] over all
//     ranks; dividing by the summed example count gives the exact mean
//     gradient of the global batch however unevenly it is split;
//  3. an exec applies the mean gradient with Adam (same variable order).
//
// Validation and test metrics are sums (loss, confusion counts) over each
// rank's shard, reduced the same way, so they always cover the whole set.
// Randomness (shuffling, augmentation, dropout masks) is a pure function of
// the seed, the epoch and the example's index, so a run is deterministic and
// resumes exactly. N ranks compute the sums one rank would in another
// float32 order: equal to rounding at first, drifting apart over many steps
// (trainer/README.md states the measured drift).
package train

import (
	"context"
	"math"
	"slices"

	"github.com/aerie-ml/aerie/internal/arch"
	"github.com/aerie-ml/aerie/internal/dataset"
	"github.com/aerie-ml/aerie/internal/exitcode"
	"github.com/aerie-ml/aerie/internal/runspec"
)

// Config is what to train and how. The zero value of an optional field
// turns its feature off.
type Config struct {
	// Plan is the architecture on the dataset's image shape and classes.
	Plan         *arch.Plan
	Epochs       int
	BatchSize    int // global, across all ranks
	LearningRate float64
	// Schedule is "constant", "cosine" (per step, to 0 at the end) or
	// "step" (×0.1 at 50% and again at 75% of the epochs).
	Schedule       string
	Seed           int64
	Dropout        bool
	LabelSmoothing float64
	// Patience stops training after this many epochs without a lower
	// validation loss; 0 never stops early.
	Patience int
	Augment  runspec.Augmentation
	// CheckpointEvery saves a checkpoint every so many steps, besides the
	// one at the end of every epoch; 0: epochs only.
	CheckpointEvery int
	// EvalBatch is the per-rank batch for validation and test (default 256).
	EvalBatch int
	// Rank and WorldSize place this process in a data-parallel job
	// (defaults 0 and 1).
	Rank, WorldSize int
	// GhostBatch is how many images batch norm computes its statistics
	// over (default DefaultGhostBatch). It is independent of the world
	// size and the lanes, which split a batch into whole ghost batches, so
	// that any split trains the same model. Plans without batch norm
	// ignore it.
	GhostBatch int
}

// DefaultGhostBatch is the default Config.GhostBatch.
const DefaultGhostBatch = runspec.DefaultGhostBatch

// unit is the number of images the global batch is split in whole
// multiples of across ranks and lanes: a ghost batch with batch norm, else
// one image.
func (c *Config) unit() int {
	for _, r := range c.Plan.Rows {
		if r.Layer.Op == arch.BatchNorm {
			return c.GhostBatch
		}
	}
	return 1
}

func (c *Config) setDefaults() {
	if c.EvalBatch == 0 {
		c.EvalBatch = 256
	}
	if c.WorldSize == 0 {
		c.WorldSize = 1
	}
	if c.Schedule == "" {
		c.Schedule = runspec.DefaultSchedule
	}
	if c.GhostBatch == 0 {
		c.GhostBatch = DefaultGhostBatch
	}
}

// Validate reports the first invalid field as an exitcode.Config error.
func (c *Config) Validate() error {
	c.setDefaults()
	bad := func(format string, args ...any) error {
		return exitcode.Errorf(exitcode.Config, "training config: "+format, args...)
	}
	if c.Plan == nil {
		return bad("no architecture")
	}
	// A declaration's ranges (runspec.Ranges), so that flags accept what
	// a run file does.
	r := runspec.Ranges
	for _, err := range []error{
		r.Epochs.Check("epochs", int64(c.Epochs)),
		r.BatchSize.Check("batch size", int64(c.BatchSize)),
		r.GhostBatch.Check("ghost batch", int64(c.GhostBatch)),
		r.LearningRate.Check("learning rate", c.LearningRate),
		r.Patience.Check("early stopping patience", int64(c.Patience)),
		r.EverySteps.Check("checkpoint interval", int64(c.CheckpointEvery)),
		r.Rotation.Check("augmentation rotation", c.Augment.RotationDegrees),
		r.CropPadding.Check("augmentation crop padding", int64(c.Augment.CropPadding)),
		r.Jitter.Check("augmentation brightness", c.Augment.Brightness),
		r.Jitter.Check("augmentation contrast", c.Augment.Contrast),
		r.Jitter.Check("augmentation erasing", c.Augment.Erasing),
	} {
		if err != nil {
			return bad("%v", err)
		}
	}
	switch {
	case c.WorldSize < 1 || c.Rank < 0 || c.Rank >= c.WorldSize:
		return bad("rank %d of world size %d", c.Rank, c.WorldSize)
	case c.BatchSize < c.WorldSize:
		return bad("batch size %d is smaller than the %d workers sharing it", c.BatchSize, c.WorldSize)
	case c.BatchSize%c.unit() != 0:
		return bad("batch size %d is not a multiple of the ghost batch %d: %s's batch norm computes statistics over ghost batches of %d images, so that every split of the batch across workers and lanes trains the same model",
			c.BatchSize, c.GhostBatch, c.Plan.Name, c.GhostBatch)
	case c.BatchSize/c.unit() < c.WorldSize:
		return bad("batch size %d holds %d ghost batches of %d, fewer than the %d workers sharing it: each worker needs whole ghost batches for batch norm",
			c.BatchSize, c.BatchSize/c.unit(), c.GhostBatch, c.WorldSize)
	case c.LabelSmoothing < 0 || c.LabelSmoothing >= 1:
		return bad("label smoothing %v, want [0, 1)", c.LabelSmoothing)
	case c.EvalBatch < 1:
		return bad("eval batch %d, want at least 1", c.EvalBatch)
	}
	if !slices.Contains(runspec.Schedules, c.Schedule) {
		return bad("schedule %q, want one of %v", c.Schedule, runspec.Schedules)
	}
	return nil
}

// checkInput checks that the plan is of the dataset's image shape and
// classes, and that the augmentation fits the images.
func (c *Config) checkInput(sh dataset.Shape, classes int) error {
	if in := c.Plan.Input; in.H != sh.Height || in.W != sh.Width || in.C != sh.Channels || c.Plan.Classes != classes {
		return exitcode.Errorf(exitcode.Config, "architecture %s is planned for %dx%dx%d images of %d classes; the dataset has %s images of %d classes",
			c.Plan.Name, in.H, in.W, in.C, c.Plan.Classes, sh, classes)
	}
	if p := c.Augment.CropPadding; 2*p > min(sh.Height, sh.Width) {
		return exitcode.Errorf(exitcode.Config, "training config: augmentation crop padding %d is more than half the %s images' shorter side", p, sh)
	}
	return nil
}

// learningRate returns the rate for global step (0-based) of total steps.
func (c *Config) learningRate(step, total int64, stepsPerEpoch int) float64 {
	switch c.Schedule {
	case "cosine":
		return c.LearningRate * 0.5 * (1 + math.Cos(math.Pi*float64(step)/float64(total)))
	case "step":
		epoch := int(step) / stepsPerEpoch
		lr := c.LearningRate
		if 2*epoch >= c.Epochs {
			lr *= 0.1
		}
		if 4*epoch >= 3*c.Epochs {
			lr *= 0.1
		}
		return lr
	}
	return c.LearningRate
}

// Reducer sums buffers across the ranks of a data-parallel job.
type Reducer interface {
	// AllReduce replaces buf, on every rank, by the elementwise sum of
	// every rank's buf. All ranks call it in the same order with buffers
	// of the same length.
	AllReduce(ctx context.Context, buf []float32) error
}

// single is the Reducer of a one-process job.
type single struct{}

func (single) AllReduce(context.Context, []float32) error { return nil }
