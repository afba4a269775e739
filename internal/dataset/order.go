package dataset

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"slices"
	"sort"
)

// DefaultWindow is the number of shards whose samples Order shuffles
// together.
const DefaultWindow = 4

// Order is the sequence in which one epoch visits a split's samples. It
// depends only on the split's shard sizes, the seed, the epoch and the
// window, never on the world size:
//
//  1. the shards are permuted (seeded by seed and epoch);
//  2. the permuted shards are cut into windows of Window consecutive shards;
//  3. the samples of each window are permuted (seeded by seed, epoch and the
//     window's index), and the windows follow each other.
//
// Global batch s is positions [s×B, (s+1)×B) of that sequence; rank r of W
// takes the contiguous part Part(B, r, W) of it, so the ranks of any world
// size together take exactly the samples of one rank's batch s, and resuming
// at step s with another world size continues the same sequence. A replica
// needs only the shards of the windows its batches fall in: at most two
// windows for one batch smaller than a window.
//
// The shuffles are Fisher–Yates driven by PCG-DXSM words with Lemire's
// bounded draw, both written here, so the order does not change with the Go
// release. An Order is not safe for concurrent use.
type Order struct {
	starts  []int64 // split index of each shard's first sample
	counts  []int   // samples of each shard
	shards  []int   // shards in epoch order
	windows []window
	seed    uint64
	epoch   uint64
	n       int64
	// The last window whose sample permutation was computed.
	cached int
	perm   []int64
}

type window struct {
	first  int   // index in shards of its first shard
	nshard int   // shards in it
	pos    int64 // sequence position of its first sample
	n      int64 // samples in it
}

// Seed streams, so that the two shuffles draw unrelated numbers.
const (
	shardStream  = 0x9e3779b97f4a7c15
	windowStream = 0xbf58476d1ce4e5b9
)

// NewOrder returns split's order for epoch. window < 1 means DefaultWindow.
func NewOrder(split *Split, seed uint64, epoch, window int) *Order {
	if window < 1 {
		window = DefaultWindow
	}
	o := &Order{seed: seed, epoch: uint64(epoch), cached: -1}
	var start int64
	for _, s := range split.Shards {
		o.starts = append(o.starts, start)
		o.counts = append(o.counts, s.Samples)
		start += int64(s.Samples)
	}
	o.n = start
	o.shards = make([]int, len(o.counts))
	for i := range o.shards {
		o.shards[i] = i
	}
	rng := rand.NewPCG(seed^shardStream, o.epoch)
	shuffle(rng, len(o.shards), func(i, j int) { o.shards[i], o.shards[j] = o.shards[j], o.shards[i] })
	var pos int64
	for first := 0; first < len(o.shards); first += window {
		w := windowOf(first, min(window, len(o.shards)-first), pos)
		for _, sh := range o.shards[w.first : w.first+w.nshard] {
			w.n += int64(o.counts[sh])
		}
		o.windows = append(o.windows, w)
		pos += w.n
	}
	return o
}

func windowOf(first, n int, pos int64) window { return window{first: first, nshard: n, pos: pos} }

// Len is the number of samples in the epoch.
func (o *Order) Len() int64 { return o.n }

// Steps is the number of full global batches of size batch in the epoch;
// the remainder is dropped, so every step has the same size.
func (o *Order) Steps(batch int) int64 { return o.n / int64(batch) }

// At returns the split index of the sample at position p of the sequence.
func (o *Order) At(p int64) int64 {
	if p < 0 || p >= o.n {
		panic(fmt.Sprintf("dataset: position %d outside an epoch of %d samples", p, o.n))
	}
	// Windows are few (shards/window); find p's by binary search.
	lo, hi := 0, len(o.windows)
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if o.windows[mid].pos <= p {
			lo = mid
		} else {
			hi = mid
		}
	}
	o.load(lo)
	return o.perm[p-o.windows[lo].pos]
}

// load computes window w's sample permutation, as split indices.
func (o *Order) load(w int) {
	if o.cached == w {
		return
	}
	win := o.windows[w]
	o.perm = o.perm[:0]
	for _, sh := range o.shards[win.first : win.first+win.nshard] {
		for i := range o.counts[sh] {
			o.perm = append(o.perm, o.starts[sh]+int64(i))
		}
	}
	rng := rand.NewPCG(o.seed^windowStream^uint64(w)*shardStream, o.epoch)
	shuffle(rng, len(o.perm), func(i, j int) { o.perm[i], o.perm[j] = o.perm[j], o.perm[i] })
	o.cached = w
}

// Batch returns the split indices of rank's part of global batch step.
func (o *Order) Batch(step int64, batch, rank, world int) []int64 {
	lo, hi := Part(batch, rank, world)
	out := make([]int64, 0, hi-lo)
	base := step * int64(batch)
	for p := lo; p < hi; p++ {
		out = append(out, o.At(base+int64(p)))
	}
	return out
}

// Shards returns the split's shard indices that rank's part of global batch
// step reads, so that a loader can fetch them ahead.
func (o *Order) Shards(step int64, batch, rank, world int) []int {
	var out []int
	for _, j := range o.Batch(step, batch, rank, world) {
		sh := o.shardOf(j)
		if !slices.Contains(out, sh) {
			out = append(out, sh)
		}
	}
	return out
}

// shardOf returns the shard holding split index j.
func (o *Order) shardOf(j int64) int { return shardAt(o.starts, j) }

// shardAt returns the shard holding split index j: the last whose first
// index, in starts, is at most j.
func shardAt(starts []int64, j int64) int {
	return sort.Search(len(starts), func(i int) bool { return starts[i] > j }) - 1
}

// Part returns the positions [lo, hi) of rank's part of a global batch of
// size batch split over world ranks: contiguous, sizes differing by at most
// one, in rank order.
func Part(batch, rank, world int) (lo, hi int) {
	q, r := batch/world, batch%world
	lo = rank*q + min(rank, r)
	hi = lo + q
	if rank < r {
		hi++
	}
	return lo, hi
}

// shuffle is Fisher–Yates with Lemire's nearly divisionless bounded draw.
func shuffle(rng *rand.PCG, n int, swap func(i, j int)) {
	for i := n - 1; i > 0; i-- {
		swap(i, int(uniform(rng, uint64(i+1))))
	}
}

// uniform returns a uniform draw in [0, n).
func uniform(rng *rand.PCG, n uint64) uint64 {
	hi, lo := bits.Mul64(rng.Uint64(), n)
	if lo < n {
		thresh := -n % n
		for lo < thresh {
			hi, lo = bits.Mul64(rng.Uint64(), n)
		}
	}
	return hi
}

// Permute returns a permutation of [0, n) drawn from seed and stream with
// the same fixed algorithm as Order, so that ingest's shuffles too are the
// same on every Go release.
func Permute(seed, stream uint64, n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	shuffle(rand.NewPCG(seed, stream), n, func(i, j int) { p[i], p[j] = p[j], p[i] })
	return p
}
