package kernels

import (
	"slices"
	"testing"
)

func TestScratchPoolKeepsZerosOfALayout(t *testing.T) {
	type layout struct{ n int }
	var p scratchPool
	fill := func(buf []float32, v float32) {
		for i := range buf {
			buf[i] = v
		}
	}
	a := p.get(100, layout{1})
	if slices.ContainsFunc(a, func(v float32) bool { return v != 0 }) {
		t.Fatal("a new buffer is not zero")
	}
	fill(a[10:20], 1) // what layout 1 writes
	p.put(a, layout{1})

	if b := p.get(100, layout{1}); b[10] != 1 || b[0] != 0 {
		t.Errorf("layout 1 got back %v…, want its own writes and zeros", b[:12])
	} else {
		p.put(b, layout{1})
	}
	b := p.get(80, layout{2})
	if slices.ContainsFunc(b, func(v float32) bool { return v != 0 }) {
		t.Errorf("layout 2 got a buffer layout 1 wrote without clearing it: %v", b[:20])
	}
	fill(b, 2)
	p.put(b, nil) // written anywhere

	if c := p.get(100, layout{1}); slices.ContainsFunc(c, func(v float32) bool { return v != 0 }) {
		t.Errorf("layout 1 got a buffer of unknown contents without clearing it: %v", c[:20])
	} else {
		p.put(c, layout{1})
	}
}

func TestScratchPoolHoldsOnlyWhatCallsBorrowAtOnce(t *testing.T) {
	var p scratchPool
	small := p.get(10, nil)
	p.put(small, nil)
	big1, big2 := p.get(1000, nil), p.get(1000, nil) // the second is new: the first is borrowed
	p.put(big1, nil)
	p.put(big2, nil)
	if len(p.free) != 2 {
		t.Fatalf("pool holds %d buffers, want the 2 long ones: the short one made way", len(p.free))
	}
	for range 10 {
		x, y := p.get(10, nil), p.get(1000, nil)
		p.put(x, nil)
		p.put(y, nil)
	}
	if len(p.free) != 2 {
		t.Errorf("after reuse the pool holds %d buffers, want 2", len(p.free))
	}
}

func TestScratchPoolLendsTheShortestThatFits(t *testing.T) {
	var p scratchPool
	long, short := p.get(1000, nil), p.get(100, nil)
	p.put(long, nil)
	p.put(short, nil)
	if b := p.get(50, nil); cap(b) != 100 {
		t.Errorf("a request for 50 got a buffer of %d, want the one of 100", cap(b))
	}
}
