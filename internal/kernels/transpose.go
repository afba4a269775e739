package kernels

import "fmt"

// Transpose is a planned permutation of a row-major float32 tensor's axes:
// out's axis i is in's axis perm[i]. Axes that stay neighbours are merged
// and unit axes dropped; when the output's last axis is strided in the
// input, the output axis that reads the input's contiguous axis is walked
// with it in 16×16 tiles, so that both sides touch whole cache lines.
type Transpose struct {
	dims []int // output dimensions, merged
	inSt []int // input stride of each output axis
	tile int   // output axis with input stride 1, tiled with the last; -1 if none
}

// transposeTile is the tiles' side: 16 floats, one cache line.
const transposeTile = 16

// NewTranspose plans the permutation perm of dims.
func NewTranspose(dims, perm []int) (*Transpose, error) {
	r := len(dims)
	if len(perm) != r {
		return nil, fmt.Errorf("transpose of %v: permutation %v has %d axes, want %d", dims, perm, len(perm), r)
	}
	seen := make([]bool, r)
	for _, p := range perm {
		if p < 0 || p >= r || seen[p] {
			return nil, fmt.Errorf("transpose of %v: %v is not a permutation of its axes", dims, perm)
		}
		seen[p] = true
	}
	st := rowMajor(dims)
	t := &Transpose{tile: -1}
	for _, p := range perm {
		if dims[p] == 1 {
			continue
		}
		if n := len(t.dims); n > 0 && t.inSt[n-1] == st[p]*dims[p] {
			t.dims[n-1] *= dims[p]
			t.inSt[n-1] = st[p]
			continue
		}
		t.dims, t.inSt = append(t.dims, dims[p]), append(t.inSt, st[p])
	}
	if len(t.dims) == 0 {
		t.dims, t.inSt = []int{1}, []int{1}
	}
	last := len(t.dims) - 1
	if t.inSt[last] != 1 {
		for i, s := range t.inSt {
			if s == 1 {
				t.tile = i
			}
		}
	}
	return t, nil
}

// Run writes the permutation of in into out.
func (t *Transpose) Run(out, in []float32) {
	t.axis(out, in, 0, 0, 0, rowMajorSize(t.dims))
}

func rowMajorSize(dims []int) int {
	n := 1
	for _, d := range dims {
		n *= d
	}
	return n
}

// axis walks output axis d from output offset ob and input offset ib; n
// is the size of the output block from axis d on.
func (t *Transpose) axis(out, in []float32, d, ob, ib, n int) {
	last := len(t.dims) - 1
	if d == last {
		if t.tile >= 0 {
			t.tiles(out, in, ob, ib)
			return
		}
		dst, s := out[ob:ob+t.dims[d]], t.inSt[d]
		if s == 1 {
			copy(dst, in[ib:])
			return
		}
		for j := range dst {
			dst[j] = in[ib+j*s]
		}
		return
	}
	n /= t.dims[d]
	if d == t.tile {
		t.axis(out, in, d+1, ob, ib, n)
		return
	}
	for j := range t.dims[d] {
		t.axis(out, in, d+1, ob+j*n, ib+j*t.inSt[d], n)
	}
}

// tiles copies the plane of output axes t.tile and last at ob, ib.
func (t *Transpose) tiles(out, in []float32, ob, ib int) {
	last := len(t.dims) - 1
	na, nb := t.dims[t.tile], t.dims[last]
	oa := 1 // output stride of the tiled axis
	for _, d := range t.dims[t.tile+1:] {
		oa *= d
	}
	sb := t.inSt[last]
	for a0 := 0; a0 < na; a0 += transposeTile {
		for b0 := 0; b0 < nb; b0 += transposeTile {
			for a := a0; a < min(a0+transposeTile, na); a++ {
				dst := out[ob+a*oa+b0 : ob+a*oa+min(b0+transposeTile, nb)]
				src := ib + a + b0*sb
				for j := range dst {
					dst[j] = in[src+j*sb]
				}
			}
		}
	}
}

// transpose16Portable is transpose16 in plain Go.
func transpose16Portable(dst []float32, rows *[16]int, src []float32, stride int) {
	for t, r := range rows {
		d := dst[r:][:16]
		for i := range d {
			d[i] = src[i*stride+t]
		}
	}
}

// deinterleavePortable is deinterleave in plain Go.
func deinterleavePortable(even, odd, src []float32) {
	for i := 0; i+1 < len(src); i += 2 {
		even[i/2], odd[i/2] = src[i], src[i+1]
	}
	if len(src)%2 == 1 {
		even[len(src)/2] = src[len(src)-1]
	}
}
