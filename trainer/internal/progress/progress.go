// Package progress shows how training goes: on a terminal, one redrawn bar
// with ETA and live loss and accuracy; in a pod, JSON log lines every N
// steps and every epoch. The launcher of a distributed job turns its ranks'
// JSON lines back into one bar for the whole job (Aggregate).
package progress

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"time"

	"golang.org/x/term"

	"github.com/aerie-ml/aerie/internal/manifest"
)

// Config describes the run being reported. The zero value works: no total
// (no bar, no ETA), no epoch count, no images per second.
type Config struct {
	// Total is the number of steps the run will have taken at the end.
	Total int64
	// Epochs is the number of epochs, for display.
	Epochs int
	// StepsPerEpoch lets the bar show the current epoch from the step
	// (right after a resume too); without it, the epoch after the last
	// one reported is shown.
	StepsPerEpoch int64
	// BatchSize is the images per step, for images per second.
	BatchSize int
	// LogEvery is how many steps apart JSON step lines are (default 100).
	// The last step is always logged.
	LogEvery int64
	// LogInterval, when positive, also logs a step line once this much
	// time has passed since the last one: a launcher drawing one bar from
	// its ranks' lines asks for it (EnvLauncherBar).
	LogInterval time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// EnvLauncherBar is set in the environment of the ranks that
// `trainer launch` starts on a terminal: it draws one bar for the job from
// their step lines, so they log them at least every LauncherLogInterval.
const EnvLauncherBar = "AERIE_LAUNCHER_BAR"

// LauncherLogInterval is how often ranks under a drawing launcher log.
const LauncherLogInterval = 250 * time.Millisecond

// Terminal is a terminal shared by a progress bar on its last line and the
// lines, such as log records, printed above it.
type Terminal struct {
	screen screen
	width  int
}

// NewTerminal draws on w, width columns wide; width <= 0 asks the
// terminal, else 80.
func NewTerminal(w io.Writer, width int) *Terminal {
	if width <= 0 {
		width = terminalWidth(w)
	}
	return &Terminal{screen: screen{w: w}, width: width}
}

// Writer returns where other output should go so that it does not tear
// the bar: complete lines written to it are printed above the bar.
func (t *Terminal) Writer() io.Writer {
	return &lineWriter{emit: func(line []byte) { t.screen.above(string(line)) }}
}

// Reporter reports one process's training progress. Its methods are safe
// to call from one goroutine (the training loop).
type Reporter struct {
	cfg    Config
	logger *slog.Logger
	term   *Terminal // nil when logging JSON lines

	epoch     int // the last epoch reported, 1-based
	started   bool
	start     time.Time
	startStep int64
	lastDraw  time.Time // the last bar drawn or step line logged
}

// redrawEvery limits how often the bar is redrawn.
const redrawEvery = 100 * time.Millisecond

// New returns a Reporter that draws a bar on term when it is not nil, and
// otherwise logs step and epoch lines to logger.
func New(term *Terminal, logger *slog.Logger, cfg Config) *Reporter {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.LogEvery <= 0 {
		cfg.LogEvery = 100
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Reporter{cfg: cfg, logger: logger, term: term}
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func terminalWidth(w io.Writer) int {
	if f, ok := w.(*os.File); ok {
		if width, _, err := term.GetSize(int(f.Fd())); err == nil && width > 0 {
			return width
		}
	}
	return 80
}

// Step reports that step steps are done (1-based: the last one is
// cfg.Total), with the loss and accuracy to show, for example the running
// means of the epoch so far.
func (r *Reporter) Step(step int64, loss, acc float64) {
	now := r.cfg.Now()
	if !r.started {
		// Measure the rate from the first step seen: it excludes graph
		// compilation and counts right after a resume.
		r.started, r.start, r.startStep = true, now, step
	}
	s := r.state(step, loss, acc, now)
	if r.term == nil {
		due := r.cfg.LogInterval > 0 && now.Sub(r.lastDraw) >= r.cfg.LogInterval
		if due || step%r.cfg.LogEvery == 0 || step == r.cfg.Total {
			r.lastDraw = now
			r.logger.LogAttrs(context.Background(), slog.LevelInfo, msgStep, stepAttrs(s)...)
		}
		return
	}
	if step == r.startStep || step >= r.cfg.Total || now.Sub(r.lastDraw) >= redrawEvery {
		r.lastDraw = now
		r.term.screen.draw(Render(s, r.term.width))
	}
}

func (r *Reporter) state(step int64, loss, acc float64, now time.Time) State {
	s := State{
		Epoch: r.epoch + 1, Epochs: r.cfg.Epochs,
		Step: step, Total: r.cfg.Total,
		Loss: loss, Accuracy: acc,
		ETA: -1,
	}
	if r.cfg.StepsPerEpoch > 0 && step > 0 {
		s.Epoch = int((step-1)/r.cfg.StepsPerEpoch) + 1
	}
	if s.Epochs > 0 {
		s.Epoch = min(s.Epoch, s.Epochs)
	}
	if elapsed := now.Sub(r.start).Seconds(); step > r.startStep && elapsed > 0 {
		rate := float64(step-r.startStep) / elapsed
		s.ImagesPerSecond = rate * float64(r.cfg.BatchSize)
		if s.Total > 0 {
			s.ETA = time.Duration(float64(max(0, s.Total-step)) / rate * float64(time.Second))
		}
	}
	return s
}

// Epoch reports a finished epoch (e.Epoch is 1-based).
func (r *Reporter) Epoch(e manifest.Epoch) {
	r.epoch = e.Epoch
	if r.term == nil {
		r.logger.LogAttrs(context.Background(), slog.LevelInfo, msgEpoch, epochAttrs(e, r.cfg.Epochs)...)
		return
	}
	r.term.screen.above(FormatEpoch(e, r.cfg.Epochs))
}

// Close leaves the last bar on the terminal and moves the cursor below it.
func (r *Reporter) Close() {
	if r.term != nil {
		r.term.screen.close()
	}
}

// FormatEpoch is the line printed for a finished epoch.
func FormatEpoch(e manifest.Epoch, epochs int) string {
	n := fmt.Sprint(e.Epoch)
	if epochs > 0 {
		n = fmt.Sprintf("%d/%d", e.Epoch, epochs)
	}
	line := fmt.Sprintf("epoch %s  train loss %.4f acc %.2f%%  val loss %.4f acc %.2f%%",
		n, e.TrainLoss, 100*e.TrainAccuracy, e.ValLoss, 100*e.ValAccuracy)
	if e.ImagesPerSecond > 0 {
		line += fmt.Sprintf("  %.0f img/s", e.ImagesPerSecond)
	}
	if e.Seconds > 0 {
		line += "  " + (time.Duration(e.Seconds * float64(time.Second))).Round(time.Second).String()
	}
	if e.LearningRate > 0 {
		line += fmt.Sprintf("  lr %.3g", e.LearningRate)
	}
	return line
}

// The messages of the JSON lines; Aggregate recognizes them.
const (
	msgStep  = "step"
	msgEpoch = "epoch"
)

func stepAttrs(s State) []slog.Attr {
	attrs := []slog.Attr{
		slog.Int64("step", s.Step),
		slog.Int64("total", s.Total),
		slog.Int("epoch", s.Epoch),
		slog.Int("epochs", s.Epochs),
		slog.Float64("loss", s.Loss),
		slog.Float64("accuracy", s.Accuracy),
		slog.Float64("imagesPerSecond", round(s.ImagesPerSecond, 1)),
	}
	if s.ETA >= 0 {
		attrs = append(attrs, slog.Float64("etaSeconds", round(s.ETA.Seconds(), 0)))
	}
	return attrs
}

func epochAttrs(e manifest.Epoch, epochs int) []slog.Attr {
	return []slog.Attr{
		slog.Int("epoch", e.Epoch),
		slog.Int("epochs", epochs),
		slog.Int64("step", e.Step),
		slog.Float64("learningRate", e.LearningRate),
		slog.Float64("trainLoss", e.TrainLoss),
		slog.Float64("trainAccuracy", e.TrainAccuracy),
		slog.Float64("valLoss", e.ValLoss),
		slog.Float64("valAccuracy", e.ValAccuracy),
		slog.Float64("imagesPerSecond", round(e.ImagesPerSecond, 1)),
		slog.Float64("seconds", round(e.Seconds, 3)),
	}
}

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}
