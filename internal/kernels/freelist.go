package kernels

import (
	"slices"
	"sync"
)

// freeList keeps a plan's buffers for its next calls. Unlike sync.Pool it
// never drops them at a garbage collection, which in steady state made a
// large buffer be allocated again every few calls.
type freeList[T any] struct {
	mu   sync.Mutex
	free []T
	new  func() T
}

func newFreeList[T any](newT func() T) *freeList[T] { return &freeList[T]{new: newT} }

func (l *freeList[T]) get() T {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := len(l.free); n > 0 {
		v := l.free[n-1]
		l.free = l.free[:n-1]
		return v
	}
	return l.new()
}

func (l *freeList[T]) put(v T) {
	l.mu.Lock()
	l.free = append(l.free, v)
	l.mu.Unlock()
}

// scratchPool lends float32 buffers to the plans of every layout. A call
// needs a few at a time (a padded copy, a packed kernel, accumulators),
// so one pool holds that few for all plans, where a free list per layout
// kept one for every layout of a network (resnet-small: 34 MB per lane).
//
// A plan that relies on zeros it never writes (a padded copy's borders)
// names its layout: the key of everything that decides which elements it
// writes. A buffer that layout wrote last comes back as it left it; any
// other comes back cleared over the requested length.
type scratchPool struct {
	mu   sync.Mutex
	free []scratch
}

type scratch struct {
	buf    []float32
	layout any // the layout that wrote buf last; nil: unknown
}

// scratchBuffers is the pool every plan borrows from.
var scratchBuffers scratchPool

// get returns n elements that are zero wherever layout does not write,
// or, with a nil layout, of any contents: the shortest idle buffer that
// layout wrote last, else the shortest idle one (cleared), else a new
// one. Layouts must be comparable.
func (p *scratchPool) get(n int, layout any) []float32 {
	p.mu.Lock()
	pick, own := -1, false
	for i, s := range p.free {
		mine := layout != nil && s.layout == layout
		switch {
		case cap(s.buf) < n:
		case pick < 0, mine && !own, mine == own && cap(s.buf) < cap(p.free[pick].buf):
			pick, own = i, mine
		}
	}
	if pick < 0 {
		// None is long enough: the shorter ones make way for a new one.
		p.free = slices.DeleteFunc(p.free, func(s scratch) bool { return cap(s.buf) < n })
		p.mu.Unlock()
		return make([]float32, n)
	}
	s := p.free[pick]
	p.free = slices.Delete(p.free, pick, pick+1)
	p.mu.Unlock()
	buf := s.buf[:n]
	if layout != nil && !own {
		clear(buf)
	}
	return buf
}

// put returns buf, last written by layout (nil: a layout nothing relies
// on).
func (p *scratchPool) put(buf []float32, layout any) {
	p.mu.Lock()
	p.free = append(p.free, scratch{buf[:cap(buf)], layout})
	p.mu.Unlock()
}
