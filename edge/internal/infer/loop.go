package infer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/aerie-ml/aerie/edge/internal/frames"
	"github.com/aerie-ml/aerie/edge/internal/gpio"
	"github.com/aerie-ml/aerie/edge/internal/status"
	"github.com/aerie-ml/aerie/internal/model"
)

// Rule drives one output line while the model sees one of Classes with at
// least MinConfidence. The line changes only after Debounce consecutive
// frames agree, so one odd frame does not toggle it.
type Rule struct {
	Name          string
	Classes       []string
	MinConfidence float32
	Debounce      int
	Out           gpio.Output
}

type ruleState struct {
	Rule
	on     bool
	streak int // consecutive frames disagreeing with on
}

// Actuator turns predictions into output line changes.
type Actuator struct {
	rules   []*ruleState
	log     *slog.Logger
	metrics *status.Metrics
}

// NewActuator returns an actuator for rules; all outputs start inactive.
func NewActuator(rules []Rule, log *slog.Logger, metrics *status.Metrics) *Actuator {
	a := &Actuator{log: log, metrics: metrics}
	for _, r := range rules {
		a.rules = append(a.rules, &ruleState{Rule: r})
	}
	return a
}

// Observe feeds one frame's prediction (class named class).
func (a *Actuator) Observe(frame, class string, p model.Prediction, digest string) error {
	var errs []error
	for _, r := range a.rules {
		match := slices.Contains(r.Classes, class) && p.Confidence >= r.MinConfidence
		if match == r.on {
			r.streak = 0
			continue
		}
		r.streak++
		if r.streak < max(r.Debounce, 1) {
			continue
		}
		r.streak = 0
		if err := a.set(r, match); err != nil {
			errs = append(errs, err)
			continue
		}
		a.log.Info("gpio decision", "output", r.Name, "active", match, "class", class,
			"confidence", p.Confidence, "frame", frame, "model", digest)
	}
	return errors.Join(errs...)
}

func (a *Actuator) set(r *ruleState, on bool) error {
	if r.Out != nil {
		if err := r.Out.Set(on); err != nil {
			return fmt.Errorf("output %s: %w", r.Name, err)
		}
	}
	r.on = on
	if a.metrics != nil {
		a.metrics.Decision(r.Name, on)
	}
	return nil
}

// Reset makes every output inactive (no model, or shutting down).
func (a *Actuator) Reset() error {
	var errs []error
	for _, r := range a.rules {
		r.streak = 0
		if r.on {
			if err := a.set(r, false); err != nil {
				errs = append(errs, err)
			}
			a.log.Info("gpio decision", "output", r.Name, "active", false, "why", "reset")
		}
	}
	return errors.Join(errs...)
}

// Loop classifies frames with whatever model the slot holds at each frame,
// preprocessed to that model's input: a swap to a model of another input
// shape takes effect at the next frame.
type Loop struct {
	Source   frames.Source
	Slot     *Slot
	Actuator *Actuator
	Metrics  *status.Metrics
	Log      *slog.Logger
	// Invert makes every frame its negative before the model sees it.
	Invert bool
}

// Run reads frames until the source ends (nil) or fails for good, or ctx
// is done (nil). Undecodable frames are counted and skipped.
func (l *Loop) Run(ctx context.Context) error {
	defer l.Actuator.Reset()
	var last *Model
	var input []byte // the frame as the current model takes it
	for {
		f, err := l.Source.Next(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, io.EOF):
			l.Log.Info("frame source ended")
			return nil
		case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.ErrClosedPipe):
			return fmt.Errorf("frame source: %w", err)
		case err != nil:
			l.Metrics.FrameErrors.Add(1)
			l.Log.Warn("skipping frame", "frame", f.Name, "err", err)
			continue
		}
		m := l.Slot.Load()
		if m != last {
			// A swap: the next frame already uses the new model; the
			// debounce state carries over, outputs do not flicker.
			if m == nil {
				l.Actuator.Reset()
			} else {
				l.Log.Info("frame loop uses model", "model", m.ManifestDigest)
			}
			last = m
		}
		if m == nil {
			continue
		}
		start := time.Now()
		if len(input) != m.Input.Bytes() {
			input = make([]byte, m.Input.Bytes())
		}
		frames.Preprocess(input, f.Image, m.Input, l.Invert)
		preds, err := m.Classifier.Classify(ctx, [][]byte{input})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			l.Metrics.FrameErrors.Add(1)
			l.Log.Error("classify", "frame", f.Name, "err", err)
			continue
		}
		l.Metrics.ObserveLatency(time.Since(start))
		l.Metrics.Frames.Add(1)
		p := preds[0]
		class := fmt.Sprint(p.Class)
		if p.Class < len(m.Classes) {
			class = m.Classes[p.Class]
		}
		l.Log.Debug("frame", "frame", f.Name, "class", class, "confidence", p.Confidence)
		l.Metrics.Prediction(class)
		if err := l.Actuator.Observe(f.Name, class, p, m.ManifestDigest); err != nil {
			l.Log.Error("gpio", "err", err)
		}
	}
}
