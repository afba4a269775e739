package progress

import (
	"bytes"
	"io"
	"strings"
	"sync"
)

// screen keeps one redrawable bar on the last line of a terminal and
// prints other lines above it.
type screen struct {
	mu  sync.Mutex
	w   io.Writer
	bar string // the bar as drawn, "" if none
}

// clearLine returns the cursor to column 0 and erases the line.
const clearLine = "\r\x1b[K"

// above prints text (one or more lines) above the bar and redraws it.
func (s *screen) above(text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	if s.bar != "" {
		b.WriteString(clearLine)
	}
	b.WriteString(text)
	if !strings.HasSuffix(text, "\n") {
		b.WriteByte('\n')
	}
	b.WriteString(s.bar)
	io.WriteString(s.w, b.String())
}

// draw replaces the bar.
func (s *screen) draw(bar string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if bar == s.bar {
		return
	}
	s.bar = bar
	io.WriteString(s.w, clearLine+bar)
}

// close leaves the last bar on screen and moves below it.
func (s *screen) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bar != "" {
		io.WriteString(s.w, "\n")
		s.bar = ""
	}
}

// lineWriter calls emit with every complete line written to it, without
// the newline. Lines longer than maxLine are emitted in pieces.
type lineWriter struct {
	mu   sync.Mutex
	buf  []byte
	emit func(line []byte)
}

const maxLine = 64 << 10

func (lw *lineWriter) Write(p []byte) (int, error) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			lw.buf = append(lw.buf, p...)
			for len(lw.buf) >= maxLine {
				lw.emit([]byte(string(lw.buf[:maxLine])))
				lw.buf = append(lw.buf[:0], lw.buf[maxLine:]...)
			}
			break
		}
		lw.buf = append(lw.buf, p[:i]...)
		lw.flush()
		p = p[i+1:]
	}
	return n, nil
}

// Close emits a last line that had no newline.
func (lw *lineWriter) Close() error {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if len(lw.buf) > 0 {
		lw.flush()
	}
	return nil
}

func (lw *lineWriter) flush() {
	line := strings.TrimSuffix(string(lw.buf), "\r")
	lw.buf = lw.buf[:0]
	lw.emit([]byte(line))
}
