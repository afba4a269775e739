package dataset_test

import (
	"testing"

	"github.com/aerie-ml/aerie/internal/dataset"
)

// BenchmarkReader reads epochs of a 28×28 grey split of 60,000 samples (40
// shards of 4 MiB) in Order (window 4), in batches of 256, as float32
// batches, from a file:// store.
//
//	go test ./internal/dataset -run '^$' -bench Reader
func BenchmarkReader(b *testing.B) {
	sh := dataset.Shape{Height: 28, Width: 28, Channels: 1}
	const n, batch = 60000, 256
	dir := b.TempDir()
	w, err := dataset.NewWriter(dir, []string{"a", "b", "c"}, sh, 4<<20)
	if err != nil {
		b.Fatal(err)
	}
	px := make([]byte, sh.Bytes())
	for j := range n {
		px[0] = byte(j)
		if err := w.Add("train", j%3, px); err != nil {
			b.Fatal(err)
		}
	}
	_, mb, err := w.Finish()
	if err != nil {
		b.Fatal(err)
	}
	be := openFile(b)
	prefix, _, err := dataset.Upload(b.Context(), be.s, "bench", dir, mb)
	if err != nil {
		b.Fatal(err)
	}
	ds := openPrefix(b, be, prefix)
	d, err := dataset.Open(b.Context(), ds, dataset.Digest(mb))
	if err != nil {
		b.Fatal(err)
	}
	x := make([]float32, batch*sh.Bytes())
	y := make([]int32, batch)
	epoch := func(b *testing.B, r *dataset.Reader) {
		o := dataset.NewOrder(&d.Manifest.Splits[0], 1, 0, 4)
		for s := range o.Steps(batch) {
			if err := r.Batch(b.Context(), o.Batch(s, batch, 0, 1), x, y); err != nil {
				b.Fatal(err)
			}
		}
	}
	// fetch: a cache of 8 shards (the default), so every epoch fetches and
	// verifies all 40 shards again.
	b.Run("fetch", func(b *testing.B) {
		for b.Loop() {
			r, err := d.Reader("train", dataset.Config{})
			if err != nil {
				b.Fatal(err)
			}
			epoch(b, r)
			r.Close()
		}
		b.ReportMetric(float64(b.N)*n/b.Elapsed().Seconds(), "samples/s")
	})
	// cached: every shard stays in the cache after the first epoch.
	b.Run("cached", func(b *testing.B) {
		r, err := d.Reader("train", dataset.Config{CacheShards: 64})
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		epoch(b, r)
		b.ResetTimer()
		for b.Loop() {
			epoch(b, r)
		}
		b.ReportMetric(float64(b.N)*n/b.Elapsed().Seconds(), "samples/s")
	})
}
