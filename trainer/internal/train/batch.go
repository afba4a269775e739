package train

import (
	"context"
	"math/rand/v2"
	"sync"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/aerie-ml/aerie/internal/arch"
	"github.com/aerie-ml/aerie/trainer/internal/data"
)

const dropoutStream = 0x5eed_0004

// batch is one rank's shard of one global training batch, ready to feed,
// split into lanes: micro-batches that run concurrently.
type batch struct {
	step  int // within the epoch
	n     int
	lanes [][]any // per lane: images, labels, dropout masks…
}

// batcher builds training batches; every draw is a function of the seed,
// the epoch and the example's index in the training set.
type batcher struct {
	cfg      *Config
	set      *data.Set
	order    []int
	epoch    int
	lo, hi   int // this rank's positions within a global batch
	lanes    int
	unit     int // lanes hold whole multiples of it (Config.unit)
	dropouts []arch.Mask
}

func (b *batcher) make(step int) *batch {
	n := b.hi - b.lo
	x := make([]float32, n*data.ImageSize)
	y := make([]int32, n)
	var masks [][]float32
	if b.dropouts != nil {
		masks = make([][]float32, len(b.dropouts))
		for l, d := range b.dropouts {
			masks[l] = make([]float32, n*size(d.Shape))
		}
	}
	base := step * b.cfg.BatchSize
	for i := range n {
		idx := b.order[base+b.lo+i]
		b.cfg.Augment.Apply(x[i*data.ImageSize:(i+1)*data.ImageSize], b.set.Image(idx), b.cfg.Seed, b.epoch, idx)
		y[i] = int32(b.set.Labels[idx])
		if masks != nil {
			rng := rand.New(rand.NewPCG(uint64(b.cfg.Seed)^dropoutStream, uint64(b.epoch)<<32|uint64(idx)))
			for l, d := range b.dropouts {
				m := masks[l][i*size(d.Shape) : (i+1)*size(d.Shape)]
				fillMask(m, d.Rate, rng)
			}
		}
	}
	bt := &batch{step: step, n: n}
	units := n / b.unit
	in0 := b.cfg.Plan.Input
	for lane := range min(b.lanes, units) {
		lo, hi := data.Shard(units, lane, min(b.lanes, units))
		lo, hi = lo*b.unit, hi*b.unit
		in := []any{
			tensors.FromFlatDataAndDimensions(x[lo*data.ImageSize:hi*data.ImageSize], hi-lo, in0.H, in0.W, in0.C),
			tensors.FromFlatDataAndDimensions(y[lo:hi], hi-lo),
		}
		for l, d := range b.dropouts {
			k := size(d.Shape)
			in = append(in, tensors.FromFlatDataAndDimensions(masks[l][lo*k:hi*k], append([]int{hi - lo}, []int(d.Shape)...)...))
		}
		bt.lanes = append(bt.lanes, in)
	}
	return bt
}

// fillMask sets each element to 0 with probability rate (in steps of
// 2⁻¹⁶), else to 1/(1-rate): inverted dropout.
func fillMask(m []float32, rate float64, rng *rand.Rand) {
	threshold := uint64(rate * 65536)
	keep := float32(1 / (1 - rate))
	var bits uint64
	for j := range m {
		if j%4 == 0 {
			bits = rng.Uint64()
		}
		if bits&0xffff >= threshold {
			m[j] = keep
		} else {
			m[j] = 0
		}
		bits >>= 16
	}
}

func size(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// prefetch builds batches from..to-1 on a goroutine, a little ahead of the
// training steps. stop ends and waits for it.
func prefetch(ctx context.Context, from, to int, mk func(int) *batch) (<-chan *batch, func()) {
	ch := make(chan *batch, 2)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(ch)
		for s := from; s < to; s++ {
			b := mk(s)
			select {
			case ch <- b:
			case <-done:
				return
			case <-ctx.Done():
				return
			}
		}
	})
	var once sync.Once
	return ch, func() {
		once.Do(func() { close(done) })
		wg.Wait()
	}
}
