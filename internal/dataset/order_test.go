package dataset_test

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/aerie-ml/aerie/internal/dataset"
)

// split of n samples in shards of per (the last one smaller).
func splitOf(n, per int) *dataset.Split {
	sp := &dataset.Split{Name: "train", Samples: int64(n)}
	for i := 0; n > 0; i++ {
		k := min(per, n)
		sp.Shards = append(sp.Shards, dataset.Shard{File: dataset.ShardFile("train", i), Samples: k})
		n -= k
	}
	return sp
}

// globalBatches is what world ranks take at every step of an epoch, each
// step's parts concatenated in rank order.
func globalBatches(sp *dataset.Split, seed uint64, epoch, window, batch, world int, from int64) [][]int64 {
	// Each rank has its own Order, as each replica would.
	orders := make([]*dataset.Order, world)
	for r := range orders {
		orders[r] = dataset.NewOrder(sp, seed, epoch, window)
	}
	var out [][]int64
	for s := from; s < orders[0].Steps(batch); s++ {
		var b []int64
		for r := range world {
			b = append(b, orders[r].Batch(s, batch, r, world)...)
		}
		out = append(out, b)
	}
	return out
}

func TestOrderIndependentOfWorldSize(t *testing.T) {
	sp := splitOf(1003, 50) // 21 shards, the last of 3
	const batch = 32
	want := globalBatches(sp, 7, 2, 4, batch, 1, 0)
	if len(want) != 1003/batch {
		t.Fatalf("%d steps, want %d", len(want), 1003/batch)
	}
	for _, world := range []int{2, 3, 5} {
		if diff := cmp.Diff(want, globalBatches(sp, 7, 2, 4, batch, world, 0)); diff != "" {
			t.Errorf("world %d: global batches differ from world 1 (-want +got):\n%s", world, diff)
		}
	}
	// Resuming at step 11 with another world size continues the sequence.
	for _, world := range []int{1, 2, 3} {
		if diff := cmp.Diff(want[11:], globalBatches(sp, 7, 2, 4, batch, world, 11)); diff != "" {
			t.Errorf("resumed at step 11 with world %d (-want +got):\n%s", world, diff)
		}
	}
}

func TestOrderIsAPermutation(t *testing.T) {
	sp := splitOf(1003, 50)
	o := dataset.NewOrder(sp, 7, 0, 4)
	seen := make([]int64, o.Len())
	for p := range o.Len() {
		seen[p] = o.At(p)
	}
	slices.Sort(seen)
	for i, j := range seen {
		if j != int64(i) {
			t.Fatalf("sorted sequence[%d] = %d: not a permutation", i, j)
		}
	}
}

func TestOrderDependsOnSeedAndEpoch(t *testing.T) {
	sp := splitOf(1003, 50)
	seq := func(seed uint64, epoch int) []int64 {
		o := dataset.NewOrder(sp, seed, epoch, 4)
		var s []int64
		for p := range o.Len() {
			s = append(s, o.At(p))
		}
		return s
	}
	base := seq(7, 0)
	if diff := cmp.Diff(base, seq(7, 0)); diff != "" {
		t.Errorf("same seed and epoch give different orders:\n%s", diff)
	}
	if slices.Equal(base, seq(7, 1)) || slices.Equal(base, seq(8, 0)) {
		t.Errorf("another epoch or seed gives the same order")
	}
	// Pinned so that a change to the shuffles (which would silently change
	// every run's data order and break resumes) shows up here.
	if diff := cmp.Diff([]int64{797, 790, 304, 758, 369, 398, 370, 760}, base[:8]); diff != "" {
		t.Errorf("first positions of seed 7 epoch 0 changed (-want +got):\n%s", diff)
	}
}

// TestOrderLocality checks the bound a loader's cache relies on: one batch
// smaller than a window reads the shards of at most two windows.
func TestOrderLocality(t *testing.T) {
	sp := splitOf(1003, 50)
	const window, batch = 4, 64
	o := dataset.NewOrder(sp, 3, 0, window)
	for s := range o.Steps(batch) {
		for r := range 3 {
			if n := len(o.Shards(s, batch, r, 3)); n > 2*window {
				t.Fatalf("step %d rank %d reads %d shards, more than 2 windows of %d", s, r, n, window)
			}
		}
	}
	// Positions in one window come from that window's shards only.
	w0 := map[int64]bool{}
	for p := range int64(4 * 50) {
		w0[o.At(p)/50] = true
	}
	if len(w0) != window {
		t.Errorf("the first 200 positions come from %d shards, want %d", len(w0), window)
	}
}

func TestPart(t *testing.T) {
	tests := []struct {
		batch, world int
		want         [][2]int
	}{
		{10, 1, [][2]int{{0, 10}}},
		{10, 3, [][2]int{{0, 4}, {4, 7}, {7, 10}}},
		{2, 3, [][2]int{{0, 1}, {1, 2}, {2, 2}}},
	}
	for _, tt := range tests {
		var got [][2]int
		for r := range tt.world {
			lo, hi := dataset.Part(tt.batch, r, tt.world)
			got = append(got, [2]int{lo, hi})
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("Part(%d, r, %d) (-want +got):\n%s", tt.batch, tt.world, diff)
		}
	}
}
