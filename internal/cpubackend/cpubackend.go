//go:generate go run ./internal/genops

// Package cpubackend is a gomlx compute.Backend that runs convolutions,
// pooling, batch norm, ReLU and bias additions with aerie's CPU kernels
// (internal/kernels) and every other op with gomlx's pure-Go backend.
//
// gobackend keeps its executors internal, so ops cannot be added to it.
// Instead a Builder here forwards ops into a chain of gobackend segments:
// each op this backend runs itself (ops.go: ConvGeneral, ReduceWindow,
// SelectAndScatterMax, the BatchNorm ops, Where, and some Add, ReduceSum
// and Transpose) ends the current segment, and the next standard op starts
// a new one. A value crossing a cut becomes an output of the segment that
// made it and a parameter of the one that uses it. Buffers are gobackend's
// own, shared with the kernels without copies; a kernel's results live in
// slots of a per-call frame, reused across calls and, once no step reads
// them, by later results of their shape (planSlots).
package cpubackend

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/gobackend"
	"github.com/gomlx/compute/shapes"
)

// Name is this backend's name in GOMLX_BACKEND and compute.Register.
const Name = "aerie"

// Backend wraps a gobackend instance.
type Backend struct {
	base compute.Backend
	caps compute.Capabilities
}

var _ compute.Backend = (*Backend)(nil)

// Get returns the process-wide instance, over gobackend's singleton, or
// with GOMAXPROCS=1 over a gobackend that runs a segment's ops in order:
// its default starts a goroutine per op, which one core only pays for.
var Get = sync.OnceValue(func() *Backend {
	if runtime.GOMAXPROCS(0) == 1 {
		if base, err := gobackend.New("ops_sequential"); err == nil {
			return New(base)
		}
	}
	return New(gobackend.GetBackend())
})

// New wraps base, which must be a gobackend instance: segments are
// compiled by it and kernels read its buffers' memory.
func New(base compute.Backend) *Backend {
	caps := base.Capabilities().Clone()
	// Closures would have to live inside one segment; gomlx builds
	// without them when the backend says so.
	caps.Functions = false
	for _, op := range []compute.OpType{compute.OpTypeBatchNormForTraining, compute.OpTypeBatchNormForInference, compute.OpTypeBatchNormGradient} {
		caps.Operations[op] = true // ops.go
	}
	return &Backend{base: base, caps: caps}
}

func init() {
	compute.Register(Name, func(string) (compute.Backend, error) { return Get(), nil })
}

// Name implements compute.Backend.
func (b *Backend) Name() string { return "aerie CPU kernels over " + b.base.Name() }

// String implements compute.Backend.
func (b *Backend) String() string { return Name }

// Description implements compute.Backend.
func (b *Backend) Description() string {
	return "aerie convolution and pooling kernels; other ops by " + b.base.Description()
}

// NumDevices implements compute.Backend.
func (b *Backend) NumDevices() int { return 1 }

// DeviceDescription implements compute.Backend.
func (b *Backend) DeviceDescription(d compute.DeviceNum) string { return b.base.DeviceDescription(d) }

// Capabilities implements compute.Backend.
func (b *Backend) Capabilities() compute.Capabilities { return b.caps }

// Finalize implements compute.Backend; the shared gobackend stays.
func (b *Backend) Finalize() {}

// IsFinalized implements compute.Backend.
func (b *Backend) IsFinalized() bool { return b.base.IsFinalized() }

// buffer is a gobackend buffer that names this backend as its owner:
// gomlx ties a tensor to the backend its buffer reports.
type buffer struct {
	compute.Buffer
	be *Backend
}

// Backend implements compute.Buffer.
func (b *buffer) Backend() compute.Backend { return b.be }

// CopyToDevice implements compute.Buffer.
func (b *buffer) CopyToDevice(d compute.DeviceNum) (compute.Buffer, error) {
	c, err := b.Buffer.CopyToDevice(d)
	if err != nil {
		return nil, err
	}
	return b.be.wrap(c), nil
}

func (b *Backend) wrap(buf compute.Buffer) compute.Buffer {
	if buf == nil {
		return nil
	}
	return &buffer{Buffer: buf, be: b}
}

// unwrap returns the gobackend buffer of one of this backend's buffers.
func unwrap(buf compute.Buffer) compute.Buffer {
	if w, ok := buf.(*buffer); ok {
		return w.Buffer
	}
	return buf
}

// BufferFromFlatData implements compute.DataInterface.
func (b *Backend) BufferFromFlatData(d compute.DeviceNum, flat any, shape shapes.Shape) (compute.Buffer, error) {
	buf, err := b.base.BufferFromFlatData(d, flat, shape)
	if err != nil {
		return nil, err
	}
	return b.wrap(buf), nil
}

// HasSharedBuffers implements compute.DataInterface.
func (b *Backend) HasSharedBuffers() bool { return b.base.HasSharedBuffers() }

// NewSharedBuffer implements compute.DataInterface.
func (b *Backend) NewSharedBuffer(d compute.DeviceNum, shape shapes.Shape) (compute.Buffer, any, error) {
	buf, flat, err := b.base.NewSharedBuffer(d, shape)
	if err != nil {
		return nil, nil, err
	}
	return b.wrap(buf), flat, nil
}

// Builder implements compute.Backend.
func (b *Backend) Builder(name string) compute.Builder {
	bl := &Builder{be: b, name: name}
	bl.main = &Function{b: bl, name: compute.MainName}
	return bl
}

// value is a Value of a Builder: made by a step, or a graph parameter
// (step < 0).
type value struct {
	id    int
	shape shapes.Shape
	step  int
	input int           // parameter index when step < 0
	local compute.Value // in its segment, when a segment made it
	deps  []*value      // the values the op that made it read
}

// step is one gobackend segment or one kernel call.
type step struct {
	// A segment.
	b       compute.Builder
	fn      compute.Function
	imports []*value              // in parameter order
	params  map[int]compute.Value // value id → parameter
	exports []*value
	export  map[int]bool
	exe     compute.Executable
	// A kernel; dead when nothing live reads its results.
	k       kernel
	args    []*value
	results []*value
	dead    bool
}

// kernel is an op run by this package on gobackend buffers' memory.
type kernel interface {
	// run computes out, the results' flat data, from in, the step's
	// arguments'.
	run(out, in []any)
	shapes() []shapes.Shape
}

// Builder records a computation as segments and kernels.
type Builder struct {
	be      *Backend
	name    string
	main    *Function
	values  []*value
	steps   []*step
	inputs  []*value
	inNames []string
	outputs []*value
	done    bool
	// reads collects the values the op being forwarded reads (Function.in);
	// segment() hands them to opDeps for the values it makes.
	reads, opDeps []*value
	live          []bool // value id → an output depends on it (prune)
}

var _ compute.Builder = (*Builder)(nil)

// Name implements compute.Builder.
func (b *Builder) Name() string { return b.name }

// Main implements compute.Builder.
func (b *Builder) Main() compute.Function { return b.main }

// NewFunction implements compute.Builder: not offered (Capabilities).
func (b *Builder) NewFunction(name string) (compute.Function, error) {
	return nil, fmt.Errorf("backend %s: function %q: %w", Name, name, compute.ErrNotImplemented)
}

// OpShape implements compute.Builder.
func (b *Builder) OpShape(op compute.Value) (shapes.Shape, error) {
	v, err := b.handle(op)
	if err != nil {
		return shapes.Shape{}, err
	}
	return v.shape, nil
}

// DistributedSPMD implements compute.Builder: one device only.
func (b *Builder) DistributedSPMD(n int) error {
	if n == 1 {
		return nil
	}
	return fmt.Errorf("backend %s has one device, not %d: %w", Name, n, compute.ErrNotImplemented)
}

// DistributedAutoSharding implements compute.Builder: one device only.
func (b *Builder) DistributedAutoSharding(...compute.Mesh) error {
	return fmt.Errorf("backend %s: auto sharding: %w", Name, compute.ErrNotImplemented)
}

// DeviceAssignment implements compute.Builder: device 0 only.
func (b *Builder) DeviceAssignment(devices ...compute.DeviceNum) error {
	for _, d := range devices {
		if d != 0 {
			return fmt.Errorf("backend %s has only device 0, not %d", Name, d)
		}
	}
	return nil
}

func (b *Builder) handle(op compute.Value) (*value, error) {
	v, ok := op.(*value)
	if !ok || v == nil || v.id >= len(b.values) || b.values[v.id] != v {
		return nil, fmt.Errorf("backend %s: value %v is not of builder %q", Name, op, b.name)
	}
	return v, nil
}

func (b *Builder) newValue(shape shapes.Shape, step int, local compute.Value) *value {
	v := &value{id: len(b.values), shape: shape, step: step, local: local}
	b.values = append(b.values, v)
	return v
}

// current returns the open segment, starting one after a kernel.
func (b *Builder) current() (*step, int) {
	if n := len(b.steps); n > 0 && b.steps[n-1].fn != nil {
		return b.steps[n-1], n - 1
	}
	gb := b.be.base.Builder(fmt.Sprintf("%s/%d", b.name, len(b.steps)))
	s := &step{b: gb, fn: gb.Main(), params: map[int]compute.Value{}, export: map[int]bool{}}
	b.steps = append(b.steps, s)
	return s, len(b.steps) - 1
}

// use returns v as a value of the open segment, importing it as a
// parameter when another step made it.
func (b *Builder) use(v *value) (compute.Value, error) {
	s, i := b.current()
	if v.step == i {
		return v.local, nil
	}
	if p, ok := s.params[v.id]; ok {
		return p, nil
	}
	p, err := s.fn.Parameter(fmt.Sprintf("v%d", v.id), v.shape, nil)
	if err != nil {
		return nil, err
	}
	s.params[v.id] = p
	s.imports = append(s.imports, v)
	b.exportFrom(v)
	return p, nil
}

func (b *Builder) exportFrom(v *value) {
	if v.step < 0 {
		return
	}
	if s := b.steps[v.step]; s.fn != nil && !s.export[v.id] {
		s.export[v.id] = true
		s.exports = append(s.exports, v)
	}
}

// addKernel appends a kernel step on args and returns its first result.
func (b *Builder) addKernel(k kernel, args ...*value) *value {
	return b.addKernelResults(k, args...)[0]
}

// addKernelResults appends a kernel step on args and returns its results.
func (b *Builder) addKernelResults(k kernel, args ...*value) []*value {
	for _, a := range args {
		b.exportFrom(a)
	}
	s := &step{k: k, args: args}
	b.steps = append(b.steps, s)
	for _, shape := range k.shapes() {
		v := b.newValue(shape, len(b.steps)-1, nil)
		v.deps = args
		s.results = append(s.results, v)
	}
	return s.results
}

// Compile implements compute.Builder.
func (b *Builder) Compile() (compute.Executable, error) {
	if !b.done {
		return nil, fmt.Errorf("backend %s: compile %q before its main function returned", Name, b.name)
	}
	b.prune()
	if err := b.sinkKernelInputs(); err != nil {
		return nil, err
	}
	for i, s := range b.steps {
		if s.fn == nil || len(s.exports) == 0 {
			continue // a kernel, or a segment nothing reads
		}
		outs := make([]compute.Value, len(s.exports), len(s.exports)+1)
		for j, v := range s.exports {
			outs[j] = v.local
		}
		alive, err := keepAlive(s)
		if err != nil {
			return nil, fmt.Errorf("segment %d of %q: %w", i, b.name, err)
		}
		if alive != nil {
			outs = append(outs, alive)
		}
		if err := s.fn.Return(outs, nil); err != nil {
			return nil, fmt.Errorf("segment %d of %q: %w", i, b.name, err)
		}
		exe, err := s.b.Compile()
		if err != nil {
			return nil, fmt.Errorf("segment %d of %q: %w", i, b.name, err)
		}
		s.exe = exe
	}
	return newExecutable(b)
}

// sinkKernelInputs imports each segment result whose last reader is a
// kernel into the next segment that runs, which keepAlive makes read it.
// Execute then donates it there, and gobackend recycles its memory;
// a finalized gobackend buffer's memory is not reused.
func (b *Builder) sinkKernelInputs() error {
	last := make([]int, len(b.values))
	for i, s := range b.steps {
		for _, v := range s.imports {
			last[v.id] = i
		}
		for _, v := range s.args {
			last[v.id] = i
		}
	}
	for _, v := range b.outputs {
		last[v.id] = -1 // the caller's
	}
	for _, v := range b.values {
		if v.step < 0 || b.steps[v.step].fn == nil || last[v.id] <= v.step || b.steps[last[v.id]].fn != nil {
			continue
		}
		for _, s := range b.steps[last[v.id]+1:] {
			if s.fn == nil || len(s.exports) == 0 { // not compiled
				continue
			}
			p, err := s.fn.Parameter(fmt.Sprintf("v%d", v.id), v.shape, nil)
			if err != nil {
				return err
			}
			s.params[v.id] = p
			s.imports = append(s.imports, v)
			break
		}
	}
	return nil
}

// prune drops what no output depends on: gomlx hands over whole graphs,
// such as the gradient of the input images the first convolution's
// backward pass makes, and a kernel runs unless it is marked dead (a
// segment computes only what it exports).
func (b *Builder) prune() {
	live := make([]bool, len(b.values))
	b.live = live
	for _, v := range b.outputs {
		live[v.id] = true
	}
	for i := len(b.values) - 1; i >= 0; i-- {
		if live[i] {
			for _, d := range b.values[i].deps {
				live[d.id] = true
			}
		}
	}
	for _, s := range b.steps {
		if s.fn == nil {
			s.dead = !slices.ContainsFunc(s.results, func(v *value) bool { return live[v.id] })
			continue
		}
		s.exports = slices.DeleteFunc(s.exports, func(v *value) bool { return !live[v.id] })
	}
}

// Function is the main function of a Builder.
type Function struct {
	b    *Builder
	name string
}

var _ compute.Function = (*Function)(nil)

// Name implements compute.Function.
func (f *Function) Name() string { return f.name }

// Builder implements compute.Function.
func (f *Function) Builder() compute.Builder { return f.b }

// Parent implements compute.Function.
func (f *Function) Parent() compute.Function { return nil }

var errNoFunctions = errors.New("closures are not offered (Capabilities.Functions is false)")

// Closure implements compute.Function: not offered.
func (f *Function) Closure() (compute.Function, error) {
	return nil, fmt.Errorf("backend %s: %w", Name, errNoFunctions)
}

// Call implements compute.Function: not offered.
func (f *Function) Call(compute.Function, ...compute.Value) ([]compute.Value, error) {
	return nil, fmt.Errorf("backend %s: Call: %w", Name, errNoFunctions)
}

// Sort implements compute.Function: not offered.
func (f *Function) Sort(compute.Function, int, bool, ...compute.Value) ([]compute.Value, error) {
	return nil, fmt.Errorf("backend %s: Sort: %w", Name, errNoFunctions)
}

// While implements compute.Function: not offered.
func (f *Function) While(_, _ compute.Function, _ ...compute.Value) ([]compute.Value, error) {
	return nil, fmt.Errorf("backend %s: While: %w", Name, errNoFunctions)
}

// If implements compute.Function: not offered.
func (f *Function) If(compute.Value, compute.Function, compute.Function) ([]compute.Value, error) {
	return nil, fmt.Errorf("backend %s: If: %w", Name, errNoFunctions)
}

// Parameter implements compute.Function.
func (f *Function) Parameter(name string, shape shapes.Shape, sharding *compute.ShardingSpec) (compute.Value, error) {
	if sharding != nil {
		return nil, fmt.Errorf("backend %s: parameter %q: sharding: %w", Name, name, compute.ErrNotImplemented)
	}
	v := f.b.newValue(shape, -1, nil)
	v.input = len(f.b.inputs)
	f.b.inputs = append(f.b.inputs, v)
	f.b.inNames = append(f.b.inNames, name)
	return v, nil
}

// Constant implements compute.Function.
func (f *Function) Constant(flat any, dims ...int) (compute.Value, error) {
	s, _ := f.b.current()
	c, err := s.fn.Constant(flat, dims...)
	if err != nil {
		return nil, err
	}
	f.b.opDeps = nil
	return f.out(c), nil
}

// Shape implements compute.Function.
func (f *Function) Shape(op compute.Value) (shapes.Shape, error) { return f.b.OpShape(op) }

// Return implements compute.Function.
func (f *Function) Return(outputs []compute.Value, shardings []*compute.ShardingSpec) error {
	if f.b.done {
		return fmt.Errorf("backend %s: %q returned twice", Name, f.b.name)
	}
	seen := map[int]bool{}
	for _, o := range outputs {
		v, err := f.b.handle(o)
		if err != nil {
			return err
		}
		// A parameter or a repeated output goes out as a copy, made by
		// the last segment: the caller owns each output buffer.
		if v.step < 0 || seen[v.id] {
			p, err := f.b.use(v)
			if err != nil {
				return err
			}
			s, _ := f.b.current()
			c, err := s.fn.Identity(p)
			if err != nil {
				return err
			}
			f.b.opDeps = []*value{v}
			v = f.out(c).(*value)
		}
		seen[v.id] = true
		f.b.exportFrom(v)
		f.b.outputs = append(f.b.outputs, v)
	}
	f.b.done = true
	return nil
}

// in translates an argument for the open segment.
func (f *Function) in(op compute.Value) (compute.Value, error) {
	v, err := f.b.handle(op)
	if err != nil {
		return nil, err
	}
	f.b.reads = append(f.b.reads, v)
	return f.b.use(v)
}

func (f *Function) ins(ops []compute.Value) ([]compute.Value, error) {
	out := make([]compute.Value, len(ops))
	for i, op := range ops {
		var err error
		if out[i], err = f.in(op); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// segment returns the open segment's gobackend function.
func (f *Function) segment() (compute.Function, error) {
	if f.b.done {
		return nil, fmt.Errorf("backend %s: op after %q returned", Name, f.b.name)
	}
	s, _ := f.b.current()
	f.b.opDeps, f.b.reads = f.b.reads, nil
	return s.fn, nil
}

// out wraps a value the open segment made.
func (f *Function) out(local compute.Value) compute.Value {
	s, i := f.b.current()
	shape, err := s.fn.Shape(local)
	if err != nil {
		panic(fmt.Sprintf("backend %s: shape of a new value: %v", Name, err))
	}
	v := f.b.newValue(shape, i, local)
	v.deps = f.b.opDeps
	return v
}

func (f *Function) outs(locals []compute.Value) []compute.Value {
	out := make([]compute.Value, len(locals))
	for i, l := range locals {
		out[i] = f.out(l)
	}
	return out
}

// isF32 reports whether every shape is float32.
func isF32(ss ...shapes.Shape) bool {
	for _, s := range ss {
		if s.DType != dtypes.Float32 {
			return false
		}
	}
	return true
}

func errShape(what string, got shapes.Shape, want []int) error {
	return fmt.Errorf("backend %s: %s is %s, want dimensions %v", Name, what, got, want)
}

// keepAlive returns a scalar output that reads one element of every
// parameter of s: gobackend drops parameters no output depends on (a
// segment may import a value only dead code reads) and then fails to bind
// them.
func keepAlive(s *step) (compute.Value, error) {
	var sum compute.Value
	for _, v := range s.imports {
		p := s.params[v.id]
		if v.shape.Size() == 0 {
			continue
		}
		x := p
		if r := v.shape.Rank(); r > 0 {
			var err error
			if x, err = s.fn.Slice(p, make([]int, r), ones(r), nil); err != nil {
				return nil, err
			}
			if x, err = s.fn.Reshape(x); err != nil {
				return nil, err
			}
		}
		x, err := s.fn.ConvertDType(x, dtypes.Float32)
		if err != nil {
			return nil, err
		}
		if sum == nil {
			sum = x
		} else if sum, err = s.fn.Add(sum, x); err != nil {
			return nil, err
		}
	}
	return sum, nil
}

func ones(n int) []int {
	v := make([]int, n)
	for i := range v {
		v[i] = 1
	}
	return v
}
