package kernels

import (
	"fmt"
	"math"
	"slices"
)

// PoolOp is a window reduction.
type PoolOp int

// The reductions Pool computes. Padding counts as -Inf for PoolMax and 0
// for PoolSum, as in XLA's ReduceWindow with those init values.
const (
	PoolMax PoolOp = iota
	PoolSum
)

// Pool is a planned window reduction over a row-major float32 tensor,
// and for PoolMax its gradient (SelectAndScatter). Axes whose window and
// stride are 1 without padding at the end of the shape (the channels of
// NHWC) run as contiguous vectors.
type Pool struct {
	op                       PoolOp
	in, out, win, stride, lo []int
	inSt, outSt              []int
	rank                     int // leading axes iterated; the rest are the inner run
	inner                    int // contiguous elements per window element
	winOff                   []int
	winPos                   []int // winPos[j*rank+d]
	outerOut                 int
	// plane2D: only the last two outer axes have windows (channel-first
	// feature maps); the axes before them are independent planes.
	plane2D bool
	planes  int
	// halves: plane2D with 2×2 windows at stride 2 inside the input, the
	// cnn's max-pool, which runs without per-window bounds.
	halves bool
}

// NewPool plans op over input dims: window (default 1), strides (default
// the window) and low/high paddings (default 0) per axis.
func NewPool(op PoolOp, dims, window, strides []int, paddings [][2]int) (*Pool, error) {
	r := len(dims)
	if (len(window) != 0 && len(window) != r) || (len(strides) != 0 && len(strides) != r) || (len(paddings) != 0 && len(paddings) != r) {
		return nil, fmt.Errorf("pool over %v: window %v, strides %v, paddings %v are not per axis", dims, window, strides, paddings)
	}
	p := &Pool{op: op, in: dims}
	hi := make([]int, r)
	for d := range r {
		w := 1
		if len(window) > 0 {
			w = window[d]
		}
		s := w
		if len(strides) > 0 {
			s = strides[d]
		}
		lo, h := 0, 0
		if len(paddings) > 0 {
			lo, h = paddings[d][0], paddings[d][1]
		}
		if w < 1 || s < 1 || lo < 0 || h < 0 {
			return nil, fmt.Errorf("pool over %v: axis %d: window %d, stride %d, padding %d,%d", dims, d, w, s, lo, h)
		}
		n := (dims[d]+lo+h-w)/s + 1
		if dims[d]+lo+h < w {
			n = 0
		}
		p.win, p.stride, p.lo, hi = append(p.win, w), append(p.stride, s), append(p.lo, lo), append(hi, 0)
		p.out = append(p.out, n)
		hi[d] = h
	}
	p.inSt, p.outSt = rowMajor(dims), rowMajor(p.out)
	p.rank = r
	p.inner = 1
	for p.rank > 0 {
		d := p.rank - 1
		if p.win[d] != 1 || p.stride[d] != 1 || p.lo[d] != 0 || hi[d] != 0 {
			break
		}
		p.inner *= dims[d]
		p.rank--
	}
	nw := 1
	for d := range p.rank {
		nw *= p.win[d]
	}
	p.winPos = make([]int, nw*p.rank)
	p.winOff = make([]int, nw)
	for j := range nw {
		rem, off := j, 0
		for d := p.rank - 1; d >= 0; d-- {
			k := rem % p.win[d]
			rem /= p.win[d]
			p.winPos[j*p.rank+d] = k
			off += k * p.inSt[d]
		}
		p.winOff[j] = off
	}
	p.outerOut = 1
	for d := range p.rank {
		p.outerOut *= p.out[d]
	}
	if p.inner == 1 && p.rank >= 2 {
		p.plane2D, p.planes = true, 1
		for d := range p.rank - 2 {
			if p.win[d] != 1 || p.stride[d] != 1 || p.lo[d] != 0 || hi[d] != 0 {
				p.plane2D = false
			}
			p.planes *= dims[d]
		}
		d := p.rank - 2
		p.halves = p.plane2D && slices.Equal(p.win[d:], []int{2, 2}) && slices.Equal(p.stride[d:], []int{2, 2}) &&
			p.lo[d] == 0 && p.lo[d+1] == 0 && 2*p.out[d] <= dims[d] && 2*p.out[d+1] <= dims[d+1]
	}
	return p, nil
}

// OutDims are the reduced tensor's dimensions.
func (p *Pool) OutDims() []int { return p.out }

// each calls fn for every outer output position with its output offset,
// its input base offset and whether the window lies inside the input.
func (p *Pool) each(fn func(o, base int, inside bool, start []int)) {
	idx := make([]int, p.rank)
	start := make([]int, p.rank)
	for o := range p.outerOut {
		base, inside := 0, true
		for d := range p.rank {
			start[d] = idx[d]*p.stride[d] - p.lo[d]
			base += start[d] * p.inSt[d]
			if start[d] < 0 || start[d]+p.win[d] > p.in[d] {
				inside = false
			}
		}
		fn(o*p.inner, base, inside, start)
		for d := p.rank - 1; d >= 0; d-- {
			if idx[d]++; idx[d] < p.out[d] {
				break
			}
			idx[d] = 0
		}
	}
}

// valid reports whether window element j at start lies inside the input.
func (p *Pool) valid(j int, start []int) bool {
	for d := range p.rank {
		c := start[d] + p.winPos[j*p.rank+d]
		if c < 0 || c >= p.in[d] {
			return false
		}
	}
	return true
}

// Forward writes the reduction of in into out.
func (p *Pool) Forward(out, in []float32) {
	if p.plane2D {
		p.forward2D(out, in)
		return
	}
	n := p.inner
	init := float32(math.Inf(-1))
	if p.op == PoolSum {
		init = 0
	}
	p.each(func(o, base int, inside bool, start []int) {
		dst := out[o : o+n]
		for i := range dst {
			dst[i] = init
		}
		for j, off := range p.winOff {
			if !inside && !p.valid(j, start) {
				continue
			}
			src := in[base+off : base+off+n]
			if p.op == PoolMax {
				for i, v := range src {
					dst[i] = max(dst[i], v)
				}
			} else {
				for i, v := range src {
					dst[i] += v
				}
			}
		}
	})
}

// ScatterMax writes into grad (the input's shape) each element of src
// (the output's shape) at the first maximum of its window in x, summed
// where windows overlap: the gradient of PoolMax.
func (p *Pool) ScatterMax(grad, x, src []float32) {
	if p.halves {
		p.scatterHalves(grad, x, src)
		return
	}
	clear(grad)
	if p.plane2D {
		p.scatter2D(grad, x, src)
		return
	}
	n := p.inner
	p.each(func(o, base int, inside bool, start []int) {
		for i := range n {
			best, at := float32(math.Inf(-1)), -1
			for j, off := range p.winOff {
				if !inside && !p.valid(j, start) {
					continue
				}
				if v := x[base+off+i]; at < 0 || v > best {
					best, at = v, base+off+i
				}
			}
			if at >= 0 {
				grad[at] += src[o+i]
			}
		}
	})
}

// window2D is one output position's window in a plane: rows [y0, y1),
// columns [x0, x1), clipped to the input.
func (p *Pool) window2D(oy, ox int) (y0, y1, x0, x1 int) {
	d := p.rank - 2
	y0 = oy*p.stride[d] - p.lo[d]
	x0 = ox*p.stride[d+1] - p.lo[d+1]
	y1, x1 = min(y0+p.win[d], p.in[d]), min(x0+p.win[d+1], p.in[d+1])
	return max(y0, 0), y1, max(x0, 0), x1
}

func (p *Pool) forward2D(out, in []float32) {
	d := p.rank - 2
	h, w, oh, ow := p.in[d], p.in[d+1], p.out[d], p.out[d+1]
	if p.halves && p.op == PoolMax {
		for pl := range p.planes {
			src := in[pl*h*w:][:h*w]
			dst := out[pl*oh*ow:][:oh*ow]
			for oy := range oh {
				maxRow(dst[oy*ow:][:ow], src[2*oy*w:][:2*ow], src[(2*oy+1)*w:][:2*ow])
			}
		}
		return
	}
	for pl := range p.planes {
		src := in[pl*h*w:][:h*w]
		dst := out[pl*oh*ow:][:oh*ow]
		for oy := range oh {
			for ox := range ow {
				y0, y1, x0, x1 := p.window2D(oy, ox)
				var acc float32
				if p.op == PoolMax {
					acc = float32(math.Inf(-1))
					for y := y0; y < y1; y++ {
						for _, v := range src[y*w+x0 : y*w+x1] {
							acc = max(acc, v)
						}
					}
				} else {
					for y := y0; y < y1; y++ {
						for _, v := range src[y*w+x0 : y*w+x1] {
							acc += v
						}
					}
				}
				dst[oy*ow+ox] = acc
			}
		}
	}
}

// scatterHalves is ScatterMax of 2×2 windows at stride 2: it writes every
// element of grad once, so grad needs no clearing first.
func (p *Pool) scatterHalves(grad, x, src []float32) {
	d := p.rank - 2
	h, w, oh, ow := p.in[d], p.in[d+1], p.out[d], p.out[d+1]
	for pl := range p.planes {
		xs := x[pl*h*w:][:h*w]
		gs := grad[pl*h*w:][:h*w]
		ss := src[pl*oh*ow:][:oh*ow]
		for oy := range oh {
			x0, x1 := xs[2*oy*w:][:2*ow], xs[(2*oy+1)*w:][:2*ow]
			g0, g1 := gs[2*oy*w:][:w], gs[(2*oy+1)*w:][:w]
			clear(g0[2*ow:]) // a column no window reads
			clear(g1[2*ow:])
			scatterRow(g0[:2*ow], g1[:2*ow], x0, x1, ss[oy*ow:][:ow])
		}
		clear(gs[2*oh*w:]) // a row no window reads
	}
}

func (p *Pool) scatter2D(grad, x, src []float32) {
	d := p.rank - 2
	h, w, oh, ow := p.in[d], p.in[d+1], p.out[d], p.out[d+1]
	for pl := range p.planes {
		xs := x[pl*h*w:][:h*w]
		gs := grad[pl*h*w:][:h*w]
		ss := src[pl*oh*ow:][:oh*ow]
		for oy := range oh {
			for ox := range ow {
				y0, y1, x0, x1 := p.window2D(oy, ox)
				at := -1
				var best float32
				for y := y0; y < y1; y++ {
					for i, v := range xs[y*w+x0 : y*w+x1] {
						if at < 0 || v > best {
							best, at = v, y*w+x0+i
						}
					}
				}
				if at >= 0 {
					gs[at] += ss[oy*ow+ox]
				}
			}
		}
	}
}

// scatterRowPortable is one output row of scatterHalves: each src[i]
// goes to the first maximum of x0[2i], x0[2i+1], x1[2i], x1[2i+1], the
// other three get 0.
func scatterRowPortable(g0, g1, x0, x1, src []float32) {
	for ox, v := range src {
		// The first maximum in row-major order, as the general loop picks it.
		a, b, c, e := x0[2*ox], x0[2*ox+1], x1[2*ox], x1[2*ox+1]
		at, best := 0, a
		if b > best {
			at, best = 1, b
		}
		if c > best {
			at, best = 2, c
		}
		if e > best {
			at = 3
		}
		g0[2*ox], g0[2*ox+1], g1[2*ox], g1[2*ox+1] = 0, 0, 0, 0
		switch at {
		case 0:
			g0[2*ox] = v
		case 1:
			g0[2*ox+1] = v
		case 2:
			g1[2*ox] = v
		default:
			g1[2*ox+1] = v
		}
	}
}

// maxRowPortable is one output row of a 2×2 max-pool at stride 2.
func maxRowPortable(o, r0, r1 []float32) {
	for ox := range o {
		o[ox] = max(r0[2*ox], r0[2*ox+1], r1[2*ox], r1[2*ox+1])
	}
}
