package progress

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
)

// Aggregate draws one bar for a job of several processes from the JSON
// lines they write (see Reporter in log mode), and prints their other
// output above it, prefixed with the rank. It is safe for concurrent use:
// each process's output may be copied in by its own goroutine.
type Aggregate struct {
	screen screen
	width  int

	mu      sync.Mutex
	world   int           // the job's ranks, as Expect was told
	ranks   map[int]State // the latest step of each rank
	printed map[int]bool  // epochs already printed
}

// NewAggregate draws on w, a terminal width columns wide; width <= 0 asks
// the terminal, else 80.
func NewAggregate(w io.Writer, width int) *Aggregate {
	if width <= 0 {
		width = terminalWidth(w)
	}
	return &Aggregate{screen: screen{w: w}, width: width, ranks: map[int]State{}, printed: map[int]bool{}}
}

// Writer returns a writer for one process's output, for example an
// exec.Cmd's Stdout and Stderr. Close it after the process exits to flush
// a last line without a newline.
func (a *Aggregate) Writer(rank int) io.WriteCloser {
	return &lineWriter{emit: func(line []byte) { a.Line(rank, line) }}
}

// Expect tells the bar the job's number of ranks, so that it names them
// all before every rank has reported a step.
func (a *Aggregate) Expect(ranks int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.world = ranks
}

// Line takes one line of output of rank (-1 when unknown: the line's own
// "rank" attribute is used then).
func (a *Aggregate) Line(rank int, line []byte) {
	ev, ok := ParseLine(line)
	if ok && ev.Rank >= 0 {
		rank = ev.Rank
	}
	if !ok {
		// A terminal shows log records as text, not as the JSON a pod logs.
		omit := []string{"rank"} // the prefix says it
		if rank < 0 {
			omit = nil // the launcher's own record: its rank attribute is what it is about
		}
		if text, isRecord := FormatRecord(line, omit...); isRecord {
			line = []byte(text)
		}
		if rank >= 0 {
			a.screen.above(fmt.Sprintf("[rank %d] %s", rank, line))
		} else {
			a.screen.above(string(line))
		}
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	switch ev.Kind {
	case msgStep:
		a.ranks[rank] = ev.State
		a.screen.draw(Render(a.state(), a.width))
	case msgEpoch:
		// Every rank reports each epoch; print it once.
		if !a.printed[ev.Epoch.Epoch] {
			a.printed[ev.Epoch.Epoch] = true
			a.screen.above(FormatEpoch(ev.Epoch, ev.State.Epochs))
		}
	}
}

// State is the job's progress: the step and epoch of the slowest rank, the
// mean loss and accuracy, the slowest rank's images per second, and the
// longest ETA. Each rank already reports the whole job's rate (its steps
// times the global batch), so the rates are not added up.
func (a *Aggregate) State() State {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.state()
}

func (a *Aggregate) state() State {
	ranks := slices.Sorted(maps.Keys(a.ranks))
	if len(ranks) == 0 {
		return State{ETA: -1}
	}
	s := a.ranks[ranks[0]]
	s.Loss, s.Accuracy = 0, 0
	for _, r := range ranks {
		rs := a.ranks[r]
		s.Step = min(s.Step, rs.Step)
		s.Epoch = min(s.Epoch, rs.Epoch)
		s.Total = max(s.Total, rs.Total)
		s.Epochs = max(s.Epochs, rs.Epochs)
		s.Loss += rs.Loss / float64(len(ranks))
		s.Accuracy += rs.Accuracy / float64(len(ranks))
		if r := rs.ImagesPerSecond; r > 0 && (s.ImagesPerSecond <= 0 || r < s.ImagesPerSecond) {
			s.ImagesPerSecond = r
		}
		if rs.ETA < 0 || s.ETA < 0 {
			s.ETA = -1
		} else {
			s.ETA = max(s.ETA, rs.ETA)
		}
	}
	n := max(len(ranks), a.world)
	s.Label = fmt.Sprintf("%d ranks", n)
	if n == 1 {
		s.Label = "1 rank"
	}
	return s
}

// Close leaves the last bar on the terminal and moves below it.
func (a *Aggregate) Close() {
	a.screen.close()
}
