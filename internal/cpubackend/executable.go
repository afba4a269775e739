package cpubackend

import (
	"fmt"
	"sync"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/shapes"
)

// Executable runs a Builder's steps in order. It is safe for concurrent
// use: every call keeps its buffers in its own frame, and a frame keeps its
// kernels' results for the calls that reuse it.
type Executable struct {
	be      *Backend
	b       *Builder
	lastUse []int // value id → last step reading it; -1 never
	isOut   []bool
	// stand-ins for dead values a live segment imports: a dead kernel's
	// result that only dead ops of the segment read.
	standIns map[int]compute.Buffer
	// slot[id] is the frame slot holding kernel result id (-1: an output,
	// made anew every call); nSlots is how many a frame has.
	slot   []int
	nSlots int
	mu     sync.Mutex
	frames []*frame // idle; kept out of a sync.Pool so GC keeps their buffers
}

type frame struct {
	bufs []compute.Buffer
	// kept[slot] is the buffer of the kernel results in that slot (see
	// planSlots), reused by every call that gets this frame.
	kept        []compute.Buffer
	args        []compute.Buffer
	donate      []bool
	flats, outs []any
}

var _ compute.Executable = (*Executable)(nil)

func newExecutable(b *Builder) (*Executable, error) {
	e := &Executable{be: b.be, b: b, lastUse: make([]int, len(b.values)), isOut: make([]bool, len(b.values)), standIns: map[int]compute.Buffer{}}
	for i := range e.lastUse {
		e.lastUse[i] = -1
	}
	for i, s := range b.steps {
		for _, v := range s.imports {
			e.lastUse[v.id] = i
			if s.exe != nil && !b.live[v.id] && e.standIns[v.id] == nil {
				// Its contents are never used: only dead ops and keepAlive's
				// discarded sum read it.
				buf, _, err := b.be.base.NewSharedBuffer(0, v.shape)
				if err != nil {
					return nil, err
				}
				e.standIns[v.id] = buf
			}
		}
		for _, v := range s.args {
			e.lastUse[v.id] = i
		}
	}
	for _, v := range b.outputs {
		e.isOut[v.id] = true
	}
	e.slot, e.nSlots = planSlots(b, e.lastUse, e.isOut)
	return e, nil
}

// planSlots assigns every kernel result that is not an output a slot of
// the frame: the slot of an earlier result of its shape that no step
// reads any more, or a new one. A frame then holds the kernel results live
// at once (in a training step, about the forward pass's activations), not
// every kernel result of the step.
func planSlots(b *Builder, lastUse []int, isOut []bool) (slot []int, n int) {
	slot = make([]int, len(b.values))
	for i := range slot {
		slot[i] = -1
	}
	free := map[string][]int{} // shape → slots no later step reads
	freedAfter := make([][]*value, len(b.steps))
	for si, s := range b.steps {
		if s.fn == nil && !s.dead {
			for _, r := range s.results {
				if isOut[r.id] {
					continue
				}
				key := r.shape.String()
				if k := len(free[key]); k > 0 {
					slot[r.id], free[key] = free[key][k-1], free[key][:k-1]
				} else {
					slot[r.id], n = n, n+1
				}
				last := max(lastUse[r.id], si) // a result nothing reads is free after its step
				freedAfter[last] = append(freedAfter[last], r)
			}
		}
		for _, r := range freedAfter[si] {
			key := r.shape.String()
			free[key] = append(free[key], slot[r.id])
		}
	}
	return slot, n
}

func (e *Executable) getFrame() *frame {
	e.mu.Lock()
	defer e.mu.Unlock()
	if n := len(e.frames); n > 0 {
		f := e.frames[n-1]
		e.frames = e.frames[:n-1]
		return f
	}
	return &frame{bufs: make([]compute.Buffer, len(e.b.values)), kept: make([]compute.Buffer, e.nSlots)}
}

func (e *Executable) putFrame(f *frame) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.frames = append(e.frames, f)
}

// Finalize implements compute.Executable.
func (e *Executable) Finalize() {
	for _, s := range e.b.steps {
		if s.exe != nil {
			s.exe.Finalize()
		}
	}
	for _, b := range e.standIns {
		_ = b.Finalize()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, f := range e.frames {
		for _, b := range f.kept {
			if b != nil {
				_ = b.Finalize()
			}
		}
	}
	e.frames = nil
}

// Inputs implements compute.Executable.
func (e *Executable) Inputs() ([]string, []shapes.Shape) {
	ss := make([]shapes.Shape, len(e.b.inputs))
	for i, v := range e.b.inputs {
		ss[i] = v.shape
	}
	return e.b.inNames, ss
}

// Outputs implements compute.Executable.
func (e *Executable) Outputs() []shapes.Shape {
	ss := make([]shapes.Shape, len(e.b.outputs))
	for i, v := range e.b.outputs {
		ss[i] = v.shape
	}
	return ss
}

// Execute implements compute.Executable. Donated inputs are freed (or
// donated on to a segment) after their last use, like intermediates.
func (e *Executable) Execute(inputs []compute.Buffer, donate []bool, device compute.DeviceNum) ([]compute.Buffer, error) {
	if device != 0 {
		return nil, fmt.Errorf("backend %s has only device 0, not %d", Name, device)
	}
	if len(inputs) != len(e.b.inputs) {
		return nil, fmt.Errorf("backend %s: %q takes %d inputs, got %d", Name, e.b.name, len(e.b.inputs), len(inputs))
	}
	f := e.getFrame()
	defer e.putFrame(f)
	// A kernel's result that is not an output stays in its slot of f.kept
	// for the next call: it is neither finalized nor donated.
	owned := func(id int) bool {
		return !e.isOut[id] && e.slot[id] < 0 && (e.b.values[id].step >= 0 || donateOf(donate, e.b.values[id].input))
	}
	for i, v := range e.b.inputs {
		f.bufs[v.id] = unwrap(inputs[i])
	}
	release := func(si int) {
		for id, last := range e.lastUse {
			if last == si && f.bufs[id] != nil && owned(id) {
				_ = f.bufs[id].Finalize()
				f.bufs[id] = nil
			}
		}
	}
	fail := func(err error) ([]compute.Buffer, error) {
		for id, b := range f.bufs {
			if b != nil && owned(id) {
				_ = b.Finalize()
			}
			f.bufs[id] = nil
		}
		for _, v := range e.b.outputs {
			if b := f.bufs[v.id]; b != nil {
				_ = b.Finalize()
			}
		}
		clear(f.bufs)
		return nil, err
	}
	for si, s := range e.b.steps {
		if (s.fn != nil && s.exe == nil) || s.dead {
			continue
		}
		if s.exe != nil {
			f.args, f.donate = f.args[:0], f.donate[:0]
			for _, v := range s.imports {
				if b, ok := e.standIns[v.id]; ok {
					f.args, f.donate = append(f.args, b), append(f.donate, false)
					continue
				}
				f.args = append(f.args, f.bufs[v.id])
				// The segment may reuse a buffer nothing reads after it.
				d := e.lastUse[v.id] == si && owned(v.id)
				f.donate = append(f.donate, d)
				if d {
					f.bufs[v.id] = nil
				}
			}
			outs, err := s.exe.Execute(f.args, f.donate, 0)
			if err != nil {
				return fail(fmt.Errorf("segment %d of %q: %w", si, e.b.name, err))
			}
			for j, v := range s.exports {
				f.bufs[v.id] = outs[j]
			}
			for _, extra := range outs[len(s.exports):] { // keepAlive's
				_ = extra.Finalize()
			}
		} else {
			f.flats = f.flats[:0]
			for _, v := range s.args {
				flat, err := f.bufs[v.id].Data()
				if err != nil {
					return fail(err)
				}
				f.flats = append(f.flats, flat)
			}
			f.outs = f.outs[:0]
			for _, r := range s.results {
				var out compute.Buffer
				if sl := e.slot[r.id]; sl >= 0 {
					out = f.kept[sl]
				}
				if out == nil {
					var err error
					if out, _, err = e.be.base.NewSharedBuffer(0, r.shape); err != nil {
						return fail(err)
					}
					if sl := e.slot[r.id]; sl >= 0 {
						f.kept[sl] = out
					}
				}
				flat, err := out.Data()
				if err != nil {
					return fail(err)
				}
				f.bufs[r.id] = out
				f.outs = append(f.outs, flat)
			}
			s.k.run(f.outs, f.flats)
		}
		release(si)
	}
	res := make([]compute.Buffer, len(e.b.outputs))
	for i, v := range e.b.outputs {
		res[i] = e.be.wrap(f.bufs[v.id])
	}
	clear(f.bufs)
	return res, nil
}

func donateOf(donate []bool, i int) bool { return i < len(donate) && donate[i] }
