package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// refPool reduces each window of in by its definition, and scatters src
// at each window's first maximum.
func refPool(op PoolOp, dims, win, str []int, pads [][2]int, in, src []float32) (out, grad []float32, outDims []int) {
	r := len(dims)
	for d := range r {
		outDims = append(outDims, (dims[d]+pads[d][0]+pads[d][1]-win[d])/str[d]+1)
	}
	out = make([]float32, size(outDims))
	grad = make([]float32, len(in))
	st := rowMajor(dims)
	oi, wi := make([]int, r), make([]int, r)
	for o := range out {
		rem := o
		for d := r - 1; d >= 0; d-- {
			oi[d] = rem % outDims[d]
			rem /= outDims[d]
		}
		acc, at := 0.0, -1
		if op == PoolMax {
			acc = math.Inf(-1)
		}
		for j := range size(win) {
			rem := j
			for d := r - 1; d >= 0; d-- {
				wi[d] = rem % win[d]
				rem /= win[d]
			}
			off, ok := 0, true
			for d := range r {
				c := oi[d]*str[d] - pads[d][0] + wi[d]
				if c < 0 || c >= dims[d] {
					ok = false
					break
				}
				off += c * st[d]
			}
			if !ok {
				continue
			}
			v := float64(in[off])
			if op == PoolSum {
				acc += v
			} else if at < 0 || v > acc {
				acc, at = v, off
			}
		}
		out[o] = float32(acc)
		if at >= 0 && src != nil {
			grad[at] += src[o]
		}
	}
	return out, grad, outDims
}

func TestPoolMatchesDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 300 {
		r := 1 + rng.IntN(4)
		var dims, win, str []int
		var pads [][2]int
		for range r {
			n := 1 + rng.IntN(7)
			w := 1 + rng.IntN(min(n, 3))
			dims, win, str = append(dims, n), append(win, w), append(str, 1+rng.IntN(3))
			pads = append(pads, [2]int{rng.IntN(w), rng.IntN(w)})
		}
		if rng.IntN(2) == 0 { // an NHWC-like channel run
			dims, win, str, pads = append(dims, 1+rng.IntN(9)), append(win, 1), append(str, 1), append(pads, [2]int{})
		}
		if i%5 == 0 { // channel-first 2×2 max-pools at stride 2, odd sizes among them
			dims = []int{1 + rng.IntN(3), 1 + rng.IntN(3), 2 + rng.IntN(7), 2 + rng.IntN(7)}
			win, str, pads = []int{1, 1, 2, 2}, []int{1, 1, 2, 2}, [][2]int{{}, {}, {}, {0, rng.IntN(2)}}
		}
		op := PoolOp(rng.IntN(2))
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			p, err := NewPool(op, dims, win, str, pads)
			if err != nil {
				t.Fatal(err)
			}
			in := randoms(rng, size(dims))
			if rng.IntN(2) == 0 { // ties: the first maximum wins
				for j := range in {
					in[j] = float32(rng.IntN(3))
				}
			}
			wantOut, _, od := refPool(op, dims, win, str, pads, in, nil)
			src := randoms(rng, size(od))
			_, wantGrad, _ := refPool(op, dims, win, str, pads, in, src)
			out := randoms(rng, size(p.OutDims()))
			p.Forward(out, in)
			what := fmt.Sprintf("op %d dims %v win %v strides %v pads %v", op, dims, win, str, pads)
			near(t, what, out, wantOut)
			if op == PoolMax {
				grad := randoms(rng, len(in))
				p.ScatterMax(grad, in, src)
				near(t, what+" gradient", grad, wantGrad)
			}
		})
	}
}

// TestPoolHalvesWide covers the cnn's 2×2 max-pools on rows long enough
// for whole vectors of windows and their remainders.
func TestPoolHalvesWide(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, hw := range [][2]int{{2, 32}, {3, 33}, {28, 28}, {14, 14}, {5, 64}, {4, 65}, {9, 47}, {2, 2}} {
		dims := []int{2, 3, hw[0], hw[1]}
		win, str, pads := []int{1, 1, 2, 2}, []int{1, 1, 2, 2}, [][2]int{{}, {}, {}, {}}
		what := fmt.Sprintf("dims %v", dims)
		p, err := NewPool(PoolMax, dims, win, str, pads)
		if err != nil {
			t.Fatal(err)
		}
		if !p.halves {
			t.Fatalf("%s: not planned as 2×2 halves", what)
		}
		for _, ties := range []bool{false, true} {
			in := randoms(rng, size(dims))
			if ties {
				for j := range in {
					in[j] = float32(rng.IntN(2))
				}
			}
			wantOut, _, od := refPool(PoolMax, dims, win, str, pads, in, nil)
			src := randoms(rng, size(od))
			_, wantGrad, _ := refPool(PoolMax, dims, win, str, pads, in, src)
			out := randoms(rng, size(p.OutDims()))
			p.Forward(out, in)
			near(t, what, out, wantOut)
			grad := randoms(rng, len(in))
			p.ScatterMax(grad, in, src)
			near(t, fmt.Sprintf("%s ties %v gradient", what, ties), grad, wantGrad)
		}
	}
}
