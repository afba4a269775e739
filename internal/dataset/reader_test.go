package dataset_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/aerie-ml/aerie/internal/dataset"
	"github.com/aerie-ml/aerie/internal/exitcode"
	"github.com/aerie-ml/aerie/internal/store"
)

func TestReader(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			b := be.open(t)
			d, _, _ := uploadTiny(t, b, 30, 4) // 8 train shards
			cache := t.TempDir()
			r, err := d.Reader("train", dataset.Config{CacheDir: cache, CacheShards: 2})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			ctx := t.Context()
			buf := make([]byte, tinyShape.Bytes())
			for j := range r.Len() {
				class, err := r.Sample(ctx, j, buf)
				if err != nil {
					t.Fatal(err)
				}
				if class != classOf("train", int(j)) || !bytes.Equal(buf, pixels(tinyShape, "train", int(j))) {
					t.Fatalf("sample %d: class %d and pixels %v, want %d and %v", j, class, buf, classOf("train", int(j)), pixels(tinyShape, "train", int(j)))
				}
				// The cache never holds more than CacheShards shards.
				if ents, _ := os.ReadDir(cache); len(ents) > 2 {
					t.Fatalf("after sample %d the cache holds %d files, more than 2", j, len(ents))
				}
			}
			if got := r.Fetched(); got != 8 {
				t.Errorf("read the split in order with %d fetches, want one per shard (8)", got)
			}

			// A batch: normalized floats, HWC, and labels.
			r2, err := d.Reader("test", dataset.Config{Mean: []float32{0.5, 0.5, 0.5}, Std: []float32{0.5, 0.5, 0.5}})
			if err != nil {
				t.Fatal(err)
			}
			defer r2.Close()
			x := make([]float32, 2*tinyShape.Bytes())
			y := make([]int32, 2)
			if err := r2.Batch(ctx, []int64{3, 0}, x, y); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]int32{int32(classOf("test", 3)), int32(classOf("test", 0))}, y); diff != "" {
				t.Errorf("labels (-want +got):\n%s", diff)
			}
			p := pixels(tinyShape, "test", 3)
			for i := range tinyShape.Bytes() {
				if want := float32(p[i])/255*2 - 1; math.Abs(float64(x[i]-want)) > 1e-6 {
					t.Fatalf("x[%d] = %v, want %v", i, x[i], want)
				}
			}
		})
	}
}

// TestReaderReusesVerifiedCache: a second reader on the same cache fetches
// nothing, and a damaged cache file is fetched again.
func TestReaderCache(t *testing.T) {
	b := openFile(t)
	d, _, _ := uploadTiny(t, b, 10, 4)
	cache := t.TempDir()
	read := func() *dataset.Reader {
		r, err := d.Reader("train", dataset.Config{CacheDir: cache})
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, tinyShape.Bytes())
		for j := range r.Len() {
			if _, err := r.Sample(t.Context(), j, buf); err != nil {
				t.Fatal(err)
			}
		}
		r.Close()
		return r
	}
	if got := read().Fetched(); got != 3 {
		t.Errorf("first read fetched %d shards, want 3", got)
	}
	if got := read().Fetched(); got != 0 {
		t.Errorf("second read fetched %d shards, want 0", got)
	}
	ents, _ := os.ReadDir(cache)
	p := cache + "/" + ents[0].Name()
	os.Chmod(p, 0o644)
	c := mustRead(t, p)
	c[600] ^= 1
	os.WriteFile(p, c, 0o644)
	if got := read().Fetched(); got != 1 {
		t.Errorf("read after damaging a cached shard fetched %d, want 1", got)
	}
}

func TestReaderErrors(t *testing.T) {
	rec := dataset.RecordBytes(tinyShape)
	tests := []struct {
		name   string
		gsOnly bool
		damage func(t *testing.T, b *backend, prefix string)
		code   int
		want   string // both the shard and the sample must be named
	}{
		{
			name:   "missing shard",
			damage: func(t *testing.T, b *backend, prefix string) { b.s.Delete(t.Context(), prefix+"train-000001.tar") },
			code:   exitcode.Data,
			want:   "shard train-000001.tar, sample 5 (key 000000005): fetch",
		},
		{
			name: "truncated shard",
			damage: func(t *testing.T, b *backend, prefix string) {
				if err := os.Truncate(b.file(prefix+"train-000001.tar"), 2*rec+10); err != nil {
					t.Fatal(err)
				}
			},
			code: exitcode.Data,
			want: "shard train-000001.tar, sample 6 (key 000000006)",
		},
		{
			name: "corrupt pixels",
			damage: func(t *testing.T, b *backend, prefix string) {
				p := b.file(prefix + "train-000001.tar")
				c := mustRead(t, p)
				c[3*rec+3*512+1] ^= 0x40
				if err := os.WriteFile(p, c, 0o644); err != nil {
					t.Fatal(err)
				}
			},
			code: exitcode.Data,
			want: "shard train-000001.tar, sample 7 (key 000000007)",
		},
		{
			name:   "store unavailable",
			gsOnly: true,
			damage: func(t *testing.T, b *backend, prefix string) { b.unavailable.Store(true) },
			code:   exitcode.StorageDown,
			want:   "shard train-000001.tar, sample 5 (key 000000005): fetch",
		},
	}
	for _, be := range backends {
		for _, tt := range tests {
			if tt.gsOnly && be.name != "gs" {
				continue
			}
			t.Run(be.name+"/"+tt.name, func(t *testing.T) {
				b := be.open(t)
				d, _, prefix := uploadTiny(t, b, 10, 4)
				r, err := d.Reader("train", dataset.Config{})
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				buf := make([]byte, tinyShape.Bytes())
				if _, err := r.Sample(t.Context(), 0, buf); err != nil {
					t.Fatal(err)
				}
				tt.damage(t, b, prefix)
				_, err = r.Sample(t.Context(), 5, buf)
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("Sample(5) = %v, want an error containing %q", err, tt.want)
				}
				if got := exitcode.Of(err); got != tt.code {
					t.Errorf("exitcode.Of(%v) = %d, want %d", err, got, tt.code)
				}
				if _, ok := errors.AsType[*dataset.SampleError](err); !ok {
					t.Errorf("Sample(5) = %v, want a *SampleError in its chain", err)
				}
			})
		}
	}
}

func TestCheckShards(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			b := be.open(t)
			d, _, prefix := uploadTiny(t, b, 10, 4)
			if err := d.CheckShards(t.Context()); err != nil {
				t.Fatalf("CheckShards of an intact dataset: %v", err)
			}
			if err := os.Truncate(b.file(prefix+"test-000001.tar"), 100); err != nil {
				t.Fatal(err)
			}
			// The emulator keeps sizes in its metadata: replace the object.
			if be.name == "gs" {
				short := mustRead(t, b.file(prefix+"test-000001.tar"))
				b.s.Delete(t.Context(), prefix+"test-000001.tar")
				b.s.Put(t.Context(), prefix+"test-000001.tar", bytes.NewReader(short), store.PutOptions{})
			}
			err := d.CheckShards(t.Context())
			if err == nil || exitcode.Of(err) != exitcode.Data || !strings.Contains(err.Error(), "shard test-000001.tar is 100 bytes") {
				t.Errorf("CheckShards with a truncated shard = %v, want a Data error naming it", err)
			}
			b.s.Delete(t.Context(), prefix+"test-000001.tar")
			err = d.CheckShards(t.Context())
			if err == nil || exitcode.Of(err) != exitcode.Data || !strings.Contains(err.Error(), "missing shard test-000001.tar") {
				t.Errorf("CheckShards with a missing shard = %v, want a Data error naming it", err)
			}
		})
	}
}

// TestFetchDeadline: a store that stops answering fails the shard's fetch
// after Config.FetchTimeout with a retryable error naming the shard, and
// the caller's own cancellation stays a cancellation.
func TestFetchDeadline(t *testing.T) {
	b := openGCS(t)
	d, _, _ := uploadTiny(t, b, 10, 4)
	r, err := d.Reader("train", dataset.Config{FetchTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b.stalled.Store(true)
	buf := make([]byte, tinyShape.Bytes())
	_, err = r.Sample(t.Context(), 5, buf)
	if err == nil || !strings.Contains(err.Error(), "fetch train-000001.tar: no answer within 100ms") {
		t.Fatalf("Sample from a stalled store = %v, want the shard and the deadline named", err)
	}
	if got := exitcode.Of(err); got != exitcode.StorageDown {
		t.Errorf("exitcode.Of(%v) = %d, want StorageDown", err, got)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err = r.Sample(ctx, 9, buf)
	if !errors.Is(err, context.DeadlineExceeded) || exitcode.Of(err) == exitcode.StorageDown {
		t.Errorf("Sample with the caller's deadline = %v (code %d), want the caller's DeadlineExceeded, not StorageDown", err, exitcode.Of(err))
	}
}

func TestOpenErrors(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			b := be.open(t)
			d, ds, _ := uploadTiny(t, b, 10, 4)
			if _, err := dataset.Open(t.Context(), ds, strings.Repeat("0", 64)); err == nil || exitcode.Of(err) != exitcode.Data || !strings.Contains(err.Error(), "the run declares 0000") {
				t.Errorf("Open with another digest = %v, want a Data error", err)
			}
			empty, err := store.Open(t.Context(), b.s.URI("datasets/none/"), b.opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer empty.Close()
			if _, err := dataset.Open(t.Context(), empty, d.Digest); err == nil || exitcode.Of(err) != exitcode.Data || !strings.Contains(err.Error(), "no dataset.json") {
				t.Errorf("Open of an empty prefix = %v, want a Data error naming dataset.json", err)
			}
			if _, err := d.Reader("val", dataset.Config{}); err == nil || !strings.Contains(err.Error(), `no split "val" (the dataset has test, train)`) {
				t.Errorf(`Reader("val") = %v`, err)
			}
		})
	}
}

// TestReaderPrefetchAndConcurrency: Prefetch fetches a batch's shards so
// that Batch fetches nothing more, and readers sharing a Reader whose cache
// holds one shard still read right while shards are evicted under them.
func TestReaderPrefetchAndConcurrency(t *testing.T) {
	b := openFile(t)
	d, _, _ := uploadTiny(t, b, 30, 4)
	train, _ := d.Manifest.Split("train")
	o := dataset.NewOrder(train, 1, 0, 2)
	r, err := d.Reader("train", dataset.Config{CacheShards: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Prefetch(t.Context(), o, 0, 6, 1, 2); err != nil {
		t.Fatal(err)
	}
	n := r.Fetched()
	if want := len(o.Shards(0, 6, 1, 2)); n != want {
		t.Errorf("Prefetch fetched %d shards, want %d", n, want)
	}
	x := make([]float32, 3*tinyShape.Bytes())
	y := make([]int32, 3)
	if err := r.Batch(t.Context(), o.Batch(0, 6, 1, 2), x, y); err != nil {
		t.Fatal(err)
	}
	if r.Fetched() != n {
		t.Errorf("Batch after Prefetch fetched %d more shards", r.Fetched()-n)
	}

	small, err := d.Reader("train", dataset.Config{CacheShards: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	errs := make(chan error, 2)
	for g := range 2 {
		go func() {
			buf := make([]byte, tinyShape.Bytes())
			for k := range 60 {
				j := int64((k*7 + g*11) % 30)
				c, err := small.Sample(t.Context(), j, buf)
				if err == nil && (c != classOf("train", int(j)) || !bytes.Equal(buf, pixels(tinyShape, "train", int(j)))) {
					err = fmt.Errorf("sample %d read wrong", j)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
