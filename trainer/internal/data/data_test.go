package data

import (
	"os"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/aerie-ml/aerie/internal/arch"
	"github.com/aerie-ml/aerie/internal/dataset"
)

var tinyRGB = dataset.Shape{Height: 12, Width: 10, Channels: 3}

// open ingests a synthetic dataset of n train and n/2 test samples, 8 a
// shard, into a temporary store and opens it.
func open(t *testing.T, n int, cfg Config) *Source {
	t.Helper()
	src, err := Synthetic{Shape: tinyRGB, Classes: 4, Train: n, Test: n / 2, Seed: 1, SamplesAShard: 8}.Open(t.Context(), t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

func TestHoldout(t *testing.T) {
	src := open(t, 400, Config{ValFraction: 0.25, Seed: 7, Window: 2})
	val := evalSamples(t, src, src.Val(0, 1))
	if got := int64(len(val)); got != src.ValLen() || got+src.TrainLen() != 400 {
		t.Fatalf("%d validation samples, ValLen %d, TrainLen %d of 400", got, src.ValLen(), src.TrainLen())
	}
	// About a quarter: 100 ± 5 standard deviations (8.7).
	if n := len(val); n < 57 || n > 143 {
		t.Errorf("%d of 400 samples held out at 0.25", n)
	}
	// Training never sees a validation sample, and sees each other one
	// at most once an epoch.
	seen := map[int64]bool{}
	ep := src.Epoch(0, 10, 0, 10)
	for range src.StepsPerEpoch(10) {
		for _, j := range ep.Next() {
			if seen[j] || slices.Contains(val, j) {
				t.Fatalf("train sample %d seen twice or held out", j)
			}
			seen[j] = true
		}
	}
	other := open(t, 400, Config{ValFraction: 0.25, Seed: 8, Window: 2})
	if slices.Equal(val, evalSamples(t, other, other.Val(0, 1))) {
		t.Error("seeds 7 and 8 hold out the same samples")
	}
	none := open(t, 40, Config{})
	if none.ValLen() != 0 || none.TrainLen() != 40 {
		t.Errorf("no validation fraction: %d held out of %d", none.ValLen(), none.TrainLen())
	}
}

// evalSamples reads an evaluation to its end and returns the first pixel
// of each sample, which is unique enough to tell samples apart here, and
// checks that the labels are the classes the images show.
func evalSamples(t *testing.T, src *Source, e *Eval) []int64 {
	t.Helper()
	var out []int64
	px := src.Shape().Bytes()
	x := make([]float32, 5*px)
	y := make([]int32, 5)
	for {
		n, err := e.Next(t.Context(), x, y)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		for i := range n {
			out = append(out, fingerprint(x[i*px:(i+1)*px]))
		}
	}
	if int64(len(out)) != e.Len() {
		t.Fatalf("evaluation read %d samples, Len %d", len(out), e.Len())
	}
	return out
}

// fingerprint identifies a sample by its noisy pixels.
func fingerprint(x []float32) int64 {
	var h int64
	for _, v := range x[:16] {
		h = h*31 + int64((v+1)*127.5+0.5)
	}
	return h
}

// TestEpochIndependentOfWorldSize: the ranks of any world size together
// take, batch by batch, the samples one rank takes; a resumed epoch
// continues the same sequence.
func TestEpochIndependentOfWorldSize(t *testing.T) {
	src := open(t, 300, Config{ValFraction: 0.1, Seed: 3, Window: 3})
	const batch = 12
	steps := src.StepsPerEpoch(batch)
	one := src.Epoch(4, batch, 0, batch)
	var want [][]int64
	for range steps {
		want = append(want, one.Next())
	}
	for _, world := range []int{2, 3, 5, 12} {
		eps := make([]*Epoch, world)
		for r := range world {
			lo, hi := dataset.Part(batch, r, world)
			eps[r] = src.Epoch(4, batch, lo, hi)
		}
		for s := range steps {
			var got []int64
			for r := range world {
				got = append(got, eps[r].Next()...)
			}
			if diff := cmp.Diff(want[s], got); diff != "" {
				t.Fatalf("world %d step %d (-one rank +ranks):\n%s", world, s, diff)
			}
		}
	}
	lo, hi := dataset.Part(batch, 1, 2)
	resumed := src.Epoch(4, batch, lo, hi)
	resumed.Skip(5)
	if diff := cmp.Diff(want[5][lo:hi], resumed.Next()); diff != "" {
		t.Errorf("epoch resumed at step 5 (-uninterrupted +resumed):\n%s", diff)
	}
	if slices.Equal(want[0], src.Epoch(5, batch, 0, batch).Next()) {
		t.Error("epochs 4 and 5 start alike")
	}
}

// TestEvalParts: the ranks' parts of an evaluation are the one-rank
// evaluation cut in rank order, and a rank fetches only the shards its part
// is in.
func TestEvalParts(t *testing.T) {
	for _, set := range []string{"val", "test"} {
		t.Run(set, func(t *testing.T) {
			src := open(t, 160, Config{ValFraction: 0.3, Seed: 2})
			start := func(s *Source, r, w int) *Eval {
				if set == "val" {
					return s.Val(r, w)
				}
				return s.Test(r, w)
			}
			want := evalSamples(t, src, start(src, 0, 1))
			for _, world := range []int{2, 3, 7} {
				var got []int64
				for r := range world {
					got = append(got, evalSamples(t, src, start(src, r, world))...)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("world %d (-one rank +ranks):\n%s", world, diff)
				}
			}
			if set == "test" {
				// 80 test samples, 8 a shard: rank 1 of 10 reads one shard.
				fresh := open(t, 160, Config{})
				evalSamples(t, fresh, fresh.Test(1, 10))
				if got := fresh.Fetched(); got != 1 {
					t.Errorf("rank 1 of 10 fetched %d shards for its 8 test samples, want 1", got)
				}
			}
		})
	}
}

// TestCacheBounded: an epoch over many shards keeps at most CacheShards of
// them on disk.
func TestCacheBounded(t *testing.T) {
	dir := t.TempDir()
	src := open(t, 400, Config{Window: 2, CacheShards: 4, CacheDir: dir})
	ep := src.Epoch(0, 8, 0, 8)
	x := make([]float32, 8*src.Shape().Bytes())
	y := make([]int32, 8)
	most := 0
	for range src.StepsPerEpoch(8) {
		if err := src.ReadTrain(t.Context(), ep.Next(), Augment{Shape: src.Shape()}, 0, x, y); err != nil {
			t.Fatal(err)
		}
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		most = max(most, len(ents))
	}
	if most > 4 {
		t.Errorf("%d shards in the cache at once, CacheShards is 4", most)
	}
	if got := src.Fetched(); got < 50 {
		t.Errorf("an epoch over 50 shards with a cache of 4 fetched %d", got)
	}
}

// TestNormalizesByPlan: with the plan's declared per-channel mean and
// deviation, training batches and evaluation sets feed the model
// (p/255 - mean[c]) / std[c] of each stored pixel, the formula
// model.Classify is checked against on the device's side
// (internal/model's TestClassifyAnyPlan), so both see the same tensors.
func TestNormalizesByPlan(t *testing.T) {
	src := open(t, 16, Config{})
	src.Normalization = arch.Normalization{Mean: []float64{0.485, 0.456, 0.406}, Std: []float64{0.229, 0.224, 0.225}}
	n := src.Shape().Bytes()
	want := func(r *dataset.Reader, js []int64) []float32 {
		var out []float32
		buf := make([]byte, n)
		for _, j := range js {
			if _, err := r.Sample(t.Context(), j, buf); err != nil {
				t.Fatal(err)
			}
			for i, p := range buf {
				c := i % 3
				out = append(out, float32((float64(p)/255-src.Normalization.Mean[c])/src.Normalization.Std[c]))
			}
		}
		return out
	}
	approx := cmpopts.EquateApprox(0, 1e-5)
	idx := []int64{0, 5, 11}
	x, y := make([]float32, len(idx)*n), make([]int32, len(idx))
	if err := src.ReadTrain(t.Context(), idx, Augment{Shape: src.Shape()}, 0, x, y); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want(src.train, idx), x, approx); diff != "" {
		t.Errorf("training batch (-want +got):\n%s", diff)
	}
	e := src.Test(0, 1)
	x, y = make([]float32, 4*n), make([]int32, 4)
	if k, err := e.Next(t.Context(), x, y); err != nil || k != 4 {
		t.Fatalf("Next = %d, %v", k, err)
	}
	if diff := cmp.Diff(want(src.test, []int64{0, 1, 2, 3}), x, approx); diff != "" {
		t.Errorf("test set (-want +got):\n%s", diff)
	}
}
