//lint:file-ignore ST1001 gomlx graph-building code reads as math with graph dot-imported

package model

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/gobackend"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/aerie-ml/aerie/internal/arch"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// goldenSteps and goldenBatch size the golden training run: a few SGD steps
// on one fixed batch, with dropout, are enough to exercise every forward
// and backward op of the architecture.
const (
	goldenSteps = 3
	goldenBatch = 8
	goldenLR    = 0.05
)

// goldenNet is what the golden run needs of an architecture.
type goldenNet struct {
	shapes   [][]int
	init     [][]float32
	dropouts [][]int   // per-example mask shapes
	rates    []float64 // their rates
	logits   func(params []*Node, x *Node, masks []*Node) *Node
	// backend runs the steps; nil is gobackend, which the golden files
	// were recorded with (another backend sums in another order).
	backend compute.Backend
}

// goldenTrain runs goldenSteps SGD steps from n.init on a batch drawn from
// a fixed seed and returns a fingerprint of the resulting weights (see
// fingerprint) and each step's loss.
func goldenTrain(t *testing.T, n goldenNet) (string, []float32) {
	losses, weights := goldenTrainWeights(t, n)
	return fingerprint(weights), losses
}

// fingerprint summarizes each weight tensor by its L2 norm and its dot
// product with a fixed random ±1 probe, one line per tensor. Unlike a hash
// of the bits, it survives gobackend summing in another order on another
// CPU's SIMD path, while any change to what the model computes moves it.
func fingerprint(weights [][]float32) string {
	rng := rand.New(rand.NewPCG(13, 14))
	var b strings.Builder
	for i, w := range weights {
		var norm, probe float64
		for _, v := range w {
			norm += float64(v) * float64(v)
			probe += float64(v) * float64(2*rng.IntN(2)-1)
		}
		fmt.Fprintf(&b, "weights %d: norm %.7g probe %.7g\n", i, math.Sqrt(norm), probe)
	}
	return b.String()
}

// sameGolden reports whether got and want hold the same words, numbers
// equal to a relative 1e-4: another CPU's summation order, not a change.
func sameGolden(got, want string) bool {
	g, w := strings.Fields(got), strings.Fields(want)
	if len(g) != len(w) {
		return false
	}
	for i := range g {
		a, errA := strconv.ParseFloat(strings.Trim(g[i], "[]"), 64)
		b, errB := strconv.ParseFloat(strings.Trim(w[i], "[]"), 64)
		switch {
		case errA != nil || errB != nil:
			if g[i] != w[i] {
				return false
			}
		case math.Abs(a-b) > 1e-4*math.Max(math.Abs(a), math.Abs(b))+1e-6:
			return false
		}
	}
	return true
}

// goldenTrainWeights is goldenTrain that also returns the weights.
func goldenTrainWeights(t *testing.T, n goldenNet) ([]float32, [][]float32) {
	t.Helper()
	rng := rand.New(rand.NewPCG(11, 12))
	x := make([]float32, goldenBatch*28*28)
	for i := range x {
		x[i] = float32(rng.IntN(256))/127.5 - 1
	}
	labels := make([]int32, goldenBatch)
	for i := range labels {
		labels[i] = int32(rng.IntN(10))
	}
	var masks []*tensors.Tensor
	for i, shape := range n.dropouts {
		m := make([]float32, goldenBatch*size(shape))
		keep := float32(1 / (1 - n.rates[i]))
		for j := range m {
			if rng.Float64() >= n.rates[i] {
				m[j] = keep
			}
		}
		masks = append(masks, tensors.FromFlatDataAndDimensions(m, append([]int{goldenBatch}, shape...)...))
	}
	np, nm := len(n.shapes), len(n.dropouts)
	backend := n.backend
	if backend == nil {
		backend = gobackend.GetBackend()
	}
	exec, err := NewExec(backend, func(in []*Node) []*Node {
		params, xs, ys, ms := in[:np], in[np], in[np+1], in[np+2:np+2+nm]
		logits := n.logits(params, xs, ms)
		loss := ReduceAllMean(Neg(ReduceSum(Mul(OneHot(ys, 10, dtypes.Float32), LogSoftmax(logits, -1)), 1)))
		grads := Gradient(loss, params...)
		out := make([]*Node, 0, np+1)
		for i, p := range params {
			out = append(out, Sub(p, MulScalar(grads[i], goldenLR)))
		}
		return append(out, loss)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer exec.Finalize()
	vals := n.init
	var losses []float32
	for range goldenSteps {
		args := make([]any, 0, np+2+nm)
		for i, v := range vals {
			args = append(args, tensors.FromFlatDataAndDimensions(v, n.shapes[i]...))
		}
		args = append(args, tensors.FromFlatDataAndDimensions(x, goldenBatch, 28, 28, 1), tensors.FromFlatDataAndDimensions(labels, goldenBatch))
		for _, m := range masks {
			args = append(args, m)
		}
		out, err := exec.Call(args...)
		if err != nil {
			t.Fatal(err)
		}
		vals = vals[:0:0]
		for _, o := range out[:np] {
			vals = append(vals, tensors.MustCopyFlatData[float32](o))
		}
		losses = append(losses, tensors.MustCopyFlatData[float32](out[np])[0])
	}
	return losses, vals
}

// TestTrainGolden checks that models/cnn.yaml and models/small.yaml train to
// the weights of the Go architectures they replace (internal/model's arch.go,
// before it was deleted, recorded bit-exact hashes of them on an AVX-512
// machine; the fingerprints in testdata/train-<arch>.golden were recorded
// on an AVX2 one with the same losses, to the last float32 bit or one).
func TestTrainGolden(t *testing.T) {
	for _, tc := range []struct {
		name   string
		params int64
	}{
		{"cnn", 421_642}, // the prototype's count
		{"small", 2_010},
	} {
		t.Run(tc.name, func(t *testing.T) {
			net := New(testPlan(t, tc.name, arch.Input{H: 28, W: 28, C: 1}, 10))
			p := net.Plan()
			n := goldenNet{init: net.Init(42), logits: func(params []*Node, x *Node, masks []*Node) *Node {
				logits, _ := net.TrainLogits(params, x, masks, 0)
				return logits
			}}
			for _, q := range p.Params {
				n.shapes = append(n.shapes, q.Shape)
			}
			for _, d := range p.Dropouts {
				n.dropouts, n.rates = append(n.dropouts, d.Shape), append(n.rates, d.Rate)
			}
			weights, losses := goldenTrain(t, n)
			got := fmt.Sprintf("params %d\nlosses %v\n%s", p.NumParams, losses, weights)
			file := filepath.Join("testdata", "train-"+tc.name+".golden")
			if *update {
				if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if !sameGolden(got, string(want)) {
				t.Errorf("after %d SGD steps:\n%s\nwant (%s):\n%s", goldenSteps, strings.TrimSpace(got), file, want)
			}
			if p.NumParams != tc.params {
				t.Errorf("%d parameters, want %d", p.NumParams, tc.params)
			}
		})
	}
}

// testPlan plans models/<name>.yaml of this repository.
func testPlan(t testing.TB, name string, in arch.Input, classes int) *arch.Plan {
	t.Helper()
	file := filepath.Join("..", "..", arch.Dir, name+".yaml")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := arch.Parse(file, data)
	if err != nil {
		t.Fatal(err)
	}
	p, err := spec.Plan(in, classes)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
