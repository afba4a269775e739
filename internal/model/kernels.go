//lint:file-ignore ST1001 gomlx graph-building code reads as math with graph dot-imported

package model

import (
	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"

	"github.com/aerie-ml/aerie/internal/cpubackend"
)

// The one place that picks how convolutions, max-pools and batch norms
// are expressed. On aerie's backend (internal/cpubackend) a convolution is
// one ConvGeneral, a max-pool one ReduceWindow and a batch norm one
// BatchNormForTraining or BatchNormForInference: the backend runs them,
// and the ConvGeneral, Reverse, SelectAndScatter and BatchNormGradient ops
// gomlx builds for their gradients, with its own kernels. Any other
// backend gets the im2col, reshape and elementwise formulations, which
// gobackend runs fastest.

// accelerated reports whether g's backend runs aerie's kernels.
func accelerated(g *Graph) bool {
	_, ok := g.Backend().(*cpubackend.Backend)
	return ok
}

// channelFirst is the axes of a channel-first [C, batch, H, W] feature
// map convolved by an HWIO kernel [k, k, C/groups, F].
var channelFirst = ConvolveAxesConfig{
	InputBatch: 1, InputChannels: 0, InputSpatial: []int{2, 3},
	KernelInputChannels: 2, KernelOutputChannels: 3, KernelSpatial: []int{0, 1},
	OutputBatch: 1, OutputChannels: 0, OutputSpatial: []int{2, 3},
}

// convAccelerated reports whether a convolution of g's with kernel k,
// padding p and groups runs as one ConvGeneral, at any stride. gomlx v0.28.2
// builds wrong gradients for grouped ConvGeneral and cannot build them
// for even kernels, so those keep im2col. Strided ones (the gradients
// dilate by the stride) and 1×1 ones are right:
// TestKernelsTrainLikeGoBackend trains resnet-small's against im2col.
func convAccelerated(g *Graph, k, p, groups int) bool {
	return accelerated(g) && groups == 1 && k%2 == 1 && p <= k-1
}

// convGeneral convolves channel-first x with kernel: stride s and p zeros
// on each side of both spatial axes, in groups.
func convGeneral(x, kernel *Node, s, p, groups int) *Node {
	return Convolve(x, kernel).AxesConfig(channelFirst).StridePerAxis(s, s).
		PaddingPerDim([][2]int{{p, p}, {p, p}}).ChannelGroupCount(groups).Done()
}

// maxPoolWindow is a k×k max-pool with stride s of channel-first x,
// without padding, as one ReduceWindow.
func maxPoolWindow(x *Node, k, s int) *Node {
	return BackendReduceWindow(x, compute.ReduceOpMax, []int{1, 1, k, k}, []int{1, 1, s, s}, nil, nil, nil)
}

// batchNormAccelerated reports whether x's batch norm runs as one op: the
// backend's kernels are float32 only, and gobackend has none to fall
// back to.
func batchNormAccelerated(x *Node) bool {
	return accelerated(x.Graph()) && x.DType() == dtypes.Float32
}

// batchNormTrainOp is batchNormTrain of a channel-first feature map as
// one BatchNormForTraining: with the ghost batches as features of their
// own ([C·ghosts, ghost·H·W], contiguous rows), each channel's scale and
// offset broadcast to its ghosts.
func batchNormTrainOp(x, scale, offset *Node, eps float64, ghost int) (y, meanSum, varSum *Node) {
	d := x.Shape().Dimensions
	c, ghosts, n := d[0], d[1]/ghost, ghost*d[2]*d[3]
	perGhost := func(v *Node) *Node { return Reshape(BroadcastToDims(Reshape(v, c, 1), c, ghosts), c*ghosts) }
	yr, mean, variance := InternalBatchNormForTraining(Reshape(x, c*ghosts, n), perGhost(scale), perGhost(offset), float32(eps), 0)
	if n > 1 {
		variance = MulScalar(variance, float64(n)/float64(n-1)) // unbiased
	}
	sum := func(v *Node) *Node { return StopGradient(ReduceSum(Reshape(v, c, ghosts), 1)) }
	return Reshape(yr, d...), sum(mean), sum(variance)
}
