package progress

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"time"

	"github.com/aerie-ml/aerie/internal/manifest"
)

// Event is a progress line parsed back from a rank's JSON output.
type Event struct {
	// Kind is "step" or "epoch".
	Kind string
	// Rank is the line's "rank" attribute, or -1 when it has none.
	Rank int
	// State holds a step event's figures (Label unset).
	State State
	// Epoch holds an epoch event's figures.
	Epoch manifest.Epoch
}

// wire is the JSON of both kinds of line; unknown attributes are ignored.
type wire struct {
	Msg             string  `json:"msg"`
	Rank            *int    `json:"rank"`
	Step            *int64  `json:"step"`
	Total           int64   `json:"total"`
	Epoch           *int    `json:"epoch"`
	Epochs          int     `json:"epochs"`
	Loss            number  `json:"loss"`
	Accuracy        number  `json:"accuracy"`
	ImagesPerSecond number  `json:"imagesPerSecond"`
	ETASeconds      *number `json:"etaSeconds"`
	LearningRate    number  `json:"learningRate"`
	TrainLoss       number  `json:"trainLoss"`
	TrainAccuracy   number  `json:"trainAccuracy"`
	ValLoss         number  `json:"valLoss"`
	ValAccuracy     number  `json:"valAccuracy"`
	Seconds         number  `json:"seconds"`
}

// number is a float64 that also reads the strings slog writes for NaN and
// infinities: a diverging loss is worth showing.
type number float64

func (n *number) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil && !math.IsInf(f, 0) {
			return err
		}
		*n = number(f)
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*n = number(f)
	return nil
}

// ParseLine reads a step or epoch line written by a Reporter in log mode.
// Anything before the first '{' (a launcher's rank prefix, say) is
// ignored. ok is false for every other line.
func ParseLine(line []byte) (ev Event, ok bool) {
	i := bytes.IndexByte(line, '{')
	if i < 0 {
		return Event{}, false
	}
	var w wire
	if err := json.Unmarshal(line[i:], &w); err != nil || w.Step == nil || w.Epoch == nil {
		return Event{}, false
	}
	ev.Rank = -1
	if w.Rank != nil {
		ev.Rank = *w.Rank
	}
	switch w.Msg {
	case msgStep:
		ev.Kind = msgStep
		ev.State = State{
			Epoch: *w.Epoch, Epochs: w.Epochs,
			Step: *w.Step, Total: w.Total,
			Loss: float64(w.Loss), Accuracy: float64(w.Accuracy),
			ImagesPerSecond: float64(w.ImagesPerSecond),
			ETA:             -1,
		}
		if w.ETASeconds != nil && *w.ETASeconds >= 0 && *w.ETASeconds < number(math.MaxInt64/time.Second) {
			ev.State.ETA = time.Duration(float64(*w.ETASeconds) * float64(time.Second))
		}
	case msgEpoch:
		ev.Kind = msgEpoch
		ev.State = State{Epoch: *w.Epoch, Epochs: w.Epochs, Step: *w.Step, ETA: -1}
		ev.Epoch = manifest.Epoch{
			Epoch: *w.Epoch, Step: *w.Step,
			LearningRate: float64(w.LearningRate),
			TrainLoss:    float64(w.TrainLoss), TrainAccuracy: float64(w.TrainAccuracy),
			ValLoss: float64(w.ValLoss), ValAccuracy: float64(w.ValAccuracy),
			ImagesPerSecond: float64(w.ImagesPerSecond), Seconds: float64(w.Seconds),
		}
	default:
		return Event{}, false
	}
	return ev, true
}
