//lint:file-ignore ST1001 gomlx graph-building code reads as math with graph dot-imported

package model

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"

	"github.com/aerie-ml/aerie/internal/arch"
)

// Net builds the gomlx graph of an architecture plan, for training and
// inference alike: the trainer and the device run the same code.
//
// Images are NHWC, [batch, H, W, C] of the plan's input, normalized to
// [-1, 1]. Inside, feature maps are channel-first, [C, batch, H, W] (see
// conv2d), and flat ones batch-first, [batch, N].
type Net struct {
	plan *arch.Plan
	// bn are the plan's batch norm layers, in State order (two tensors
	// each: mean, variance).
	bn []*arch.Layer
}

// New returns the builder of plan p.
func New(p *arch.Plan) *Net {
	n := &Net{plan: p}
	for i := range p.Rows {
		if l := p.Rows[i].Layer; l.Op == arch.BatchNorm {
			n.bn = append(n.bn, l)
		}
	}
	return n
}

// Plan returns the plan n builds.
func (n *Net) Plan() *arch.Plan { return n.plan }

// Init returns seeded initial values of the plan's Params: uniform in
// ±1/sqrt(FanIn) (PyTorch's default for Conv2d and Linear) from a PCG
// stream per parameter index, zeros or ones for batch norm.
func (n *Net) Init(seed uint64) [][]float32 {
	out := make([][]float32, len(n.plan.Params))
	for i, p := range n.plan.Params {
		out[i] = initial(p, seed, i)
	}
	return out
}

// InitState returns the initial State: running means 0, variances 1.
func (n *Net) InitState() [][]float32 {
	out := make([][]float32, len(n.plan.State))
	for i, p := range n.plan.State {
		out[i] = initial(p, 0, i)
	}
	return out
}

func initial(p arch.Param, seed uint64, i int) []float32 {
	v := make([]float32, size(p.Shape))
	switch p.Init {
	case arch.InitUniform:
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		bound := 1 / math.Sqrt(float64(p.FanIn))
		for j := range v {
			v[j] = float32((2*rng.Float64() - 1) * bound)
		}
	case arch.InitOnes:
		for j := range v {
			v[j] = 1
		}
	}
	return v
}

// Logits builds the inference forward pass of x: dropout is the identity
// and batch norm uses the running statistics in state (State order).
func (n *Net) Logits(params, state []*Node, x *Node) *Node {
	if len(state) != len(n.plan.State) {
		panic(fmt.Sprintf("%s: %d state tensors, want %d", n.plan.Name, len(state), len(n.plan.State)))
	}
	logits, _ := n.forward(params, x, &pass{state: state})
	return logits
}

// TrainLogits builds the training forward pass of x. masks is nil for no
// dropout, or holds one [batch, Mask.Shape...] tensor per plan.Dropouts
// whose elements are 0 or 1/(1-rate): they come from the caller so that
// training is reproducible and independent of how a batch is split.
//
// Batch norm normalizes by the statistics of ghost batches of ghost images
// (consecutive in x, whose batch must be a multiple of ghost), so a ghost
// batch's output does not depend on what else is in x. stats holds, per
// State tensor, the sum over x's ghost batches of the batch statistic
// (mean; unbiased variance): summed over lanes and ranks like gradients and
// divided by the number of ghost batches, they give UpdateState the
// global batch's average whatever its split.
func (n *Net) TrainLogits(params []*Node, x *Node, masks []*Node, ghost int) (logits *Node, stats []*Node) {
	if masks != nil && len(masks) != len(n.plan.Dropouts) {
		panic(fmt.Sprintf("%s: %d dropout masks, want %d", n.plan.Name, len(masks), len(n.plan.Dropouts)))
	}
	if b := x.Shape().Dimensions[0]; len(n.bn) > 0 && (ghost < 1 || b%ghost != 0) {
		panic(fmt.Sprintf("%s: batch %d is not made of ghost batches of %d", n.plan.Name, b, ghost))
	}
	p := &pass{train: true, masks: masks, ghost: ghost}
	logits, p = n.forward(params, x, p)
	return logits, p.stats
}

// UpdateState moves the running statistics toward the average of sums
// (TrainLogits' stats summed over a global batch of ghosts ghost batches)
// by each batch norm layer's momentum, in place.
func (n *Net) UpdateState(state, sums [][]float32, ghosts int) {
	for i, l := range n.bn {
		m := float32(l.Momentum)
		for k := range 2 {
			run, sum := state[2*i+k], sums[2*i+k]
			for j := range run {
				run[j] = (1-m)*run[j] + m*(sum[j]/float32(ghosts))
			}
		}
	}
}

// pass is the state of one forward pass.
type pass struct {
	train        bool
	masks, state []*Node
	ghost        int
	params       []*Node
	pi, di, si   int // next param, mask and batch norm
	row          int // next plan row
	stats        []*Node
}

func (n *Net) forward(params []*Node, x *Node, p *pass) (*Node, *pass) {
	if len(params) != len(n.plan.Params) {
		panic(fmt.Sprintf("%s: %d params, want %d", n.plan.Name, len(params), len(n.plan.Params)))
	}
	in := n.plan.Input
	if d := x.Shape().Dimensions; len(d) != 4 || d[1] != in.H || d[2] != in.W || d[3] != in.C {
		panic(fmt.Sprintf("%s: input %v, want [batch, %d, %d, %d]", n.plan.Name, d, in.H, in.W, in.C))
	}
	p.params = params
	d := x.Shape().Dimensions
	if in.C == 1 {
		x = Reshape(x, 1, d[0], d[1], d[2]) // channel-first is a reshape
	} else {
		x = TransposeAllAxes(x, 3, 0, 1, 2)
	}
	var top []*arch.Layer // the plan's rows at depth 0 are the file's layers
	for i := range n.plan.Rows {
		if r := &n.plan.Rows[i]; r.Depth == 0 {
			top = append(top, r.Layer)
		}
	}
	return n.seq(p, x, top), p
}

func (p *pass) param() *Node {
	v := p.params[p.pi]
	p.pi++
	return v
}

// seq applies layers to x in order.
func (n *Net) seq(p *pass, x *Node, layers []*arch.Layer) *Node {
	for i := 0; i < len(layers); i++ {
		l := layers[i]
		row := n.plan.Rows[p.row]
		p.row++
		switch l.Op {
		case arch.Conv:
			w := p.param()
			var b *Node
			if l.Bias {
				b = p.param()
			}
			x = conv2d(x, w, b, convGeom{kernel: l.Kernel, stride: l.Stride, padding: l.Padding, groups: l.Groups})
		case arch.BatchNorm:
			scale, offset := p.param(), p.param()
			if p.train {
				var mean, variance *Node
				x, mean, variance = batchNormTrain(x, scale, offset, l.Epsilon, p.ghost)
				p.stats = append(p.stats, mean, variance)
			} else {
				x = batchNorm(x, scale, offset, p.state[2*p.si], p.state[2*p.si+1], l.Epsilon)
			}
			p.si++
		case arch.ReLU:
			// ReLU commutes with max-pooling: pooling first does the ReLU
			// (and its gradient) on fewer elements.
			if i+1 < len(layers) && layers[i+1].Op == arch.MaxPool {
				next := layers[i+1]
				x = maxPool(x, next.Kernel, next.Stride)
				p.row++
				i++
			}
			x = reluOp(x)
		case arch.SiLU:
			x = Mul(x, Sigmoid(x))
		case arch.MaxPool:
			x = maxPool(x, l.Kernel, l.Stride)
		case arch.AvgPool:
			x = avgPool(x, l.Kernel, l.Stride)
		case arch.GlobalAvgPool:
			x = TransposeAllAxes(ReduceMean(x, 2, 3), 1, 0) // [batch, C]
		case arch.Dropout:
			if p.train && p.masks != nil {
				m := p.masks[p.di]
				if m.Rank() == 4 { // [batch, H, W, C], the plan's order
					m = TransposeAllAxes(m, 3, 0, 1, 2)
				}
				x = Mul(x, m)
			}
			p.di++
		case arch.Flatten:
			x = flattenOp(x)
		case arch.Dense:
			w := p.param()
			x = Dot(x, w).Product()
			if l.Bias {
				x = Add(x, InsertAxes(p.param(), 0))
			}
		case arch.Residual:
			branch := make([]*arch.Layer, len(l.Layers))
			for j := range l.Layers {
				branch[j] = &l.Layers[j]
			}
			y := n.seq(p, x, branch)
			if row.Projection > 0 {
				w, b := p.param(), p.param()
				x = conv2d(x, w, b, convGeom{kernel: 1, stride: row.Projection, groups: 1})
			}
			x = Add(y, x)
		default:
			panic(fmt.Sprintf("%s: layer %s at line %d: no builder", n.plan.Name, l.Op, l.Line))
		}
	}
	return x
}

// flattenOp turns channel-first [C, batch, H, W] into [batch, H·W·C], in
// (h, w, c) order per image: the order the plan's dense weights use.
func flattenOp(x *Node) *Node {
	x = TransposeAllAxes(x, 1, 2, 3, 0)
	return Reshape(x, x.Shape().Dimensions[0], -1)
}

// convGeom is a convolution's window: square kernel, stride, zeros on
// each side, channel groups.
type convGeom struct{ kernel, stride, padding, groups int }

// conv2d convolves channel-first x, [C, batch, H, W], with kernel [k, k,
// C/groups, F] (HWIO) and adds bias [F] unless it is nil, as im2col and one
// matmul (a batched one per group): the Go backend's matmul has SIMD
// kernels, its convolution is a naive loop (10× slower). Channel-first
// makes im2col a concatenation of whole [C, batch, H', W'] blocks, and puts
// every matmul of the forward and backward passes in a layout the backend
// multiplies without transposing the large operand. Padding is built with
// Concatenate because Pad has no gradient.
func conv2d(x, kernel, bias *Node, g convGeom) *Node {
	dims := x.Shape().Dimensions
	c, b := dims[0], dims[1]
	k, s := g.kernel, g.stride
	f := kernel.Shape().Dimensions[3]
	if convAccelerated(x.Graph(), k, g.padding, g.groups) {
		y := convGeneral(x, kernel, s, g.padding, g.groups)
		if bias != nil {
			y = Add(y, Reshape(bias, f, 1, 1, 1))
		}
		return y
	}
	if g.padding > 0 {
		x = padZeros(x, g.padding)
	}
	h, w := x.Shape().Dimensions[2], x.Shape().Dimensions[3]
	ho, wo := (h-k)/s+1, (w-k)/s+1
	var cols *Node
	if k == 1 && s == 1 {
		cols = Reshape(x, c, b*ho*wo)
	} else {
		patches := make([]*Node, 0, k*k)
		for dy := range k {
			for dx := range k {
				patches = append(patches, Slice(x, AxisRange(), AxisRange(), window(dy, ho, s), window(dx, wo, s)))
			}
		}
		// Rows in (dy, dx, channel) order: the kernel's [k, k, in, out] order.
		cols = Reshape(Concatenate(patches, 0), k*k*c, b*ho*wo)
	}
	var y *Node
	if g.groups == 1 {
		weights := TransposeAllAxes(Reshape(kernel, k*k*c, f), 1, 0) // [out, k·k·in], small
		y = Dot(weights, cols).Product()
	} else {
		// Group i convolves input channels [i·C/g, (i+1)·C/g) into filters
		// [i·F/g, (i+1)·F/g): one batched matmul over the groups.
		gs, cg, fg, px := g.groups, c/g.groups, f/g.groups, b*ho*wo
		cols = Reshape(TransposeAllAxes(Reshape(cols, k*k, gs, cg, px), 1, 0, 2, 3), gs, k*k*cg, px)
		weights := TransposeAllAxes(Reshape(kernel, k*k*cg, gs, fg), 1, 2, 0) // [groups, F/g, k·k·C/g]
		y = Reshape(DotGeneral(weights, []int{2}, []int{0}, cols, []int{1}, []int{0}), f, px)
	}
	y = Reshape(y, f, b, ho, wo)
	if bias != nil {
		y = Add(y, Reshape(bias, f, 1, 1, 1))
	}
	return y
}

// window selects n positions from start with step stride along one axis.
func window(start, n, stride int) SliceAxisSpec {
	r := AxisRange(start, start+stride*(n-1)+1)
	if stride > 1 {
		r = r.Stride(stride)
	}
	return r
}

// padZeros adds p zeros on each side of channel-first x's height and width.
func padZeros(x *Node, p int) *Node {
	g := x.Graph()
	d := x.Shape().Dimensions
	c, b, h, w := d[0], d[1], d[2], d[3]
	zrow := Zeros(g, shapes.Make(x.DType(), c, b, p, w))
	x = Concatenate([]*Node{zrow, x, zrow}, 2)
	zcol := Zeros(g, shapes.Make(x.DType(), c, b, h+2*p, p))
	return Concatenate([]*Node{zcol, x, zcol}, 3)
}

// reluOp is max(x, 0) as a Where, whose gradient is one more Where; the
// gradient of Max takes five elementwise ops.
func reluOp(x *Node) *Node {
	zero := ScalarZero(x.Graph(), x.DType()) // broadcast by the backend, never materialized
	return Where(GreaterThan(x, zero), x, zero)
}

// maxPool is a k×k max-pool with stride s of channel-first x, without
// padding. A window that tiles (s = k) is a reshape and ReduceMax, after
// dropping the rows and columns no window covers; overlapping or gapped
// windows are the elementwise Max of k² strided slices.
func maxPool(x *Node, k, s int) *Node {
	if accelerated(x.Graph()) {
		return maxPoolWindow(x, k, s)
	}
	if k == s {
		return ReduceMax(tiles(x, k), 3, 5)
	}
	var y *Node
	for _, sl := range windows(x, k, s) {
		if y == nil {
			y = sl
		} else {
			y = Max(y, sl)
		}
	}
	return y
}

// avgPool is maxPool's average counterpart.
func avgPool(x *Node, k, s int) *Node {
	if k == s {
		return ReduceMean(tiles(x, k), 3, 5)
	}
	var y *Node
	for _, sl := range windows(x, k, s) {
		if y == nil {
			y = sl
		} else {
			y = Add(y, sl)
		}
	}
	return MulScalar(y, 1/float64(k*k))
}

// tiles reshapes x, [C, batch, H, W], to [C, batch, H/k, k, W/k, k].
func tiles(x *Node, k int) *Node {
	d := x.Shape().Dimensions
	c, b, ho, wo := d[0], d[1], d[2]/k, d[3]/k
	if ho*k != d[2] || wo*k != d[3] {
		x = Slice(x, AxisRange(), AxisRange(), AxisRange(0, ho*k), AxisRange(0, wo*k))
	}
	return Reshape(x, c, b, ho, k, wo, k)
}

// windows returns, for each of the k² offsets of a k×k window moved by s,
// the strided slice of x, [C, batch, H', W'], it sees.
func windows(x *Node, k, s int) []*Node {
	d := x.Shape().Dimensions
	ho, wo := (d[2]-k)/s+1, (d[3]-k)/s+1
	out := make([]*Node, 0, k*k)
	for dy := range k {
		for dx := range k {
			out = append(out, Slice(x, AxisRange(), AxisRange(), window(dy, ho, s), window(dx, wo, s)))
		}
	}
	return out
}

// bnView tells how batch norm sees x: a channel-first feature map [C,
// batch, H, W] has statistics per channel over batch, H and W; flat [batch,
// N] per feature over the batch.
func bnView(x *Node) (featureMap bool) { return x.Rank() == 4 }

// batchNorm normalizes x by running statistics, folded into one scale and
// shift per feature.
func batchNorm(x, scale, offset, mean, variance *Node, eps float64) *Node {
	if batchNormAccelerated(x) {
		axis := 1 // [batch, N]
		if bnView(x) {
			axis = 0
		}
		return InternalBatchNormForInference(x, scale, offset, mean, variance, float32(eps), axis)
	}
	a := Mul(scale, Rsqrt(AddScalar(variance, eps)))
	b := Sub(offset, Mul(mean, a))
	if bnView(x) {
		c := x.Shape().Dimensions[0]
		return Add(Mul(x, Reshape(a, c, 1, 1, 1)), Reshape(b, c, 1, 1, 1))
	}
	return Add(Mul(x, InsertAxes(a, 0)), InsertAxes(b, 0))
}

// batchNormTrain normalizes x by the statistics of each ghost batch of
// ghost consecutive images and returns, per feature, the sums over the
// ghost batches of their means and unbiased variances.
func batchNormTrain(x, scale, offset *Node, eps float64, ghost int) (y, meanSum, varSum *Node) {
	if bnView(x) && batchNormAccelerated(x) {
		return batchNormTrainOp(x, scale, offset, eps, ghost)
	}
	d := x.Shape().Dimensions
	var xr *Node
	var axes []int
	var bshape []int // of a per-feature, per-ghost statistic, to broadcast
	var feat func(*Node) *Node
	if bnView(x) {
		c, b, h, w := d[0], d[1], d[2], d[3]
		xr = Reshape(x, c, b/ghost, ghost, h, w)
		axes = []int{2, 3, 4}
		bshape = []int{c, b / ghost, 1, 1, 1}
		feat = func(v *Node) *Node { return Reshape(v, c, 1, 1, 1, 1) }
	} else {
		b, nf := d[0], d[1]
		xr = Reshape(x, b/ghost, ghost, nf)
		axes = []int{1}
		bshape = []int{b / ghost, 1, nf}
		feat = func(v *Node) *Node { return Reshape(v, 1, 1, nf) }
	}
	n := 1
	for _, a := range axes {
		n *= xr.Shape().Dimensions[a]
	}
	mean := ReduceMean(xr, axes...)
	centered := Sub(xr, Reshape(mean, bshape...))
	variance := ReduceMean(Square(centered), axes...)
	// Rsqrt has no gradient in gomlx; Div of Sqrt does.
	norm := Div(centered, Reshape(Sqrt(AddScalar(variance, eps)), bshape...))
	y = Reshape(Add(Mul(norm, feat(scale)), feat(offset)), d...)
	unbiased := variance
	if n > 1 {
		unbiased = MulScalar(variance, float64(n)/float64(n-1))
	}
	ghostAxis := 1 // of the [C, ghosts] statistics
	if !bnView(x) {
		ghostAxis = 0 // [ghosts, N]
	}
	return y, StopGradient(ReduceSum(mean, ghostAxis)), StopGradient(ReduceSum(unbiased, ghostAxis))
}

func size(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}
