package train

import (
	"context"
	"math/rand/v2"
	"sync"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/aerie-ml/aerie/internal/arch"
	"github.com/aerie-ml/aerie/internal/dataset"
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

// batcher builds one rank's training batches of an epoch; every draw is a
// function of the seed, the epoch and the sample's index in the train
// split.
type batcher struct {
	cfg      *Config
	src      *data.Source
	ep       *data.Epoch
	aug      data.Augment
	epoch    int
	lanes    int
	unit     int // lanes hold whole multiples of it (Config.unit)
	dropouts []arch.Mask
}

func (b *batcher) make(ctx context.Context, step int) (*batch, error) {
	idx := b.ep.Next()
	n := len(idx)
	in0 := b.cfg.Plan.Input
	px := in0.H * in0.W * in0.C
	x := make([]float32, n*px)
	y := make([]int32, n)
	if err := b.src.ReadTrain(ctx, idx, b.aug, b.epoch, x, y); err != nil {
		return nil, err
	}
	var masks [][]float32
	if b.dropouts != nil {
		masks = make([][]float32, len(b.dropouts))
		for l, d := range b.dropouts {
			masks[l] = make([]float32, n*size(d.Shape))
		}
		for i, j := range idx {
			rng := rand.New(rand.NewPCG(uint64(b.cfg.Seed)^dropoutStream, uint64(b.epoch)<<32|uint64(j)))
			for l, d := range b.dropouts {
				fillMask(masks[l][i*size(d.Shape):(i+1)*size(d.Shape)], d.Rate, rng)
			}
		}
	}
	bt := &batch{step: step, n: n}
	units := n / b.unit
	for lane := range min(b.lanes, units) {
		lo, hi := dataset.Part(units, lane, min(b.lanes, units))
		lo, hi = lo*b.unit, hi*b.unit
		in := []any{
			tensors.FromFlatDataAndDimensions(x[lo*px:hi*px], hi-lo, in0.H, in0.W, in0.C),
			tensors.FromFlatDataAndDimensions(y[lo:hi], hi-lo),
		}
		for l, d := range b.dropouts {
			k := size(d.Shape)
			in = append(in, tensors.FromFlatDataAndDimensions(masks[l][lo*k:hi*k], append([]int{hi - lo}, []int(d.Shape)...)...))
		}
		bt.lanes = append(bt.lanes, in)
	}
	return bt, nil
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

// prefetched is a batch, or the error that building it gave.
type prefetched struct {
	b   *batch
	err error
}

// prefetch builds batches from..to-1 on a goroutine, two ahead of the
// training steps, so that reading the data overlaps the steps. It stops at
// the first error, which it delivers. stop ends and waits for it.
func prefetch(ctx context.Context, from, to int, mk func(context.Context, int) (*batch, error)) (<-chan prefetched, func()) {
	ch := make(chan prefetched, 2)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(ch)
		for s := from; s < to; s++ {
			b, err := mk(ctx, s)
			select {
			case ch <- prefetched{b, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	})
	return ch, func() {
		cancel()
		wg.Wait()
	}
}
