package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestBroadcastAndSums checks the bias additions and their gradients'
// sums against their definitions on odd sizes.
func TestBroadcastAndSums(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, sz := range [][2]int{{1, 1}, {3, 7}, {5, 33}, {2, 1}, {1, 9}} {
		rows, n := sz[0], sz[1]
		t.Run(fmt.Sprint(rows, "x", n), func(t *testing.T) {
			x, br, bc := randoms(rng, rows*n), randoms(rng, rows), randoms(rng, n)
			wantRows, wantCols := make([]float32, rows*n), make([]float32, rows*n)
			wantRowSum, wantColSum := make([]float32, rows), make([]float32, n)
			for o := range rows {
				for i := range n {
					v := x[o*n+i]
					wantRows[o*n+i], wantCols[o*n+i] = v+br[o], v+bc[i]
					wantRowSum[o] += v
					wantColSum[i] += v
				}
			}
			got := randoms(rng, rows*n)
			AddRows(got, x, br)
			near(t, "AddRows", got, wantRows)
			AddColumns(got, x, bc)
			near(t, "AddColumns", got, wantCols)
			rs, cs := randoms(rng, rows), randoms(rng, n)
			SumRows(rs, x)
			near(t, "SumRows", rs, wantRowSum)
			SumColumns(cs, x)
			near(t, "SumColumns", cs, wantColSum)
		})
	}
}

// TestSelect checks Select with each operand whole or one element, and
// that an unselected infinity leaves no trace.
func TestSelect(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	for _, n := range []int{1, 7, 33, 100} {
		cond := make([]bool, n)
		for i := range cond {
			cond[i] = rng.IntN(2) == 0
		}
		for _, lens := range [][2]int{{n, n}, {n, 1}, {1, n}, {1, 1}} {
			a, b := randoms(rng, lens[0]), randoms(rng, lens[1])
			for i, c := range cond {
				if c && len(b) == n {
					b[i] = float32(math.Inf(-1))
				} else if !c && len(a) == n {
					a[i] = float32(math.Inf(1))
				}
			}
			want := make([]float32, n)
			for i, c := range cond {
				if c {
					want[i] = a[min(i, len(a)-1)]
				} else {
					want[i] = b[min(i, len(b)-1)]
				}
			}
			got := randoms(rng, n)
			Select(got, cond, a, b)
			near(t, fmt.Sprintf("n %d, operands of %v", n, lens), got, want)
		}
	}
}

// TestGreater checks Greater against Go's > with y whole or one element,
// on sizes around the vector width, with ties, infinities and NaNs.
func TestGreater(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	special := []float32{0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN())}
	for _, n := range []int{1, 7, 15, 16, 17, 33, 100} {
		x := randoms(rng, n)
		for i := range x {
			if rng.IntN(4) == 0 {
				x[i] = special[rng.IntN(len(special))]
			}
		}
		for _, ny := range []int{n, 1} {
			y := randoms(rng, ny)
			if ny == n {
				copy(y[:n/2], x[:n/2]) // ties
			} else {
				y[0] = 0
			}
			want := make([]bool, n)
			for i, v := range x {
				want[i] = v > y[min(i, ny-1)]
			}
			got := make([]bool, n)
			for i := range got {
				got[i] = rng.IntN(2) == 0
			}
			Greater(got, x, y)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("n %d, y of %d: (-want +got)\n%s", n, ny, diff)
			}
		}
	}
}
