//lint:file-ignore ST1001 gomlx graph-building code reads as math with graph dot-imported

package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/aerie-ml/aerie/internal/arch"
)

// fmap is a batch of feature maps in NHWC order; a flat batch is 1×1×N.
type fmap struct {
	b, h, w, c int
	v          []float64
}

func newFmap(b, h, w, c int) *fmap { return &fmap{b, h, w, c, make([]float64, b*h*w*c)} }

func (f *fmap) at(n, y, x, k int) *float64 { return &f.v[((n*f.h+y)*f.w+x)*f.c+k] }

// ref is a direct implementation of a plan in plain Go loops and float64,
// independent of the builder's layouts and op formulations.
type ref struct {
	plan   *arch.Plan
	params [][]float64
	state  [][]float64
	masks  [][]float64 // nil: no dropout
	train  bool
	ghost  int

	pi, di, si int
	stats      [][]float64
}

func (r *ref) param() []float64 { r.pi++; return r.params[r.pi-1] }

func (r *ref) run(x *fmap) *fmap {
	r.pi, r.di, r.si, r.stats = 0, 0, 0, nil
	var top []*arch.Layer
	for i := range r.plan.Rows {
		if r.plan.Rows[i].Depth == 0 {
			top = append(top, r.plan.Rows[i].Layer)
		}
	}
	return r.seq(x, top)
}

func (r *ref) seq(x *fmap, layers []*arch.Layer) *fmap {
	for _, l := range layers {
		x = r.layer(x, l)
	}
	return x
}

func (r *ref) layer(x *fmap, l *arch.Layer) *fmap {
	switch l.Op {
	case arch.Conv:
		w := r.param()
		var b []float64
		if l.Bias {
			b = r.param()
		}
		return refConv2d(x, w, b, l.Kernel, l.Stride, l.Padding, l.Groups, l.Filters)
	case arch.BatchNorm:
		scale, offset := r.param(), r.param()
		y := newFmap(x.b, x.h, x.w, x.c)
		if !r.train {
			mean, variance := r.state[2*r.si], r.state[2*r.si+1]
			for i, v := range x.v {
				k := i % x.c
				y.v[i] = (v-mean[k])/math.Sqrt(variance[k]+l.Epsilon)*scale[k] + offset[k]
			}
			r.si++
			return y
		}
		msum, vsum := make([]float64, x.c), make([]float64, x.c)
		for g0 := 0; g0 < x.b; g0 += r.ghost {
			for k := range x.c {
				var s, n float64
				for n0 := g0; n0 < g0+r.ghost; n0++ {
					for yy := range x.h {
						for xx := range x.w {
							s += *x.at(n0, yy, xx, k)
							n++
						}
					}
				}
				mean := s / n
				var ss float64
				for n0 := g0; n0 < g0+r.ghost; n0++ {
					for yy := range x.h {
						for xx := range x.w {
							d := *x.at(n0, yy, xx, k) - mean
							ss += d * d
						}
					}
				}
				variance := ss / n
				for n0 := g0; n0 < g0+r.ghost; n0++ {
					for yy := range x.h {
						for xx := range x.w {
							*y.at(n0, yy, xx, k) = (*x.at(n0, yy, xx, k)-mean)/math.Sqrt(variance+l.Epsilon)*scale[k] + offset[k]
						}
					}
				}
				msum[k] += mean
				if n > 1 {
					vsum[k] += ss / (n - 1)
				} else {
					vsum[k] += variance
				}
			}
		}
		r.stats = append(r.stats, msum, vsum)
		r.si++
		return y
	case arch.ReLU, arch.SiLU:
		y := newFmap(x.b, x.h, x.w, x.c)
		for i, v := range x.v {
			if l.Op == arch.ReLU {
				y.v[i] = max(v, 0)
			} else {
				y.v[i] = v / (1 + math.Exp(-v))
			}
		}
		return y
	case arch.MaxPool, arch.AvgPool:
		k, s := l.Kernel, l.Stride
		y := newFmap(x.b, (x.h-k)/s+1, (x.w-k)/s+1, x.c)
		for n := range y.b {
			for oy := range y.h {
				for ox := range y.w {
					for c := range y.c {
						m, sum := math.Inf(-1), 0.0
						for dy := range k {
							for dx := range k {
								v := *x.at(n, oy*s+dy, ox*s+dx, c)
								m, sum = max(m, v), sum+v
							}
						}
						if l.Op == arch.MaxPool {
							*y.at(n, oy, ox, c) = m
						} else {
							*y.at(n, oy, ox, c) = sum / float64(k*k)
						}
					}
				}
			}
		}
		return y
	case arch.GlobalAvgPool:
		y := newFmap(x.b, 1, 1, x.c)
		for n := range x.b {
			for yy := range x.h {
				for xx := range x.w {
					for c := range x.c {
						*y.at(n, 0, 0, c) += *x.at(n, yy, xx, c) / float64(x.h*x.w)
					}
				}
			}
		}
		return y
	case arch.Dropout:
		if r.masks == nil {
			r.di++
			return x
		}
		m := r.masks[r.di]
		r.di++
		y := newFmap(x.b, x.h, x.w, x.c)
		for i, v := range x.v {
			y.v[i] = v * m[i]
		}
		return y
	case arch.Flatten:
		return &fmap{x.b, 1, 1, x.h * x.w * x.c, x.v} // NHWC is (h, w, c) order
	case arch.Dense:
		w := r.param()
		in := x.h * x.w * x.c
		units := len(w) / in
		var b []float64
		if l.Bias {
			b = r.param()
		}
		y := newFmap(x.b, 1, 1, units)
		for n := range x.b {
			for u := range units {
				var s float64
				if b != nil {
					s = b[u]
				}
				for i := range in {
					s += x.v[n*in+i] * w[i*units+u]
				}
				y.v[n*units+u] = s
			}
		}
		return y
	case arch.Residual:
		branch := make([]*arch.Layer, len(l.Layers))
		for i := range l.Layers {
			branch[i] = &l.Layers[i]
		}
		y := r.seq(x, branch)
		sc := x
		if y.h != x.h || y.w != x.w || y.c != x.c {
			s := 1
			for (x.h-1)/s+1 != y.h || (x.w-1)/s+1 != y.w {
				s++
			}
			w, b := r.param(), r.param()
			sc = refConv2d(x, w, b, 1, s, 0, 1, y.c)
		}
		out := newFmap(y.b, y.h, y.w, y.c)
		for i := range out.v {
			out.v[i] = y.v[i] + sc.v[i]
		}
		return out
	}
	panic(l.Op)
}

// refConv2d is a direct convolution: kernel [k, k, C/groups, F], zeros
// outside the input.
func refConv2d(x *fmap, kernel, bias []float64, k, s, p, groups, f int) *fmap {
	cg, fg := x.c/groups, f/groups
	y := newFmap(x.b, (x.h+2*p-k)/s+1, (x.w+2*p-k)/s+1, f)
	for n := range y.b {
		for oy := range y.h {
			for ox := range y.w {
				for o := range f {
					g := o / fg
					var sum float64
					if bias != nil {
						sum = bias[o]
					}
					for dy := range k {
						for dx := range k {
							iy, ix := oy*s+dy-p, ox*s+dx-p
							if iy < 0 || iy >= x.h || ix < 0 || ix >= x.w {
								continue
							}
							for ci := range cg {
								sum += *x.at(n, iy, ix, g*cg+ci) * kernel[((dy*k+dx)*cg+ci)*f+o]
							}
						}
					}
					*y.at(n, oy, ox, o) = sum
				}
			}
		}
	}
	return y
}

// netCases are architectures with every layer and odd sizes: strided,
// padded, even-kernel and grouped convs, tiling, overlapping and gapped
// pools on sides they do not divide, batch norm on feature maps and flat
// features, identity and projected residual blocks.
var netCases = []struct {
	name    string
	in      arch.Input
	classes int
	layers  string
}{
	{"strided-grouped-residual", arch.Input{H: 9, W: 7, C: 3}, 4, `
  - conv: {filters: 6, kernel: 3, stride: 2, padding: 1, groups: 3}
  - batchnorm
  - silu
  - residual:
      layers:
        - conv: {filters: 6, groups: 2, bias: false}
        - batchnorm
        - relu
        - conv: {filters: 6, kernel: 5, padding: 2}
  - maxpool: {size: 3, stride: 1}
  - residual:
      layers:
        - conv: {filters: 8, kernel: 2, stride: 2, padding: valid}
  - globalavgpool
  - dense: {units: 5, bias: false}
  - batchnorm: {momentum: 0.3}
  - relu
  - dropout: {rate: 0.3}
  - dense: {units: classes}
`},
	{"pools-even-kernel", arch.Input{H: 11, W: 10, C: 2}, 3, `
  - conv: {filters: 4, kernel: 2, padding: 1}
  - relu
  - maxpool: {size: 2}
  - dropout: {rate: 0.25}
  - avgpool: {size: 3, stride: 2}
  - conv: {filters: 4, kernel: 1, groups: 4}
  - avgpool: {size: 2}
  - flatten
  - dense: {units: classes}
`},
	{"depthwise-projection", arch.Input{H: 8, W: 8, C: 4}, 2, `
  - conv: {filters: 4, groups: 4}
  - residual:
      layers:
        - conv: {filters: 8, stride: 2}
        - batchnorm
        - relu
  - residual:
      layers:
        - batchnorm: {epsilon: 0.01}
        - relu
        - conv: {filters: 8}
  - maxpool: {size: 2, stride: 3}
  - flatten
  - dense: {units: classes}
`},
}

func parseLayers(t testing.TB, name, layers string, in arch.Input, classes int) *arch.Plan {
	t.Helper()
	src := fmt.Sprintf("apiVersion: aerie.dev/v1alpha1\nkind: Architecture\nmetadata:\n  name: %s\nlayers:%s", name, layers)
	spec, err := arch.Parse(name+".yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	p, err := spec.Plan(in, classes)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func randoms(rng *rand.Rand, n int, scale float64) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = (2*rng.Float64() - 1) * scale
	}
	return v
}

// TestNetMatchesReference builds each case in float64 and compares the
// logits, batch norm statistics and gradients of a random linear function
// of the logits with the direct implementation and its central finite
// differences.
func TestNetMatchesReference(t *testing.T) {
	const batch, ghost = 6, 3
	for _, tc := range netCases {
		for _, train := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/train=%v", tc.name, train), func(t *testing.T) {
				p := parseLayers(t, tc.name, tc.layers, tc.in, tc.classes)
				net := New(p)
				rng := rand.New(rand.NewPCG(3, uint64(len(tc.name))))
				r := &ref{plan: p, train: train, ghost: ghost}
				for _, q := range p.Params {
					r.params = append(r.params, randoms(rng, size(q.Shape), 0.8))
				}
				for i, q := range p.State {
					v := randoms(rng, size(q.Shape), 0.5)
					if i%2 == 1 { // variances
						for j := range v {
							v[j] += 1
						}
					}
					r.state = append(r.state, v)
				}
				if train {
					for _, m := range p.Dropouts {
						v := make([]float64, batch*int(m.Shape.Size()))
						for j := range v {
							if rng.Float64() >= m.Rate {
								v[j] = 1 / (1 - m.Rate)
							}
						}
						r.masks = append(r.masks, v)
					}
				}
				x := &fmap{batch, tc.in.H, tc.in.W, tc.in.C, randoms(rng, batch*tc.in.H*tc.in.W*tc.in.C, 1)}
				weights := randoms(rng, batch*tc.classes, 1)
				loss := func() float64 {
					y := r.run(x)
					var s float64
					for i, v := range y.v {
						s += v * weights[i]
					}
					return s
				}
				want := r.run(x)
				wantStats := r.stats

				np, ns, nm := len(p.Params), len(p.State), len(r.masks)
				exec, err := NewExec(Backend(), func(in []*Node) []*Node {
					params, state, xs, w, masks := in[:np], in[np:np+ns], in[np+ns], in[np+ns+1], in[np+ns+2:]
					var logits *Node
					var stats []*Node
					if train {
						if nm == 0 {
							masks = nil
						}
						logits, stats = net.TrainLogits(params, xs, masks, ghost)
					} else {
						logits = net.Logits(params, state, xs)
					}
					grads := Gradient(ReduceAllSum(Mul(logits, w)), params...)
					return append(append([]*Node{logits}, grads...), stats...)
				})
				if err != nil {
					t.Fatal(err)
				}
				defer exec.Finalize()
				var args []any
				for i, q := range p.Params {
					args = append(args, tensors.FromFlatDataAndDimensions(r.params[i], q.Shape...))
				}
				for i, q := range p.State {
					args = append(args, tensors.FromFlatDataAndDimensions(r.state[i], q.Shape...))
				}
				args = append(args, tensors.FromFlatDataAndDimensions(x.v, batch, tc.in.H, tc.in.W, tc.in.C),
					tensors.FromFlatDataAndDimensions(weights, batch, tc.classes))
				for i, m := range r.masks {
					args = append(args, tensors.FromFlatDataAndDimensions(m, append([]int{batch}, p.Dropouts[i].Shape...)...))
				}
				out, err := exec.Call(args...)
				if err != nil {
					t.Fatal(err)
				}
				close := func(what string, want, got []float64, tol float64) {
					t.Helper()
					if len(want) != len(got) {
						t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
					}
					for i := range want {
						if d := math.Abs(want[i] - got[i]); d > tol*(1+math.Abs(want[i])) {
							t.Errorf("%s[%d] = %.12g, reference %.12g", what, i, got[i], want[i])
							return
						}
					}
				}
				close("logits", want.v, tensors.MustCopyFlatData[float64](out[0]), 1e-12)
				if train {
					if len(out) != 1+np+len(wantStats) {
						t.Fatalf("%d stats, want %d", len(out)-1-np, len(wantStats))
					}
					for i, s := range wantStats {
						close(fmt.Sprintf("stats %s", p.State[i].Name), s, tensors.MustCopyFlatData[float64](out[1+np+i]), 1e-12)
					}
				}
				// Gradients against central differences of the reference,
				// at a few coordinates of every parameter.
				const h = 1e-6
				for i, q := range p.Params {
					got := tensors.MustCopyFlatData[float64](out[1+i])
					for range 5 {
						j := rng.IntN(len(got))
						v := r.params[i][j]
						r.params[i][j] = v + h
						up := loss()
						r.params[i][j] = v - h
						down := loss()
						r.params[i][j] = v
						fd := (up - down) / (2 * h)
						if d := math.Abs(fd - got[j]); d > 1e-6*(1+math.Abs(fd)) {
							t.Errorf("d/d %s[%d] = %.10g, finite differences %.10g", q.Name, j, got[j], fd)
						}
					}
				}
			})
		}
	}
}

// TestGhostBatchIndependent checks that an image's training output depends
// only on its ghost batch: a lane of two ghost batches gives each the
// values it gets alone. The math is the same; float32 results differ by
// the rounding of the matmul's blocking over more columns (1 ulp seen), as
// they do without batch norm.
func TestGhostBatchIndependent(t *testing.T) {
	tc := netCases[0]
	p := parseLayers(t, tc.name, tc.layers, tc.in, tc.classes)
	net := New(p)
	const ghost = 4
	exec, err := NewExec(Backend(), func(in []*Node) []*Node {
		logits, stats := net.TrainLogits(in[1:], in[0], nil, ghost)
		return append([]*Node{logits}, stats...)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer exec.Finalize()
	rng := rand.New(rand.NewPCG(8, 9))
	px := tc.in.H * tc.in.W * tc.in.C
	x := make([]float32, 2*ghost*px)
	for i := range x {
		x[i] = rng.Float32()*2 - 1
	}
	run := func(x []float32) [][]float32 {
		args := []any{tensors.FromFlatDataAndDimensions(x, len(x)/px, tc.in.H, tc.in.W, tc.in.C)}
		for i, q := range p.Params {
			args = append(args, tensors.FromFlatDataAndDimensions(net.Init(1)[i], q.Shape...))
		}
		out, err := exec.Call(args...)
		if err != nil {
			t.Fatal(err)
		}
		var vs [][]float32
		for _, o := range out {
			vs = append(vs, tensors.MustCopyFlatData[float32](o))
		}
		return vs
	}
	both, first, second := run(x), run(x[:ghost*px]), run(x[ghost*px:])
	near := func(a, b float32) bool { return math.Abs(float64(a-b)) <= 1e-5*(1+math.Abs(float64(a))) }
	n := ghost * tc.classes
	for i := range n {
		if !near(both[0][i], first[0][i]) || !near(both[0][n+i], second[0][i]) {
			t.Fatalf("logit %d: %v and %v in one lane, %v and %v alone", i, both[0][i], both[0][n+i], first[0][i], second[0][i])
		}
	}
	for s := 1; s < len(both); s++ {
		for j := range both[s] {
			if sum := first[s][j] + second[s][j]; !near(both[s][j], sum) {
				t.Errorf("%s[%d]: %v in one lane, %v summed alone", p.State[s-1].Name, j, both[s][j], sum)
			}
		}
	}
}
