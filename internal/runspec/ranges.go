package runspec

import (
	"fmt"
	"math"
	"strconv"
)

// An IntRange is the integers a field accepts, Lo to Hi.
type IntRange struct{ Lo, Hi int64 }

// Contains reports whether v is in the range.
func (r IntRange) Contains(v int64) bool { return v >= r.Lo && v <= r.Hi }

func (r IntRange) String() string { return fmt.Sprintf("an integer between %d and %d", r.Lo, r.Hi) }

// Check returns an error naming what unless the range contains v.
func (r IntRange) Check(what string, v int64) error {
	if !r.Contains(v) {
		return fmt.Errorf("%s must be %s, got %d", what, r, v)
	}
	return nil
}

// A NumberRange is the finite numbers a field accepts: Lo (or only above
// it, when OpenLo) to Hi.
type NumberRange struct {
	Lo, Hi float64
	OpenLo bool
}

// Contains reports whether v is in the range.
func (r NumberRange) Contains(v float64) bool {
	return !math.IsNaN(v) && v <= r.Hi && (v > r.Lo || !r.OpenLo && v == r.Lo)
}

func (r NumberRange) String() string {
	if r.OpenLo {
		return fmt.Sprintf("a number above %s and at most %s", fmtFloat(r.Lo), fmtFloat(r.Hi))
	}
	return fmt.Sprintf("a number between %s and %s", fmtFloat(r.Lo), fmtFloat(r.Hi))
}

// Check returns an error naming what unless the range contains v.
func (r NumberRange) Check(what string, v float64) error {
	if !r.Contains(v) {
		return fmt.Errorf("%s must be %s, got %s", what, r, strconv.FormatFloat(v, 'g', -1, 64))
	}
	return nil
}

// Ranges are what the numeric fields of a TrainingRun's spec.model and
// spec.dataset accept: the one check of a run file's values and of the
// trainer's flags that set the same things.
var Ranges = struct {
	Epochs, BatchSize, GhostBatch, Patience, CropPadding, EverySteps IntRange
	LearningRate, Rotation, Jitter, Validation                       NumberRange
}{
	Epochs:       IntRange{1, MaxEpochs},
	BatchSize:    IntRange{1, MaxBatchSize},
	GhostBatch:   IntRange{1, MaxBatchSize},
	Patience:     IntRange{0, MaxPatience},
	CropPadding:  IntRange{0, MaxCropPadding},
	EverySteps:   IntRange{0, MaxEverySteps},
	LearningRate: NumberRange{Lo: 0, Hi: 1, OpenLo: true},
	Rotation:     NumberRange{Lo: 0, Hi: MaxRotation},
	// Jitter is brightness, contrast and erasing: a strength or a
	// probability.
	Jitter:     NumberRange{Lo: 0, Hi: 1},
	Validation: NumberRange{Lo: 0, Hi: MaxValidation},
}
