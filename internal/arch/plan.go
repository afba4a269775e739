package arch

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/aerie-ml/aerie/internal/strictyaml"
)

// Limits of a plan.
const (
	// MaxParams keeps the weights within internal/model's 256 MiB
	// safetensors limit.
	MaxParams = 64 << 20
	// MaxFLOPs and MaxActivationBytes are per image, and bound what
	// planning a hostile file computes.
	MaxFLOPs           = 1e13
	MaxActivationBytes = 1 << 40
	// MaxSide is the largest image side (internal/dataset's limit).
	MaxSide = 8192
)

// Input is the shape of one image: height, width and channels, from the
// dataset's manifest.
type Input struct{ H, W, C int }

// Shape is the shape of one image's feature map: [H, W, C], or [N] once
// flat.
type Shape []int

func (s Shape) String() string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = strconv.Itoa(d)
	}
	return strings.Join(parts, "×")
}

// Size is the number of values.
func (s Shape) Size() int64 {
	n := int64(1)
	for _, d := range s {
		n *= int64(d)
	}
	return n
}

// Init says how a parameter starts.
type Init int

const (
	// InitUniform draws from ±1/sqrt(FanIn), PyTorch's default for Conv2d
	// and Linear, as internal/model does.
	InitUniform Init = iota
	InitZeros
	InitOnes
)

func (i Init) String() string {
	switch i {
	case InitUniform:
		return "uniform"
	case InitZeros:
		return "zeros"
	case InitOnes:
		return "ones"
	}
	return "Init(" + strconv.Itoa(int(i)) + ")"
}

// Param is one named tensor of the model.
type Param struct {
	Name  string
	Shape []int
	FanIn int // for InitUniform
	Init  Init
}

// Mask is one dropout layer's rate and the per-image shape of its mask.
type Mask struct {
	Rate  float64
	Shape Shape
}

// Row is one layer of a plan. A residual block's row counts its own work
// (the shortcut's add and projection); its branch's rows follow it, one
// level deeper.
type Row struct {
	Layer  *Layer
	Depth  int
	Output Shape
	// Projection is a residual block's 1×1 projection stride, 0 when the
	// shortcut is the identity.
	Projection int
	Params     int64 // trainable values
	FLOPs      int64 // forward, per image; a multiply-add counts as 2
	// ActivationBytes is what the forward pass keeps for the backward pass,
	// per image, as float32.
	ActivationBytes int64
}

// Plan is an architecture applied to a dataset's input shape and classes.
type Plan struct {
	Name  string
	Input Input
	// Normalization is what the input is normalized by: the file's, or
	// DefaultNormalization for the input's channels.
	Normalization Normalization
	Classes       int
	Rows          []Row
	// Params are the trainable tensors in the order the layers use them,
	// weight before bias; State the others (batch norm's running
	// statistics), also saved with the model.
	Params, State []Param
	Dropouts      []Mask
	// NumParams, FLOPs and ActivationBytes are the totals of the rows;
	// ActivationBytes includes the input image.
	NumParams, FLOPs, ActivationBytes int64
}

// Plan computes every layer's output shape, parameters and costs for
// images of shape in and a dataset of classes classes. A layer that does
// not fit its input is an *Error at the layer's line.
func (s *Spec) Plan(in Input, classes int) (*Plan, error) {
	if in.H < 1 || in.H > MaxSide || in.W < 1 || in.W > MaxSide || in.C < 1 || in.C > MaxChannels {
		return nil, fmt.Errorf("plan %s: input %d×%d×%d: sides must be 1 to %d and channels 1 to %d", s.Name, in.H, in.W, in.C, MaxSide, MaxChannels)
	}
	if classes < 1 || classes > MaxUnits {
		return nil, fmt.Errorf("plan %s: %d classes, want 1 to %d", s.Name, classes, MaxUnits)
	}
	if len(s.Layers) == 0 {
		return nil, fmt.Errorf("plan %s: no layers", s.Name)
	}
	norm := s.Normalization
	if norm.IsZero() {
		norm = DefaultNormalization(in.C)
	} else if err := norm.Check(in.C); err != nil {
		var ne *NormalizationError
		errors.As(err, &ne)
		return nil, &Error{File: s.File, Line: s.NormalizationLine, Field: strictyaml.Join(s.NormalizationPath, ne.Field), Msg: ne.Msg}
	}
	pl := &planner{spec: s, p: &Plan{Name: s.Name, Input: in, Normalization: norm, Classes: classes}}
	shape := Shape{in.H, in.W, in.C}
	pl.p.ActivationBytes = 4 * shape.Size()
	out, err := pl.seq(s.Layers, shape, 0)
	if err != nil {
		return nil, err
	}
	if !slices.Equal(out, Shape{classes}) {
		last := &s.Layers[len(s.Layers)-1]
		return nil, pl.errorf(last, "the network's output is %s, want %d (the dataset's classes): end with dense units: classes", out, classes)
	}
	return pl.p, nil
}

type planner struct {
	spec *Spec
	p    *Plan
}

func (pl *planner) errorf(l *Layer, format string, args ...any) error {
	return &Error{File: pl.spec.File, Line: l.Line, Field: l.Path, Msg: fmt.Sprintf(format, args...)}
}

func (pl *planner) seq(layers []Layer, in Shape, depth int) (Shape, error) {
	for i := range layers {
		var err error
		if in, err = pl.layer(&layers[i], in, depth); err != nil {
			return nil, err
		}
	}
	return in, nil
}

// layer plans l on input in and appends its row (and its branch's).
func (pl *planner) layer(l *Layer, in Shape, depth int) (Shape, error) {
	spatial := func() error {
		if len(in) != 3 {
			return pl.errorf(l, "input is %s, flat: %s works on feature maps, put it before flatten, globalavgpool or dense", in, l.Op)
		}
		return nil
	}
	row := Row{Layer: l, Depth: depth}
	at := len(pl.p.Rows)
	pl.p.Rows = append(pl.p.Rows, row)
	switch l.Op {
	case Conv:
		if err := spatial(); err != nil {
			return nil, err
		}
		c := in[2]
		if c%l.Groups != 0 || l.Filters%l.Groups != 0 {
			return nil, pl.errorf(l, "groups %d must divide the input's %d channels and the %d filters", l.Groups, c, l.Filters)
		}
		h, w := window(in[0], l.Kernel, l.Stride, l.Padding), window(in[1], l.Kernel, l.Stride, l.Padding)
		if h < 1 || w < 1 {
			return nil, pl.errorf(l, "input %s is smaller than the %d×%d kernel with padding %d", in, l.Kernel, l.Kernel, l.Padding)
		}
		row.Output = Shape{h, w, l.Filters}
		row.Params, row.FLOPs, row.ActivationBytes = pl.conv(l.Name, l.Kernel, l.Stride, l.Padding, c, l.Filters, l.Groups, l.Bias, row.Output)
	case BatchNorm:
		ch := in[len(in)-1]
		row.Output = in
		pl.p.Params = append(pl.p.Params,
			Param{Name: l.Name + ".scale", Shape: []int{ch}, Init: InitOnes},
			Param{Name: l.Name + ".offset", Shape: []int{ch}, Init: InitZeros})
		pl.p.State = append(pl.p.State,
			Param{Name: l.Name + ".mean", Shape: []int{ch}, Init: InitZeros},
			Param{Name: l.Name + ".variance", Shape: []int{ch}, Init: InitOnes})
		row.Params = 2 * int64(ch)
		// Inference folds the statistics into one scale and shift; training
		// keeps the normalized input and the output.
		row.FLOPs, row.ActivationBytes = 2*in.Size(), 2*4*in.Size()
	case ReLU, SiLU:
		row.Output = in
		row.FLOPs, row.ActivationBytes = in.Size(), 4*in.Size()
		if l.Op == SiLU {
			row.FLOPs = 4 * in.Size() // exp, add, divide, multiply
		}
	case MaxPool, AvgPool:
		if err := spatial(); err != nil {
			return nil, err
		}
		h, w := window(in[0], l.Kernel, l.Stride, 0), window(in[1], l.Kernel, l.Stride, 0)
		if h < 1 || w < 1 {
			return nil, pl.errorf(l, "input %s is smaller than the %d×%d window", in, l.Kernel, l.Kernel)
		}
		row.Output = Shape{h, w, in[2]}
		k2 := int64(l.Kernel * l.Kernel)
		if l.Op == MaxPool {
			k2-- // comparisons
		}
		row.FLOPs, row.ActivationBytes = k2*row.Output.Size(), 4*row.Output.Size()
	case GlobalAvgPool:
		if err := spatial(); err != nil {
			return nil, err
		}
		row.Output = Shape{in[2]}
		row.FLOPs, row.ActivationBytes = in.Size(), 4*int64(in[2])
	case Dropout:
		row.Output = in
		row.ActivationBytes = 4 * in.Size() // identity at inference, so no FLOPs
		pl.p.Dropouts = append(pl.p.Dropouts, Mask{Rate: l.Rate, Shape: in})
	case Flatten:
		if len(in) != 3 {
			return nil, pl.errorf(l, "input is %s, already flat", in)
		}
		row.Output = Shape{int(in.Size())} // a reshape: nothing kept, nothing computed
	case Dense:
		if len(in) != 1 {
			return nil, pl.errorf(l, "input is %s, a feature map: put flatten or globalavgpool before dense", in)
		}
		units := l.Units
		if units == UnitsClasses {
			units = pl.p.Classes
		}
		row.Output = Shape{units}
		pl.p.Params = append(pl.p.Params, Param{Name: l.Name + ".weight", Shape: []int{in[0], units}, FanIn: in[0]})
		row.Params = int64(in[0]) * int64(units)
		row.FLOPs = 2 * row.Params
		if l.Bias {
			pl.p.Params = append(pl.p.Params, Param{Name: l.Name + ".bias", Shape: []int{units}, FanIn: in[0]})
			row.Params += int64(units)
			row.FLOPs += int64(units)
		}
		row.ActivationBytes = 4 * int64(units)
	case Residual:
		if err := spatial(); err != nil {
			return nil, err
		}
		out, err := pl.seq(l.Layers, in, depth+1)
		if err != nil {
			return nil, err
		}
		if len(out) != 3 {
			return nil, pl.errorf(l, "the branch's output is %s, flat: it must be a feature map to add to the input %s", out, in)
		}
		row.Output = out
		if !slices.Equal(out, in) {
			s := projection(in, out)
			if s == 0 {
				return nil, pl.errorf(l, "the branch maps %s to %s: no 1×1 projection of the input (stride s gives ⌈%d/s⌉×⌈%d/s⌉) has its height and width", in, out, in[0], in[1])
			}
			row.Projection = s
			row.Params, row.FLOPs, row.ActivationBytes = pl.conv(l.Name+".proj", 1, s, 0, in[2], out[2], 1, true, out)
		}
		row.FLOPs += out.Size()
		row.ActivationBytes += 4 * out.Size()
	}
	pl.p.Rows[at] = row
	pl.p.NumParams += row.Params
	pl.p.FLOPs += row.FLOPs
	pl.p.ActivationBytes += row.ActivationBytes
	switch {
	case pl.p.NumParams > MaxParams:
		return nil, pl.errorf(l, "the model has %d parameters after this layer, more than %d", pl.p.NumParams, MaxParams)
	case pl.p.FLOPs > MaxFLOPs:
		return nil, pl.errorf(l, "the model needs %d FLOPs per image after this layer, more than %g", pl.p.FLOPs, float64(MaxFLOPs))
	case pl.p.ActivationBytes > MaxActivationBytes:
		return nil, pl.errorf(l, "the model keeps %d activation bytes per image after this layer, more than %d", pl.p.ActivationBytes, int64(MaxActivationBytes))
	}
	return row.Output, nil
}

// conv records a convolution's parameters and returns its trainable
// values, FLOPs and activation bytes. It is built as im2col and a matmul,
// so training keeps the patches too, unless they are the input itself.
func (pl *planner) conv(name string, k, stride, pad, in, filters, groups int, bias bool, out Shape) (params, flops, act int64) {
	fanIn := k * k * in / groups
	pl.p.Params = append(pl.p.Params, Param{Name: name + ".weight", Shape: []int{k, k, in / groups, filters}, FanIn: fanIn})
	pixels := int64(out[0]) * int64(out[1])
	params = int64(fanIn) * int64(filters)
	flops = 2 * int64(fanIn) * pixels * int64(filters)
	if bias {
		pl.p.Params = append(pl.p.Params, Param{Name: name + ".bias", Shape: []int{filters}, FanIn: fanIn})
		params += int64(filters)
		flops += pixels * int64(filters)
	}
	act = 4 * out.Size()
	if k != 1 || stride != 1 || pad != 0 {
		act += 4 * int64(k*k*in) * pixels
	}
	return params, flops, act
}

// window is the output side of a window of size k moved by stride over a
// side padded by pad zeros on each end.
func window(side, k, stride, pad int) int {
	if side+2*pad < k {
		return 0
	}
	return (side+2*pad-k)/stride + 1
}

// projection returns the smallest stride of a 1×1 convolution that maps
// the input's height and width to the output's, or 0 if none does.
func projection(in, out Shape) int {
	for s := 1; s <= max(in[0], in[1]); s++ {
		if window(in[0], 1, s, 0) == out[0] && window(in[1], 1, s, 0) == out[1] {
			return s
		}
	}
	return 0
}

// String renders the plan as a table: one row per layer with its line,
// output shape, trainable parameters, forward FLOPs and activation KiB per
// image, then the totals.
func (p *Plan) String() string {
	in := Shape{p.Input.H, p.Input.W, p.Input.C}
	rows := [][]string{
		{"line", "layer", "output", "params", "FLOPs", "activation KiB"},
		{"", "input", in.String(), "0", "0", kib(4 * in.Size())},
	}
	for _, r := range p.Rows {
		l := r.Layer
		desc := l.describe()
		if l.Name != "" {
			desc = l.Name + " " + desc
		}
		if r.Projection > 0 {
			desc += fmt.Sprintf(" + proj 1×1/%d", r.Projection)
		}
		rows = append(rows, []string{strconv.Itoa(l.Line), strings.Repeat("  ", r.Depth) + desc, r.Output.String(),
			group(r.Params), group(r.FLOPs), kib(r.ActivationBytes)})
	}
	rows = append(rows, []string{"", "total", Shape{p.Classes}.String(), group(p.NumParams), group(p.FLOPs), kib(p.ActivationBytes)})
	widths := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s on %d×%d×%d, %d classes, input normalized by %s\n", p.Name, p.Input.H, p.Input.W, p.Input.C, p.Classes, p.Normalization)
	for _, r := range rows {
		for i, c := range r {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			switch {
			case i == 1: // the layer column reads left-aligned
				b.WriteString("  " + c + pad)
			case i == 0:
				b.WriteString(pad + c)
			default:
				b.WriteString("  " + pad + c)
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func kib(b int64) string { return strconv.FormatFloat(float64(b)/1024, 'f', 1, 64) }

// group writes n with thousands separators: 421,642.
func group(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
