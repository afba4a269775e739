package kernels

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// refTranspose permutes in's axes by walking out's indices.
func refTranspose(dims, perm []int, in []float32) []float32 {
	outDims := make([]int, len(perm))
	for i, p := range perm {
		outDims[i] = dims[p]
	}
	st := rowMajor(dims)
	out := make([]float32, len(in))
	idx := make([]int, len(perm))
	for o := range out {
		rem, off := o, 0
		for i := len(perm) - 1; i >= 0; i-- {
			idx[i] = rem % outDims[i]
			rem /= outDims[i]
			off += idx[i] * st[perm[i]]
		}
		out[o] = in[off]
	}
	return out
}

func TestTransposeMatchesDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	cases := [][2][]int{
		{{32, 14, 14, 32}, {3, 0, 1, 2}}, // a dropout mask to channel-first
		{{64, 32, 7, 7}, {1, 2, 3, 0}},   // flatten
		{{3, 3, 32, 64}, {3, 2, 0, 1}},
		{{5}, {0}},
		{{1, 1}, {1, 0}},
		{{17, 1, 33}, {2, 1, 0}},
	}
	for range 200 {
		r := 1 + rng.IntN(5)
		dims := make([]int, r)
		for d := range dims {
			dims[d] = 1 + rng.IntN(20)
			if rng.IntN(4) == 0 {
				dims[d] = 1
			}
		}
		cases = append(cases, [2][]int{dims, rng.Perm(r)})
	}
	for _, c := range cases {
		dims, perm := c[0], c[1]
		what := fmt.Sprintf("dims %v perm %v", dims, perm)
		tr, err := NewTranspose(dims, perm)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		in := randoms(rng, size(dims))
		out := randoms(rng, len(in))
		tr.Run(out, in)
		if want := refTranspose(dims, perm, in); !slices.Equal(out, want) {
			t.Errorf("%s: wrong result (merged dims %v, strides %v, tile %d)", what, tr.dims, tr.inSt, tr.tile)
		}
	}
}

func TestTransposeRejects(t *testing.T) {
	for _, perm := range [][]int{{0}, {0, 0}, {0, 2}, {-1, 0}} {
		if _, err := NewTranspose([]int{2, 3}, perm); err == nil {
			t.Errorf("NewTranspose([2 3], %v) = nil error, want one", perm)
		}
	}
}

// TestTranspose16 checks the 16×16 block transpose against its
// definition, with rows written in any order.
func TestTranspose16(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const stride = 21
	src := randoms(rng, 15*stride+16)
	var rows [16]int
	for i, r := range rng.Perm(20)[:16] {
		rows[i] = r * 16
	}
	got, want := make([]float32, 20*16), make([]float32, 20*16)
	transpose16(got, &rows, src, stride)
	for c, r := range rows {
		for i := range 16 {
			want[r+i] = src[i*stride+c]
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("transpose16 (-want +got):\n%s", diff)
	}
}

// TestDeinterleave checks the stride-2 split against its definition on
// odd and even lengths around the vector width.
func TestDeinterleave(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{2, 3, 31, 32, 33, 64, 75} {
		src := randoms(rng, n)
		even, odd := make([]float32, (n+1)/2), make([]float32, n/2)
		deinterleave(even, odd, src)
		var want []float32
		for i := 0; i < n; i += 2 {
			want = append(want, src[i])
		}
		for i := 1; i < n; i += 2 {
			want = append(want, src[i])
		}
		if diff := cmp.Diff(want, append(even, odd...)); diff != "" {
			t.Errorf("deinterleave of %d (-want +got):\n%s", n, diff)
		}
	}
}
