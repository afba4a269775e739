package progress

import (
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"
)

// State is what one bar line shows.
type State struct {
	// Label starts the line, e.g. "3 ranks"; empty for none.
	Label         string
	Epoch, Epochs int
	Step, Total   int64
	Loss          float64
	Accuracy      float64
	// ImagesPerSecond is omitted when zero.
	ImagesPerSecond float64
	// ETA is the estimated time left; negative when unknown.
	ETA time.Duration
}

const (
	minBarCells = 10
	maxBarCells = 40
)

// Render formats s as one terminal line of at most width-1 columns, so the
// cursor never wraps and a carriage return can redraw it.
func Render(s State, width int) string {
	var head, tail []string
	if s.Label != "" {
		head = append(head, s.Label)
	}
	if s.Epochs > 0 {
		head = append(head, fmt.Sprintf("epoch %d/%d", s.Epoch, s.Epochs))
	} else if s.Epoch > 0 {
		head = append(head, fmt.Sprintf("epoch %d", s.Epoch))
	}
	frac := -1.0
	if s.Total > 0 {
		frac = math.Min(1, math.Max(0, float64(s.Step)/float64(s.Total)))
		tail = append(tail, fmt.Sprintf("%d/%d %3.0f%%", s.Step, s.Total, 100*frac))
	} else {
		tail = append(tail, fmt.Sprintf("step %d", s.Step))
	}
	tail = append(tail, fmt.Sprintf("loss %.4f acc %.1f%%", s.Loss, 100*s.Accuracy))
	if s.ImagesPerSecond > 0 {
		tail = append(tail, fmt.Sprintf("%.0f img/s", s.ImagesPerSecond))
	}
	tail = append(tail, "ETA "+FormatETA(s.ETA))

	text := strings.Join(append(head, tail...), " ")
	if frac >= 0 {
		// Give the bar what the text leaves, within limits.
		cells := width - 1 - utf8.RuneCountInString(text) - 3
		if cells >= minBarCells {
			bar := "▕" + barCells(frac, min(cells, maxBarCells)) + "▏"
			text = strings.Join(append(append(head, bar), tail...), " ")
		}
	}
	if width > 1 && utf8.RuneCountInString(text) > width-1 {
		text = string([]rune(text)[:width-1])
	}
	return text
}

// barCells draws frac of n cells with eighth-block resolution.
func barCells(frac float64, n int) string {
	eighths := int(math.Round(frac * float64(n*8)))
	full, part := eighths/8, eighths%8
	var b strings.Builder
	b.WriteString(strings.Repeat("█", full))
	if part > 0 {
		b.WriteRune([]rune("▏▎▍▌▋▊▉")[part-1])
		full++
	}
	b.WriteString(strings.Repeat(" ", n-full))
	return b.String()
}

// FormatETA writes d compactly: "45s", "2m31s", "1h02m", or "--" when
// unknown (negative).
func FormatETA(d time.Duration) string {
	if d < 0 {
		return "--"
	}
	s := int64(d.Round(time.Second) / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	default:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	}
}
