//lint:file-ignore ST1001 gomlx graph-building code reads as math with graph dot-imported

package model

import (
	"math"
	"testing"

	. "github.com/gomlx/gomlx/core/graph"

	"github.com/aerie-ml/aerie/internal/arch"
	"github.com/aerie-ml/aerie/internal/cpubackend"
)

// TestKernelsTrainLikeGoBackend trains each model for the golden steps on
// aerie's backend (ConvGeneral and ReduceWindow run by internal/kernels)
// and on gobackend (im2col and reshapes), and compares losses and weights:
// the two formulations differ only in the order of float sums.
func TestKernelsTrainLikeGoBackend(t *testing.T) {
	for _, name := range []string{"cnn", "small", "resnet-small"} {
		t.Run(name, func(t *testing.T) {
			net := New(testPlan(t, name, arch.Input{H: 28, W: 28, C: 1}, 10))
			n := goldenNet{init: net.Init(42), logits: func(params []*Node, x *Node, masks []*Node) *Node {
				logits, _ := net.TrainLogits(params, x, masks, goldenBatch) // one ghost batch
				return logits
			}}
			for _, q := range net.Plan().Params {
				n.shapes = append(n.shapes, q.Shape)
			}
			for _, d := range net.Plan().Dropouts {
				n.dropouts, n.rates = append(n.dropouts, d.Shape), append(n.rates, d.Rate)
			}
			wantLoss, want := goldenTrainWeights(t, n)
			n.backend = cpubackend.Get()
			gotLoss, got := goldenTrainWeights(t, n)
			for i := range wantLoss {
				if math.Abs(float64(gotLoss[i]-wantLoss[i])) > 1e-4*math.Abs(float64(wantLoss[i])) {
					t.Errorf("loss of step %d = %g, gobackend %g", i+1, gotLoss[i], wantLoss[i])
				}
			}
			// Weights agree to 1e-4 and their updates to 1% of the tensor's
			// largest: a gradient that sums terms which nearly cancel (a
			// batch norm offset's) is rounding left over, and its size
			// depends on the order of the sum.
			for i, p := range net.Plan().Params {
				largest := 0.0
				for j, w := range want[i] {
					largest = max(largest, math.Abs(float64(w-n.init[i][j])))
				}
				for j, w := range want[i] {
					if d := math.Abs(float64(got[i][j] - w)); d > 1e-4*math.Abs(float64(w))+1e-2*largest {
						t.Fatalf("%s[%d] = %g after %d steps, gobackend %g (from %g; largest update %g)", p.Name, j, got[i][j], goldenSteps, w, n.init[i][j], largest)
					}
				}
			}
		})
	}
}
