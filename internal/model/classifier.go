//lint:file-ignore ST1001 gomlx graph-building code reads as math with graph dot-imported

package model

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/gobackend"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/aerie-ml/aerie/internal/arch"
	"github.com/aerie-ml/aerie/internal/cpubackend"
	"github.com/aerie-ml/aerie/internal/kernels"
)

// MetadataArchitecture is the __metadata__ key naming the architecture of
// a weights file.
const MetadataArchitecture = "architecture"

// Prediction is the classification of one image.
type Prediction struct {
	Class      int
	Confidence float32 // Probs[Class]
	Probs      []float32
}

// Classifier runs inference with one set of weights. It is safe for
// concurrent use; a model swap is a new Classifier. Graphs are compiled
// once per batch size and reused.
type Classifier struct {
	net     *Net
	backend compute.Backend
	weights []*tensors.Tensor // params, then state

	mu   sync.Mutex
	exec *Exec
}

// Backend returns the process-wide gomlx backend: aerie's CPU kernels
// over the pure-Go backend (internal/cpubackend) where they have SIMD
// code (AVX-512 or AVX2), else the pure-Go backend alone. GOMLX_BACKEND
// (gomlx's variable) chooses: "aerie" for the kernels, any other name for
// the pure-Go backend.
func Backend() compute.Backend {
	name, _, _ := strings.Cut(os.Getenv(compute.ConfigEnvVar), ":")
	if name == cpubackend.Name || (name == "" && kernels.ISA() != "portable") {
		return cpubackend.Get()
	}
	return gobackend.GetBackend()
}

// Load reads safetensors weights of the architecture plan p. The file must
// hold exactly the plan's Params and State, as F32 with their shapes, and
// its metadata must not name another architecture.
func Load(ctx context.Context, p *arch.Plan, weights io.Reader) (*Classifier, error) {
	n := New(p)
	ts, meta, err := Decode(weights)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	params, state, err := n.Match(ts, meta)
	if err != nil {
		return nil, err
	}
	c := &Classifier{net: n, backend: Backend()}
	for i, q := range p.Params {
		c.weights = append(c.weights, tensors.FromFlatDataAndDimensions(params[i], q.Shape...))
	}
	for i, q := range p.State {
		c.weights = append(c.weights, tensors.FromFlatDataAndDimensions(state[i], q.Shape...))
	}
	np := len(p.Params)
	c.exec, err = NewExec(c.backend, func(g *Graph, in []*Node) *Node {
		return Softmax(n.Logits(in[1:1+np], in[1+np:], in[0]), -1)
	})
	if err != nil {
		return nil, fmt.Errorf("build %s inference graph: %w", p.Name, err)
	}
	return c, nil
}

// Match checks that ts are exactly the plan's Params and State (F32,
// right shapes, no others) and returns their values in plan order.
func (n *Net) Match(ts []Tensor, meta map[string]string) (params, state [][]float32, err error) {
	p := n.plan
	if got, ok := meta[MetadataArchitecture]; ok && got != p.Name {
		return nil, nil, fmt.Errorf("weights are for architecture %q, not %q", got, p.Name)
	}
	byName := make(map[string]*Tensor, len(ts))
	for i := range ts {
		byName[ts[i].Name] = &ts[i]
	}
	take := func(qs []arch.Param) ([][]float32, error) {
		out := make([][]float32, len(qs))
		for i, q := range qs {
			t, ok := byName[q.Name]
			if !ok {
				return nil, fmt.Errorf("weights lack tensor %q of architecture %s", q.Name, p.Name)
			}
			if t.DType != F32 || !slices.Equal(t.Shape, q.Shape) {
				return nil, fmt.Errorf("tensor %q is %s%v, want F32%v", q.Name, t.DType, t.Shape, q.Shape)
			}
			out[i] = t.Float32s()
			delete(byName, q.Name)
		}
		return out, nil
	}
	if params, err = take(p.Params); err != nil {
		return nil, nil, err
	}
	if state, err = take(p.State); err != nil {
		return nil, nil, err
	}
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		return nil, nil, fmt.Errorf("tensor %q is not a parameter of architecture %s", name, p.Name)
	}
	return params, state, nil
}

// Tensors names params and state (plan order) for a weights file.
func (n *Net) Tensors(params, state [][]float32) []Tensor {
	var ts []Tensor
	for i, q := range n.plan.Params {
		ts = append(ts, FromFloat32s(q.Name, q.Shape, params[i]))
	}
	for i, q := range n.plan.State {
		ts = append(ts, FromFloat32s(q.Name, q.Shape, state[i]))
	}
	return ts
}

// Metadata is a weights file's __metadata__ for plan p.
func Metadata(p *arch.Plan) map[string]string {
	return map[string]string{MetadataArchitecture: p.Name}
}

// Plan returns the classifier's architecture plan.
func (c *Classifier) Plan() *arch.Plan { return c.net.plan }

// maxBatch bounds one graph execution; batches are padded to a power of
// two, so at most 7 graphs (1, 2, 4, … 64) are ever compiled.
const maxBatch = 64

// Classify classifies 8-bit images of the plan's input shape, H×W×C bytes
// each in row-major (height, width, channel) order, normalized by the
// plan's Normalization as training normalized them.
func (c *Classifier) Classify(ctx context.Context, images [][]byte) ([]Prediction, error) {
	in := c.net.plan.Input
	px := in.H * in.W * in.C
	for i, img := range images {
		if len(img) != px {
			return nil, fmt.Errorf("image %d has %d bytes, want %d (%d×%d×%d)", i, len(img), px, in.H, in.W, in.C)
		}
	}
	classes, norm := c.net.plan.Classes, c.net.plan.Normalization
	preds := make([]Prediction, 0, len(images))
	for start := 0; start < len(images); start += maxBatch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		chunk := images[start:min(start+maxBatch, len(images))]
		n := 1
		for n < len(chunk) {
			n *= 2
		}
		x := make([]float32, n*px)
		for i, img := range chunk {
			norm.Apply(x[i*px:(i+1)*px], img)
		}
		probs, err := c.run(x, n)
		if err != nil {
			return nil, err
		}
		for i := range chunk {
			p := probs[i*classes : (i+1)*classes : (i+1)*classes]
			best := 0
			for k := range p {
				if p[k] > p[best] {
					best = k
				}
			}
			preds = append(preds, Prediction{Class: best, Confidence: p[best], Probs: p})
		}
	}
	return preds, nil
}

// run executes the graph for n normalized images.
func (c *Classifier) run(x []float32, n int) ([]float32, error) {
	d := c.net.plan.Input
	in := tensors.FromFlatDataAndDimensions(x, n, d.H, d.W, d.C)
	defer in.MustFinalizeAll()
	args := make([]any, 0, 1+len(c.weights))
	args = append(args, in)
	for _, w := range c.weights {
		args = append(args, w)
	}
	c.mu.Lock()
	out, err := c.exec.Call(args...)
	c.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("classify: %w", err)
	}
	defer out[0].MustFinalizeAll()
	return tensors.MustCopyFlatData[float32](out[0]), nil
}

// Close releases the compiled graphs.
func (c *Classifier) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.exec.Finalize()
	for _, w := range c.weights {
		w.MustFinalizeAll()
	}
}
