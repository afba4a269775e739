package runspec

import (
	"fmt"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRangeCheck(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		want string
	}{
		{"int low", Ranges.Epochs.Check("epochs", 1), "<nil>"},
		{"int high", Ranges.Epochs.Check("epochs", MaxEpochs), "<nil>"},
		{"int below", Ranges.Epochs.Check("epochs", 0), "epochs must be an integer between 1 and 1000, got 0"},
		{"int above", Ranges.Patience.Check("--patience", MaxPatience+1), "--patience must be an integer between 0 and 100, got 101"},
		{"closed low", Ranges.Jitter.Check("erasing", 0), "<nil>"},
		{"closed high", Ranges.Validation.Check("v", MaxValidation), "<nil>"},
		{"above", Ranges.Validation.Check("--val-fraction", 0.6), "--val-fraction must be a number between 0 and 0.5, got 0.6"},
		{"open low", Ranges.LearningRate.Check("learning rate", 0), "learning rate must be a number above 0 and at most 1, got 0"},
		{"open high", Ranges.LearningRate.Check("learning rate", 1), "<nil>"},
		{"NaN", Ranges.Jitter.Check("contrast", math.NaN()), "contrast must be a number between 0 and 1, got NaN"},
	} {
		if diff := cmp.Diff(tt.want, fmt.Sprint(tt.err)); diff != "" {
			t.Errorf("%s: (-want +got)\n%s", tt.name, diff)
		}
	}
}
