// Package gpio is the agent's small GPIO interface: output lines it drives
// and input lines it watches. Cdev implements it on the Linux GPIO
// character device with go-gpiocdev (v0.9.1); Sim implements it in memory
// for tests and for devices without GPIO.
package gpio

import (
	"fmt"
	"io"
	"sync"

	"github.com/warthog618/go-gpiocdev"
)

// Chip hands out lines.
type Chip interface {
	// Output requests line offset as an output, initially inactive.
	Output(offset int, activeLow bool) (Output, error)
	// Watch requests offset as an input and calls fn with its level now
	// and on every change, until the returned Closer is closed.
	Watch(offset int, fn func(active bool)) (io.Closer, error)
	Close() error
}

// Output is one output line.
type Output interface {
	Set(active bool) error
	Close() error
}

// Consumer labels the agent's line requests (gpioinfo shows it).
const Consumer = "aerie-edge"

// Cdev is a GPIO chip through /dev/gpiochipN.
type Cdev struct{ chip *gpiocdev.Chip }

var _ Chip = (*Cdev)(nil)

// Open opens a chip by name (gpiochip0) or path.
func Open(name string) (*Cdev, error) {
	c, err := gpiocdev.NewChip(name, gpiocdev.WithConsumer(Consumer))
	if err != nil {
		return nil, fmt.Errorf("open GPIO chip %s: %w", name, err)
	}
	return &Cdev{chip: c}, nil
}

// Output requests an output line.
func (c *Cdev) Output(offset int, activeLow bool) (Output, error) {
	opts := []gpiocdev.LineReqOption{gpiocdev.AsOutput(0)}
	if activeLow {
		opts = append(opts, gpiocdev.AsActiveLow)
	}
	l, err := c.chip.RequestLine(offset, opts...)
	if err != nil {
		return nil, fmt.Errorf("request output line %d: %w", offset, err)
	}
	return cdevLine{l}, nil
}

type cdevLine struct{ l *gpiocdev.Line }

func (o cdevLine) Set(active bool) error {
	v := 0
	if active {
		v = 1
	}
	return o.l.SetValue(v)
}

func (o cdevLine) Close() error { return o.l.Close() }

// Watch requests an input line with edge events on both edges.
func (c *Cdev) Watch(offset int, fn func(active bool)) (io.Closer, error) {
	l, err := c.chip.RequestLine(offset, gpiocdev.AsInput, gpiocdev.WithBothEdges,
		gpiocdev.WithEventHandler(func(e gpiocdev.LineEvent) { fn(e.Type == gpiocdev.LineEventRisingEdge) }))
	if err != nil {
		return nil, fmt.Errorf("request input line %d: %w", offset, err)
	}
	v, err := l.Value()
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("read input line %d: %w", offset, err)
	}
	fn(v == 1)
	return l, nil
}

// Close releases the chip; lines requested from it stay valid until closed.
func (c *Cdev) Close() error { return c.chip.Close() }

// Sim is an in-memory chip: outputs record their history, inputs are
// driven with SetInput. It is safe for concurrent use.
type Sim struct {
	mu       sync.Mutex
	outputs  map[int]*[]bool
	watchers map[int]func(bool)
	inputs   map[int]bool
}

var _ Chip = (*Sim)(nil)

// NewSim returns an empty simulated chip.
func NewSim() *Sim {
	return &Sim{outputs: map[int]*[]bool{}, watchers: map[int]func(bool){}, inputs: map[int]bool{}}
}

// Output requests a simulated output.
func (s *Sim) Output(offset int, activeLow bool) (Output, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.outputs[offset]; ok {
		return nil, fmt.Errorf("line %d: busy", offset)
	}
	h := []bool{false}
	s.outputs[offset] = &h
	return &simOutput{s: s, offset: offset}, nil
}

type simOutput struct {
	s      *Sim
	offset int
}

func (o *simOutput) Set(active bool) error {
	o.s.mu.Lock()
	defer o.s.mu.Unlock()
	h := o.s.outputs[o.offset]
	*h = append(*h, active)
	return nil
}

func (o *simOutput) Close() error {
	o.s.mu.Lock()
	defer o.s.mu.Unlock()
	delete(o.s.outputs, o.offset)
	return nil
}

// History returns every value an output was set to, starting with the
// initial inactive state.
func (s *Sim) History(offset int) []bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h, ok := s.outputs[offset]; ok {
		return append([]bool(nil), *h...)
	}
	return nil
}

// Value returns an output's current value.
func (s *Sim) Value(offset int) bool {
	h := s.History(offset)
	return len(h) > 0 && h[len(h)-1]
}

// Watch registers fn for SetInput on offset.
func (s *Sim) Watch(offset int, fn func(bool)) (io.Closer, error) {
	s.mu.Lock()
	s.watchers[offset] = fn
	v := s.inputs[offset]
	s.mu.Unlock()
	fn(v)
	return closerFunc(func() error {
		s.mu.Lock()
		delete(s.watchers, offset)
		s.mu.Unlock()
		return nil
	}), nil
}

// SetInput drives a simulated input line.
func (s *Sim) SetInput(offset int, active bool) {
	s.mu.Lock()
	s.inputs[offset] = active
	fn := s.watchers[offset]
	s.mu.Unlock()
	if fn != nil {
		fn(active)
	}
}

// Close does nothing.
func (s *Sim) Close() error { return nil }

type closerFunc func() error

func (f closerFunc) Close() error { return f() }
