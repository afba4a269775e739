//lint:file-ignore ST1001 gomlx graph-building code reads as math with graph dot-imported

package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
)

// Input image geometry: 28×28 grayscale.
const (
	Height     = 28
	Width      = 28
	NumClasses = 10
)

type layerKind int

const (
	conv3x3 layerKind = iota // 3×3, stride 1, same padding
	relu
	maxPool2
	dropout
	flatten
	dense
)

type layer struct {
	kind    layerKind
	name    string // parameter prefix for conv and dense
	in, out int
	rate    float64 // dropout
}

// Param describes one trainable tensor of an architecture.
type Param struct {
	Name  string
	Shape []int
	// FanIn bounds the initial values: uniform in ±1/sqrt(FanIn), as
	// PyTorch initializes Conv2d and Linear.
	FanIn int
}

// Dropout describes one dropout layer: its rate and the per-example shape
// of its mask.
type Dropout struct {
	Rate  float64
	Shape []int
}

// Arch is a model architecture: a parameter list and a graph builder.
// Images are NHWC, [batch, 28, 28, 1], normalized to [-1, 1].
type Arch struct {
	Name     string
	layers   []layer
	params   []Param
	dropouts []Dropout
}

var registry = map[string]*Arch{
	// cnn is the published prototype's model, exactly.
	"cnn": newArch("cnn", []layer{
		{kind: conv3x3, name: "conv1", in: 1, out: 32}, {kind: relu}, {kind: maxPool2}, {kind: dropout, rate: 0.25},
		{kind: conv3x3, name: "conv2", in: 32, out: 64}, {kind: relu}, {kind: maxPool2}, {kind: dropout, rate: 0.25},
		{kind: flatten},
		{kind: dense, name: "fc1", in: 7 * 7 * 64, out: 128}, {kind: relu}, {kind: dropout, rate: 0.5},
		{kind: dense, name: "fc2", in: 128, out: NumClasses},
	}),
	// small has the same kinds of layers at a fraction of the cost, for tests.
	"small": newArch("small", []layer{
		{kind: conv3x3, name: "conv1", in: 1, out: 4}, {kind: relu}, {kind: maxPool2}, {kind: dropout, rate: 0.25},
		{kind: maxPool2},
		{kind: flatten},
		{kind: dense, name: "fc1", in: 7 * 7 * 4, out: NumClasses},
	}),
}

// Names lists the registered architectures.
func Names() []string {
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Lookup returns the architecture called name.
func Lookup(name string) (*Arch, error) {
	a, ok := registry[name]
	if !ok {
		return nil, fmt.Errorf("unknown architecture %q (known: %v)", name, Names())
	}
	return a, nil
}

func newArch(name string, layers []layer) *Arch {
	a := &Arch{Name: name, layers: layers}
	h, w, c := Height, Width, 1
	flat := 0
	for _, l := range layers {
		switch l.kind {
		case conv3x3:
			if l.in != c {
				panic(fmt.Sprintf("%s: %s takes %d channels, gets %d", name, l.name, l.in, c))
			}
			a.params = append(a.params,
				Param{Name: l.name + ".weight", Shape: []int{3, 3, l.in, l.out}, FanIn: 9 * l.in},
				Param{Name: l.name + ".bias", Shape: []int{l.out}, FanIn: 9 * l.in})
			c = l.out
		case maxPool2:
			h, w = h/2, w/2
		case dropout:
			shape := []int{h, w, c}
			if flat > 0 {
				shape = []int{flat}
			}
			a.dropouts = append(a.dropouts, Dropout{Rate: l.rate, Shape: shape})
		case flatten:
			flat = h * w * c
		case dense:
			if l.in != flat {
				panic(fmt.Sprintf("%s: %s takes %d inputs, gets %d", name, l.name, l.in, flat))
			}
			a.params = append(a.params,
				Param{Name: l.name + ".weight", Shape: []int{l.in, l.out}, FanIn: l.in},
				Param{Name: l.name + ".bias", Shape: []int{l.out}, FanIn: l.in})
			flat = l.out
		}
	}
	return a
}

// Params lists the trainable tensors in the order Logits takes them.
func (a *Arch) Params() []Param { return a.params }

// Dropouts lists the dropout layers in the order Logits takes their masks.
func (a *Arch) Dropouts() []Dropout { return a.dropouts }

// NumParams is the number of trainable scalars.
func (a *Arch) NumParams() int {
	n := 0
	for _, p := range a.params {
		n += size(p.Shape)
	}
	return n
}

func size(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// Init returns seeded initial values for Params: uniform in
// ±1/sqrt(fan-in), the PyTorch default for Conv2d and Linear.
func (a *Arch) Init(seed uint64) [][]float32 {
	out := make([][]float32, len(a.params))
	for i, p := range a.params {
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		bound := 1 / math.Sqrt(float64(p.FanIn))
		v := make([]float32, size(p.Shape))
		for j := range v {
			v[j] = float32((2*rng.Float64() - 1) * bound)
		}
		out[i] = v
	}
	return out
}

// Logits builds the forward pass: x is [batch, 28, 28, 1] float32 in
// [-1, 1], params follow Params. masks is nil for inference, or holds one
// [batch, Dropout.Shape...] tensor per dropout layer whose elements are 0
// or 1/(1-rate); masks come from the caller so that training is
// reproducible and independent of how a batch is split across workers.
func (a *Arch) Logits(params []*Node, x *Node, masks []*Node) *Node {
	if len(params) != len(a.params) {
		panic(fmt.Sprintf("%s: %d params, want %d", a.Name, len(params), len(a.params)))
	}
	if masks != nil && len(masks) != len(a.dropouts) {
		panic(fmt.Sprintf("%s: %d dropout masks, want %d", a.Name, len(masks), len(a.dropouts)))
	}
	// Inside, feature maps are channel-first, [C, batch, H, W]: see conv.
	// The input has one channel, so that is a reshape.
	d := x.Shape().Dimensions
	x = Reshape(x, 1, d[0], d[1], d[2])
	pi, di := 0, 0
	for i := 0; i < len(a.layers); i++ {
		l := a.layers[i]
		switch l.kind {
		case conv3x3:
			x = conv(x, params[pi], params[pi+1])
			pi += 2
		case relu:
			// ReLU commutes with max-pooling: pooling first does the ReLU
			// (and its gradient) on a quarter of the elements.
			if i+1 < len(a.layers) && a.layers[i+1].kind == maxPool2 {
				x = pool2(x)
				i++
			}
			x = reluOp(x)
		case maxPool2:
			x = pool2(x)
		case dropout:
			if masks != nil {
				m := masks[di]
				if m.Rank() == 4 { // [batch, H, W, C] like the parameters' order
					m = TransposeAllAxes(m, 3, 0, 1, 2)
				}
				x = Mul(x, m)
			}
			di++
		case flatten:
			// In [H, W, C] order per example, the order fc1's weights use.
			x = TransposeAllAxes(x, 1, 2, 3, 0)
			x = Reshape(x, x.Shape().Dimensions[0], -1)
		case dense:
			x = Add(Dot(x, params[pi]).Product(), InsertAxes(params[pi+1], 0))
			pi += 2
		}
	}
	return x
}

// conv is a 3×3 same-padded convolution of channel-first x, [C, batch, H,
// W], as im2col and one matmul: the Go backend's matmul has SIMD kernels,
// its convolution is a naive loop (10× slower). Channel-first makes im2col
// a concatenation of whole [C, batch, H, W] blocks, and puts every matmul
// of the forward and backward passes in a layout the backend multiplies
// without transposing the large operand. Padding is built with Concatenate
// because Pad has no gradient.
func conv(x, kernel, bias *Node) *Node {
	g := x.Graph()
	dims := x.Shape().Dimensions
	c, b, h, w := dims[0], dims[1], dims[2], dims[3]
	out := kernel.Shape().Dimensions[3]
	zrow := Zeros(g, shapes.Make(dtypes.Float32, c, b, 1, w))
	x = Concatenate([]*Node{zrow, x, zrow}, 2)
	zcol := Zeros(g, shapes.Make(dtypes.Float32, c, b, h+2, 1))
	x = Concatenate([]*Node{zcol, x, zcol}, 3)
	patches := make([]*Node, 0, 9)
	for dy := range 3 {
		for dx := range 3 {
			patches = append(patches, Slice(x, AxisRange(), AxisRange(), AxisRange(dy, dy+h), AxisRange(dx, dx+w)))
		}
	}
	// Rows in (dy, dx, channel) order: the kernel's [3, 3, in, out] order.
	cols := Reshape(Concatenate(patches, 0), 9*c, b*h*w)
	weights := TransposeAllAxes(Reshape(kernel, 9*c, out), 1, 0) // [out, 9·in], small
	y := Dot(weights, cols).Product()
	return Add(Reshape(y, out, b, h, w), Reshape(bias, out, 1, 1, 1))
}

// reluOp is max(x, 0) as a Where, whose gradient is one more Where; the
// gradient of Max takes five elementwise ops.
func reluOp(x *Node) *Node {
	zero := ScalarZero(x.Graph(), x.DType()) // broadcast by the backend, never materialized
	return Where(GreaterThan(x, zero), x, zero)
}

// pool2 is a 2×2 max-pool with stride 2 of channel-first x as a reshape and
// ReduceMax.
func pool2(x *Node) *Node {
	d := x.Shape().Dimensions
	c, b, h, w := d[0], d[1], d[2], d[3]
	return ReduceMax(Reshape(x, c, b, h/2, 2, w/2, 2), 3, 5)
}

// Match checks that ts are exactly a's parameters (F32, right shapes, no
// others) and returns their values in Params order.
func (a *Arch) Match(ts []Tensor, meta map[string]string) ([][]float32, error) {
	if got, ok := meta[MetadataArchitecture]; ok && got != a.Name {
		return nil, fmt.Errorf("weights are for architecture %q, not %q", got, a.Name)
	}
	byName := make(map[string]*Tensor, len(ts))
	for i := range ts {
		byName[ts[i].Name] = &ts[i]
	}
	out := make([][]float32, len(a.params))
	for i, p := range a.params {
		t, ok := byName[p.Name]
		if !ok {
			return nil, fmt.Errorf("weights lack tensor %q of architecture %s", p.Name, a.Name)
		}
		if t.DType != F32 || !slices.Equal(t.Shape, p.Shape) {
			return nil, fmt.Errorf("tensor %q is %s%v, want F32%v", p.Name, t.DType, t.Shape, p.Shape)
		}
		out[i] = t.Float32s()
		delete(byName, p.Name)
	}
	for name := range byName {
		return nil, fmt.Errorf("tensor %q is not a parameter of architecture %s", name, a.Name)
	}
	return out, nil
}
