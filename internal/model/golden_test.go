//lint:file-ignore ST1001 gomlx graph-building code reads as math with graph dot-imported

package model

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
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
}

// goldenTrain runs goldenSteps SGD steps from n.init on a batch drawn from
// a fixed seed and returns the sha256 of the resulting weights (float32
// bits, little-endian, in parameter order) and each step's loss.
func goldenTrain(t *testing.T, n goldenNet) (string, []float32) {
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
	exec, err := NewExec(Backend(), func(in []*Node) []*Node {
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
	h := sha256.New()
	var b [4]byte
	for _, v := range vals {
		for _, f := range v {
			binary.LittleEndian.PutUint32(b[:], math.Float32bits(f))
			h.Write(b[:])
		}
	}
	return hex.EncodeToString(h.Sum(nil)), losses
}

// TestTrainGolden checks that cnn and small train to bit-identical weights:
// testdata/train-<arch>.golden was recorded with internal/model's Go
// architectures before they became models/*.yaml.
func TestTrainGolden(t *testing.T) {
	for _, name := range []string{"cnn", "small"} {
		t.Run(name, func(t *testing.T) {
			a, err := Lookup(name)
			if err != nil {
				t.Fatal(err)
			}
			n := goldenNet{init: a.Init(42), logits: a.Logits}
			for _, p := range a.Params() {
				n.shapes = append(n.shapes, p.Shape)
			}
			for _, d := range a.Dropouts() {
				n.dropouts, n.rates = append(n.dropouts, d.Shape), append(n.rates, d.Rate)
			}
			sum, losses := goldenTrain(t, n)
			got := fmt.Sprintf("params %d\nlosses %v\nsha256 %s\n", a.NumParams(), losses, sum)
			file := filepath.Join("testdata", "train-"+name+".golden")
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("after %d SGD steps:\n%s\nwant (%s):\n%s", goldenSteps, strings.TrimSpace(got), file, want)
			}
		})
	}
}
