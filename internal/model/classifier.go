//lint:file-ignore ST1001 gomlx graph-building code reads as math with graph dot-imported

package model

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/gobackend"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
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
	arch    *Arch
	backend compute.Backend
	weights []*tensors.Tensor

	mu   sync.Mutex
	exec *Exec
}

// Backend returns the process-wide pure-Go gomlx backend.
func Backend() compute.Backend { return gobackend.GetBackend() }

// Load reads safetensors weights for architecture arch. The file must hold
// exactly the architecture's parameters, as F32 with their shapes, and its
// metadata must not name another architecture.
func Load(ctx context.Context, arch string, weights io.Reader) (*Classifier, error) {
	a, err := Lookup(arch)
	if err != nil {
		return nil, err
	}
	ts, meta, err := Decode(weights)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	vals, err := a.Match(ts, meta)
	if err != nil {
		return nil, err
	}
	c := &Classifier{arch: a, backend: Backend()}
	for i, p := range a.params {
		c.weights = append(c.weights, tensors.FromFlatDataAndDimensions(vals[i], p.Shape...))
	}
	c.exec, err = NewExec(c.backend, func(g *Graph, in []*Node) *Node {
		return Softmax(a.Logits(in[1:], in[0], nil), -1)
	})
	if err != nil {
		return nil, fmt.Errorf("build %s inference graph: %w", arch, err)
	}
	return c, nil
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

// Arch returns the classifier's architecture.
func (c *Classifier) Arch() *Arch { return c.arch }

// maxBatch bounds one graph execution; batches are padded to a power of
// two, so at most 7 graphs (1, 2, 4, … 64) are ever compiled.
const maxBatch = 64

// Classify classifies 28×28 8-bit grayscale images (row-major, 784 bytes
// each).
func (c *Classifier) Classify(ctx context.Context, images [][]byte) ([]Prediction, error) {
	const px = Height * Width
	for i, img := range images {
		if len(img) != px {
			return nil, fmt.Errorf("image %d has %d bytes, want %d (28×28 grayscale)", i, len(img), px)
		}
	}
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
			Normalize(x[i*px:(i+1)*px], img)
		}
		probs, err := c.run(x, n)
		if err != nil {
			return nil, err
		}
		for i := range chunk {
			p := probs[i*NumClasses : (i+1)*NumClasses : (i+1)*NumClasses]
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
	in := tensors.FromFlatDataAndDimensions(x, n, Height, Width, 1)
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
