package kernels

import "sync"

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

// sharedBuffers holds the free lists plans share, by key and size.
var sharedBuffers sync.Map

// sharedFreeList returns the free list of float32 buffers of size
// elements shared by every plan that asks with an equal key. The key must
// determine which elements the plans write, so that the zeros a buffer
// keeps everywhere else (see paddedInput.fill) hold for all of them. The
// memory kept is then a buffer per concurrent call and layout, not per
// plan: the convolutions of a network's blocks share their layouts.
func sharedFreeList(key any, size int) *freeList[[]float32] {
	type sized struct {
		key  any
		size int
	}
	l, _ := sharedBuffers.LoadOrStore(sized{key, size}, newFreeList(func() []float32 { return make([]float32, size) }))
	return l.(*freeList[[]float32])
}
