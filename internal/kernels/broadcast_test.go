package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
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
