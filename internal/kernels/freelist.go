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
