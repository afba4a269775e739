package selftest_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/aerie-ml/aerie/internal/dataset"
	"github.com/aerie-ml/aerie/internal/manifest"
	"github.com/aerie-ml/aerie/internal/selftest"
	"github.com/aerie-ml/aerie/internal/store"
)

var classes = []string{"red", "green", "blue"}

var shape = dataset.Shape{Height: 4, Width: 5, Channels: 3}

// testSplit writes a real dataset whose test split has counts[c] samples of
// class c (interleaved, pixels telling the sample's index), in shards of a
// few samples, and opens a Reader of it.
func testSplit(t *testing.T, counts []int) *dataset.Reader {
	t.Helper()
	dir := t.TempDir()
	w, err := dataset.NewWriter(dir, classes, shape, 4*dataset.RecordBytes(shape))
	if err != nil {
		t.Fatal(err)
	}
	left := append([]int(nil), counts...)
	for j := 0; ; j++ {
		added := false
		for c := range left {
			if left[c] == 0 {
				continue
			}
			left[c]--
			added = true
			px := bytes.Repeat([]byte{byte(j), byte(c), 7}, shape.Height*shape.Width)
			if err := w.Add("test", c, px); err != nil {
				t.Fatal(err)
			}
		}
		if !added {
			break
		}
	}
	if err := w.Add("train", 0, make([]byte, shape.Bytes())); err != nil {
		t.Fatal(err)
	}
	_, mb, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	root, err := store.Open(t.Context(), "file://"+filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	prefix, _, err := dataset.Upload(t.Context(), root, "colours", dir, mb)
	if err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(t.Context(), root.URI(prefix))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	d, err := dataset.Open(t.Context(), s, dataset.Digest(mb))
	if err != nil {
		t.Fatal(err)
	}
	r, err := d.Reader(selftest.Split, dataset.Config{CacheDir: t.TempDir(), CacheShards: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestPackDeterministic(t *testing.T) {
	ctx := context.Background()
	r := testSplit(t, []int{9, 9, 2})
	a, err := selftest.Pack(ctx, r, len(classes), 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := selftest.Pack(ctx, testSplit(t, []int{9, 9, 2}), len(classes), 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Data, b.Data) {
		t.Error("Pack of the same split and seed gave different bytes")
	}
	want := manifest.SelfTest{File: selftest.FileName, Split: "test", Seed: 1, PerClass: 3, ClassCounts: []int{3, 3, 2}}
	if diff := cmp.Diff(want, a.Entry); diff != "" {
		t.Errorf("Pack entry (-want +got):\n%s", diff)
	}
	if got, want := int64(len(a.Data)), dataset.ShardBytes(shape, 8); got != want {
		t.Errorf("Pack: %d bytes, want %d (one shard of 8 samples)", got, want)
	}
	c, err := selftest.Pack(ctx, r, len(classes), 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a.Data, c.Data) {
		t.Error("Pack with another seed chose the same samples")
	}
	if _, err := selftest.Pack(ctx, r, len(classes), 0, 1); err == nil {
		t.Error("Pack(perClass 0) = nil error")
	}
}

// version is a manifest listing a packed set.
func version(t *testing.T, p *selftest.Packed) *manifest.Manifest {
	t.Helper()
	f, err := manifest.Describe(selftest.FileName, bytes.NewReader(p.Data))
	if err != nil {
		t.Fatal(err)
	}
	return &manifest.Manifest{
		Model: manifest.Model{Classes: classes, Input: manifest.Input{Height: shape.Height, Width: shape.Width, Channels: shape.Channels}},
		Files: []manifest.File{f}, SelfTest: p.Entry,
	}
}

// byColour classifies the test images by their green value, the class,
// except that it calls every image of class wrong something else.
func byColour(wrong int) selftest.Classify {
	return func(ctx context.Context, images [][]byte) ([]int, error) {
		out := make([]int, len(images))
		for i, img := range images {
			out[i] = int(img[1])
			if out[i] == wrong {
				out[i] = (wrong + 1) % len(classes)
			}
		}
		return out, nil
	}
}

func TestRun(t *testing.T) {
	ctx := context.Background()
	p, err := selftest.Pack(ctx, testSplit(t, []int{5, 5, 5}), len(classes), 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	m := version(t, p)
	res, err := selftest.Run(ctx, m, bytes.NewReader(p.Data), byColour(-1), 1)
	if err != nil {
		t.Fatalf("Run(perfect) = %v", err)
	}
	want := selftest.Result{Accuracy: 1, MinAccuracy: 1, Correct: 9, Total: 9, Classes: []selftest.ClassResult{
		{Class: "red", Correct: 3, Total: 3, Accuracy: 1}, {Class: "green", Correct: 3, Total: 3, Accuracy: 1}, {Class: "blue", Correct: 3, Total: 3, Accuracy: 1},
	}}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("Run (-want +got):\n%s", diff)
	}
	res, err = selftest.Run(ctx, m, bytes.NewReader(p.Data), byColour(2), 0.7)
	if !errors.Is(err, selftest.ErrBelowMinimum) || res.Correct != 6 || res.Classes[2].Accuracy != 0 {
		t.Errorf("Run(blue wrong, 0.7) = %+v, %v; want 6/9 and ErrBelowMinimum", res, err)
	}
	short := func(ctx context.Context, images [][]byte) ([]int, error) { return []int{0}, nil }
	if _, err := selftest.Run(ctx, m, bytes.NewReader(p.Data), short, 0.5); err == nil {
		t.Error("Run with a short answer = nil error")
	}
}

// TestRunTampered: a set whose bytes differ from the manifest fails closed,
// even when the classifier would pass it.
func TestRunTampered(t *testing.T) {
	ctx := context.Background()
	p, err := selftest.Pack(ctx, testSplit(t, []int{4, 4, 4}), len(classes), 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	m := version(t, p)
	rec := dataset.RecordBytes(shape)
	tests := []struct {
		name   string
		edit   func([]byte) []byte
		expect string
	}{
		{"pixel", func(b []byte) []byte { b[3*512] ^= 1; return b }, "the pixels do not match the CRC32C"},
		{"label", func(b []byte) []byte { b[512+4] = '2'; return b }, "sha256"},
		{"truncated", func(b []byte) []byte { return b[:len(b)-512] }, "truncated"},
		{"swapped images", func(b []byte) []byte {
			first := append([]byte(nil), b[:rec]...)
			copy(b, b[rec:2*rec])
			copy(b[rec:], first)
			return b
		}, "header is not the one expected"},
		{"longer", func(b []byte) []byte { return append(b, make([]byte, 512)...) }, "bytes after the end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := tt.edit(append([]byte(nil), p.Data...))
			res, err := selftest.Run(ctx, m, bytes.NewReader(data), byColour(-1), 0.5)
			if !errors.Is(err, selftest.ErrBadSet) || !strings.Contains(err.Error(), tt.expect) {
				t.Errorf("Run(tampered) = %+v, %v; want ErrBadSet saying %q", res, err, tt.expect)
			}
		})
	}
	t.Run("manifest counts", func(t *testing.T) {
		m := version(t, p)
		m.SelfTest.ClassCounts = []int{1, 2, 3}
		if _, err := selftest.Run(ctx, m, bytes.NewReader(p.Data), byColour(-1), 0.5); !errors.Is(err, selftest.ErrBadSet) {
			t.Errorf("Run with other class counts = %v, want ErrBadSet", err)
		}
	})
	t.Run("rehashed", func(t *testing.T) {
		// A consistent shard with another image, re-listed in the manifest:
		// only the digest protects the set, and it no longer matches the pin.
		data := append([]byte(nil), p.Data...)
		data[3*512] ^= 1
		m := version(t, &selftest.Packed{Data: data, Entry: p.Entry})
		if _, err := selftest.Run(ctx, m, bytes.NewReader(data), byColour(-1), 0.5); !errors.Is(err, selftest.ErrBadSet) {
			t.Errorf("Run of a set with a bad CRC = %v, want ErrBadSet", err)
		}
	})
}
