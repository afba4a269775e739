package ingest_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/google/go-cmp/cmp"

	"github.com/aerie-ml/aerie/internal/dataset"
	"github.com/aerie-ml/aerie/internal/exitcode"
	"github.com/aerie-ml/aerie/internal/store"
	"github.com/aerie-ml/aerie/tools/aerie/internal/ingest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// writeIDX writes a gzipped n-example Fashion-MNIST-shaped dataset into a
// new directory: image i is filled with byte i, label i%10.
func writeIDX(t testing.TB, nTrain, nTest int) string {
	t.Helper()
	dir := t.TempDir()
	write := func(name string, f func(*bytes.Buffer) error) {
		var raw, z bytes.Buffer
		if err := f(&raw); err != nil {
			t.Fatal(err)
		}
		zw := gzip.NewWriter(&z)
		zw.Write(raw.Bytes())
		zw.Close()
		if err := os.WriteFile(filepath.Join(dir, name+".gz"), z.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, sp := range []struct {
		images, labels string
		n              int
	}{{ingest.TrainImages, ingest.TrainLabels, nTrain}, {ingest.TestImages, ingest.TestLabels, nTest}} {
		img := make([]byte, sp.n*28*28)
		lbl := make([]byte, sp.n)
		for i := range sp.n {
			for k := range 28 * 28 {
				img[i*784+k] = byte(i)
			}
			lbl[i] = byte(i % 10)
		}
		write(sp.images, func(b *bytes.Buffer) error { return ingest.WriteIDXImages(b, img, 28, 28) })
		write(sp.labels, func(b *bytes.Buffer) error { return ingest.WriteIDXLabels(b, lbl) })
	}
	return dir
}

// backends opens an empty store of each kind: file:// and gs:// on the
// in-process emulator through the real storage client.
var backends = []struct {
	name string
	open func(t *testing.T) (store.Store, []store.Option)
}{
	{"file", func(t *testing.T) (store.Store, []store.Option) {
		s, err := store.Open(t.Context(), "file://"+t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s, nil
	}},
	{"gs", func(t *testing.T) (store.Store, []store.Option) {
		srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{NoListener: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Stop)
		srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: "aerie-data"})
		opts := []store.Option{store.WithClient(srv.Client())}
		s, err := store.Open(t.Context(), "gs://aerie-data/dev", opts...)
		if err != nil {
			t.Fatal(err)
		}
		return s, opts
	}},
}

// openResult opens an ingested dataset as the trainer will: a store at the
// printed URI and the printed digest.
func openResult(t *testing.T, res *ingest.Result, opts []store.Option) *dataset.Dataset {
	t.Helper()
	ds, err := store.Open(t.Context(), res.URI, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ds.Close() })
	d, err := dataset.Open(t.Context(), ds, res.Digest)
	if err != nil {
		t.Fatalf("opening the ingested dataset: %v", err)
	}
	return d
}

// readAll returns every sample of split, by class, as the first pixel.
func readAll(t *testing.T, d *dataset.Dataset, split string) map[int][]byte {
	t.Helper()
	r, err := d.Reader(split, dataset.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	out := map[int][]byte{}
	buf := make([]byte, r.Shape().Bytes())
	for j := range r.Len() {
		c, err := r.Sample(t.Context(), j, buf)
		if err != nil {
			t.Fatal(err)
		}
		out[c] = append(out[c], buf[0])
	}
	return out
}

func TestIDX(t *testing.T) {
	src := writeIDX(t, 20, 10)
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			s, opts := be.open(t)
			res, err := ingest.Dataset(t.Context(), quiet, s, src, ingest.Options{Name: "fashion-mnist", ShardBytes: 8 * dataset.RecordBytes(dataset.Shape{Height: 28, Width: 28, Channels: 1})})
			if err != nil {
				t.Fatal(err)
			}
			if want := s.URI("datasets/fashion-mnist/" + res.Digest + "/"); res.URI != want {
				t.Errorf("URI = %s, want %s", res.URI, want)
			}
			var keys []string
			for _, f := range res.Files {
				keys = append(keys, strings.TrimPrefix(f.Key, "datasets/fashion-mnist/"+res.Digest+"/"))
			}
			want := []string{"test-000000.tar", "test-000001.tar", "train-000000.tar", "train-000001.tar", "train-000002.tar", "dataset.json"}
			if diff := cmp.Diff(want, keys); diff != "" {
				t.Errorf("stored files, manifest last (-want +got):\n%s", diff)
			}
			d := openResult(t, res, opts)
			if diff := cmp.Diff(ingest.FashionMNISTClasses, d.Manifest.Classes); diff != "" {
				t.Errorf("classes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(dataset.Shape{Height: 28, Width: 28, Channels: 1}, d.Manifest.Shape); diff != "" {
				t.Errorf("shape (-want +got):\n%s", diff)
			}
			// Image i has pixels i and label i%10: every sample kept its label.
			got := readAll(t, d, "train")
			for c, firsts := range got {
				for _, p := range firsts {
					if int(p)%10 != c {
						t.Errorf("train sample with pixels %d has class %d", p, c)
					}
				}
				if len(firsts) != 2 {
					t.Errorf("class %d has %d train samples, want 2", c, len(firsts))
				}
			}

			// Again: the same digest, nothing new stored.
			again, err := ingest.Dataset(t.Context(), quiet, s, src, ingest.Options{Name: "fashion-mnist", ShardBytes: 8 * 2560})
			if err != nil {
				t.Fatalf("re-ingest: %v", err)
			}
			if again.Digest != res.Digest {
				t.Errorf("re-ingest digest %s, first %s", again.Digest, res.Digest)
			}
			for _, f := range again.Files {
				if !f.Present {
					t.Errorf("re-ingest stored %s again", f.Key)
				}
			}
		})
	}
}

// TestInterruptedIngestFinishes: shards without a manifest (an ingest cut
// off mid-upload) are no dataset; running ingest again completes it,
// storing only what is missing.
func TestInterruptedIngestFinishes(t *testing.T) {
	src := writeIDX(t, 20, 10)
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			s, opts := be.open(t)
			o := ingest.Options{Name: "fashion-mnist", ShardBytes: 8 * 2560}
			res, err := ingest.Dataset(t.Context(), quiet, s, src, o)
			if err != nil {
				t.Fatal(err)
			}
			prefix := store.DatasetPrefix("fashion-mnist", res.Digest)
			for _, k := range []string{"dataset.json", "train-000002.tar"} {
				if err := s.Delete(t.Context(), prefix+k); err != nil {
					t.Fatal(err)
				}
			}
			ds, err := store.Open(t.Context(), res.URI, opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer ds.Close()
			if _, err := dataset.Open(t.Context(), ds, res.Digest); err == nil || exitcode.Of(err) != exitcode.Data {
				t.Fatalf("Open of a dataset without its manifest = %v, want a Data error", err)
			}
			again, err := ingest.Dataset(t.Context(), quiet, s, src, o)
			if err != nil {
				t.Fatal(err)
			}
			var stored []string
			for _, f := range again.Files {
				if !f.Present {
					stored = append(stored, strings.TrimPrefix(f.Key, prefix))
				}
			}
			if diff := cmp.Diff([]string{"train-000002.tar", "dataset.json"}, stored); diff != "" {
				t.Errorf("second run stored (-want +got):\n%s", diff)
			}
			d, err := dataset.Open(t.Context(), ds, res.Digest)
			if err != nil {
				t.Fatalf("Open after the second run: %v", err)
			}
			if err := d.CheckShards(t.Context()); err != nil {
				t.Errorf("shards after the second run: %v", err)
			}
			readAll(t, d, "train")
		})
	}
}

// TestInterruptedUpload: an ingest whose context ends while it uploads
// leaves shards but no manifest, so no dataset; a second run finishes it.
func TestInterruptedUpload(t *testing.T) {
	src := writeIDX(t, 40, 10)
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			s, opts := be.open(t)
			o := ingest.Options{Name: "fashion-mnist", ShardBytes: 4 * 2560}
			// Cancel after the third object is stored.
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			cut := &cancelAfter{Store: s, n: 3, cancel: cancel}
			if _, err := ingest.Dataset(ctx, quiet, cut, src, o); !errors.Is(err, context.Canceled) {
				t.Fatalf("interrupted ingest = %v, want context.Canceled", err)
			}
			objs, err := s.List(t.Context(), "")
			if err != nil {
				t.Fatal(err)
			}
			for _, obj := range objs {
				if strings.HasSuffix(obj.Key, dataset.ManifestFile) {
					t.Fatalf("an interrupted ingest stored %s", obj.Key)
				}
			}
			if len(objs) < 3 {
				t.Fatalf("the interrupted ingest stored %d objects, want the first 3 shards", len(objs))
			}
			res, err := ingest.Dataset(t.Context(), quiet, s, src, o)
			if err != nil {
				t.Fatal(err)
			}
			present := 0
			for _, f := range res.Files {
				if f.Present {
					present++
				}
			}
			if present < 3 {
				t.Errorf("the second run found %d objects already stored, want at least 3", present)
			}
			openResult(t, res, opts)
		})
	}
}

// cancelAfter cancels its context once n Puts have succeeded.
type cancelAfter struct {
	store.Store
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfter) Put(ctx context.Context, key string, r io.Reader, o store.PutOptions) error {
	err := c.Store.Put(ctx, key, r, o)
	if err == nil {
		if c.n--; c.n == 0 {
			c.cancel()
		}
	}
	return err
}

func TestConflict(t *testing.T) {
	src := writeIDX(t, 20, 10)
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			s, _ := be.open(t)
			o := ingest.Options{Name: "fashion-mnist"}
			res, err := ingest.Dataset(t.Context(), quiet, s, src, o)
			if err != nil {
				t.Fatal(err)
			}
			key := store.DatasetPrefix("fashion-mnist", res.Digest) + "test-000000.tar"
			s.Delete(t.Context(), key)
			if err := s.Put(t.Context(), key, strings.NewReader("something else"), store.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			_, err = ingest.Dataset(t.Context(), quiet, s, src, o)
			if err == nil || !strings.Contains(err.Error(), "already holds different bytes") {
				t.Fatalf("ingest over different bytes = %v, want a conflict", err)
			}
			if got := exitcode.Of(err); got != exitcode.Data {
				t.Errorf("exitcode.Of = %d, want Data", got)
			}
		})
	}
}

// Source images made in the test.

func greyPNG(t testing.TB, w, h int, v uint8) []byte {
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = v
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func colourJPEG(t testing.TB, w, h int, c color.RGBA) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, c)
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 100}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// tree writes files (path → content) under a new directory; a nil content
// makes a directory.
func tree(t testing.TB, files map[string][]byte) string {
	root := t.TempDir()
	for p, b := range files {
		full := filepath.Join(root, filepath.FromSlash(p))
		if b == nil {
			os.MkdirAll(full, 0o755)
			continue
		}
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestImageFolder(t *testing.T) {
	red := color.RGBA{200, 30, 30, 255}
	src := tree(t, map[string][]byte{
		"train/cat/a.png":  greyPNG(t, 40, 30, 10),
		"train/cat/b.jpg":  colourJPEG(t, 30, 50, red),
		"train/dog/c.JPEG": colourJPEG(t, 64, 64, red),
		"train/dog/d.png":  greyPNG(t, 8, 8, 250),
		"test/dog/e.png":   greyPNG(t, 9, 7, 250),
	})
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			s, opts := be.open(t)
			res, err := ingest.Dataset(t.Context(), quiet, s, src, ingest.Options{Name: "pets", Height: 16, Width: 16, Channels: 3})
			if err != nil {
				t.Fatal(err)
			}
			d := openResult(t, res, opts)
			if diff := cmp.Diff([]string{"cat", "dog"}, d.Manifest.Classes); diff != "" {
				t.Errorf("classes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(dataset.Shape{Height: 16, Width: 16, Channels: 3}, d.Manifest.Shape); diff != "" {
				t.Errorf("shape (-want +got):\n%s", diff)
			}
			test, _ := d.Manifest.Split("test")
			train, _ := d.Manifest.Split("train")
			if diff := cmp.Diff([][]int64{{0, 1}, {2, 2}}, [][]int64{test.ClassCounts, train.ClassCounts}); diff != "" {
				t.Errorf("class counts of test and train (-want +got):\n%s", diff)
			}
			// Uniform images stay uniform through resizing; grey becomes R=G=B.
			r, _ := d.Reader("test", dataset.Config{})
			defer r.Close()
			buf := make([]byte, 16*16*3)
			if _, err := r.Sample(t.Context(), 0, buf); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf, bytes.Repeat([]byte{250}, len(buf))) {
				t.Errorf("test/dog/e.png resized: %v, want all 250", buf[:12])
			}
		})
	}
}

func TestImageFolderSeededTestSplit(t *testing.T) {
	files := map[string][]byte{}
	for _, c := range []string{"a", "b"} {
		for i := range 10 {
			files[c+"/"+string(rune('0'+i))+".png"] = greyPNG(t, 5, 5, uint8(i))
		}
	}
	src := tree(t, files)
	s, _ := backends[0].open(t)
	o := ingest.Options{Name: "flat", TestFraction: 0.2, Seed: 3}
	res, err := ingest.Dataset(t.Context(), quiet, s, src, o)
	if err != nil {
		t.Fatal(err)
	}
	test, _ := res.Manifest.Split("test")
	train, _ := res.Manifest.Split("train")
	if diff := cmp.Diff([][]int64{{2, 2}, {8, 8}}, [][]int64{test.ClassCounts, train.ClassCounts}); diff != "" {
		t.Errorf("class counts of test and train (-want +got):\n%s", diff)
	}
	if res.Manifest.Shape != (dataset.Shape{Height: 5, Width: 5, Channels: 1}) {
		t.Errorf("shape %v, want 5x5x1 (the sources')", res.Manifest.Shape)
	}
	o.Seed = 4
	other, err := ingest.Dataset(t.Context(), quiet, s, src, o)
	if err != nil {
		t.Fatal(err)
	}
	if other.Digest == res.Digest {
		t.Errorf("another seed gave the same dataset")
	}
}

func TestBadInput(t *testing.T) {
	png1 := greyPNG(t, 4, 4, 1)
	jpg := colourJPEG(t, 4, 4, color.RGBA{1, 2, 3, 255})
	symlinked := func(t *testing.T) string {
		root := tree(t, map[string][]byte{"train/a/x.png": png1})
		if err := os.Symlink(filepath.Join(root, "train/a/x.png"), filepath.Join(root, "train/a/y.png")); err != nil {
			t.Fatal(err)
		}
		return root
	}
	tests := []struct {
		name string
		src  func(t *testing.T) string
		opts ingest.Options
		want string
	}{
		{"empty class", func(t *testing.T) string {
			return tree(t, map[string][]byte{"train/a/x.png": png1, "train/b": nil})
		}, ingest.Options{}, "train/b: empty class folder"},
		{"not an image", func(t *testing.T) string {
			return tree(t, map[string][]byte{"train/a/x.png": png1, "train/a/notes.txt": []byte("hi")})
		}, ingest.Options{}, "train/a/notes.txt: not an image file"},
		{"unreadable image", func(t *testing.T) string {
			return tree(t, map[string][]byte{"train/a/x.png": png1, "train/a/y.png": []byte("not a png at all")})
		}, ingest.Options{}, "train/a/y.png: not a readable PNG or JPEG"},
		{"truncated image", func(t *testing.T) string {
			return tree(t, map[string][]byte{"train/a/x.png": png1, "train/a/y.png": png1[:len(png1)-20]})
		}, ingest.Options{}, "train/a/y.png: decode"},
		{"zero-size image", func(t *testing.T) string {
			return tree(t, map[string][]byte{"train/a/x.png": png1, "train/a/y.png": {}})
		}, ingest.Options{}, "train/a/y.png: empty file"},
		{"class only in test", func(t *testing.T) string {
			return tree(t, map[string][]byte{"train/a/x.png": png1, "test/b/y.png": png1})
		}, ingest.Options{}, `test/b: class "b" is in test/ but not in train/`},
		{"mixed grey and colour", func(t *testing.T) string {
			return tree(t, map[string][]byte{"train/a/x.png": png1, "train/b/y.jpg": jpg})
		}, ingest.Options{}, "pass --channels 1 or 3"},
		{"mixed sizes", func(t *testing.T) string {
			return tree(t, map[string][]byte{"train/a/x.png": png1, "train/b/y.png": greyPNG(t, 5, 4, 1)})
		}, ingest.Options{}, "pass --size HxW"},
		{"duplicate key", func(t *testing.T) string {
			return tree(t, map[string][]byte{"train/a/x.png": png1, "train/a/x.jpg": jpg})
		}, ingest.Options{Channels: 1}, `duplicate key "train/a/x"`},
		{"symlink", symlinked, ingest.Options{}, "train/a/y.png: is a symlink"},
		{"huge file", func(t *testing.T) string {
			return tree(t, map[string][]byte{"train/a/x.png": png1, "train/a/y.png": greyPNG(t, 300, 300, 0)})
		}, ingest.Options{MaxImageBytes: 200}, "more than the limit of 200"},
		{"huge image", func(t *testing.T) string {
			return tree(t, map[string][]byte{"train/a/x.png": greyPNG(t, 9000, 8000, 0)})
		}, ingest.Options{}, "9000x8000 is more than"},
		{"stray file", func(t *testing.T) string {
			return tree(t, map[string][]byte{"train/a/x.png": png1, "README": []byte("x")})
		}, ingest.Options{}, "README: unexpected beside train/ and test/"},
		{"IDX labels beyond the classes", func(t *testing.T) string { return writeIDX(t, 20, 10) },
			ingest.Options{Classes: []string{"a", "b"}}, "label 2 is 2, but there are 2 classes"},
		{"IDX wrong digest", func(t *testing.T) string { return writeIDX(t, 20, 10) },
			ingest.Options{Want: strings.Repeat("0", 64)}, "but 0000"},
	}
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			s, _ := be.open(t)
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					src := tt.src(t)
					tt.opts.Name = "bad"
					_, err := ingest.Dataset(t.Context(), quiet, s, src, tt.opts)
					if err == nil || !strings.Contains(err.Error(), tt.want) {
						t.Fatalf("ingest = %v, want an error containing %q", err, tt.want)
					}
					if got := exitcode.Of(err); got != exitcode.Data {
						t.Errorf("exitcode.Of(%v) = %d, want Data", err, got)
					}
				})
			}
			if objs, err := s.List(t.Context(), ""); err != nil || len(objs) != 0 {
				t.Errorf("bad input stored %v (%v)", objs, err)
			}
		})
	}
}

func TestBadOptions(t *testing.T) {
	s, _ := backends[0].open(t)
	src := writeIDX(t, 2, 2)
	for _, o := range []ingest.Options{{Channels: 2}, {Height: 3}, {TestFraction: 1}} {
		o.Name = "x"
		if _, err := ingest.Dataset(t.Context(), quiet, s, src, o); exitcode.Of(err) != exitcode.Config {
			t.Errorf("Dataset(%+v) = %v, want a Config error", o, err)
		}
	}
	if _, err := ingest.Dataset(t.Context(), quiet, s, src, ingest.Options{Name: "a/../b"}); !errors.Is(err, store.ErrBadURI) {
		t.Errorf("bad dataset name = %v, want ErrBadURI", err)
	}
}

// fashionMNISTDigest is the digest of Debian's Fashion-MNIST ingested with
// the ingest command's defaults (seed 1): the same on every machine, and what the run files
// under apps/jobs/runs and the Makefile's FMNIST_DIGEST pin.
const fashionMNISTDigest = "b0357547c5cfd67f4249e525e277519f0fd76294d93e0a14afb0208adf693b02"

// TestDebianPackage ingests the real Fashion-MNIST into a file:// store,
// twice with different parallelism: the digest is the pinned one.
func TestDebianPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("70,000 real images in -short mode")
	}
	if _, err := os.Stat(ingest.DebianDir); errors.Is(err, os.ErrNotExist) {
		t.Skip("Debian's dataset-fashion-mnist is not installed (make deps)")
	}
	for _, workers := range []int{1, 3} {
		s, err := store.Open(context.Background(), "file://"+t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		res, err := ingest.Dataset(t.Context(), quiet, s, ingest.DebianDir, ingest.Options{Name: "fashion-mnist", Seed: 1, Workers: workers})
		if err != nil {
			t.Fatal(err)
		}
		if res.Digest != fashionMNISTDigest {
			t.Errorf("%d workers: digest %s, want %s (ingest is not reproducible, or its format changed: update the run files and FMNIST_DIGEST)", workers, res.Digest, fashionMNISTDigest)
		}
		train, _ := res.Manifest.Split("train")
		test, _ := res.Manifest.Split("test")
		if train.Samples != 60000 || test.Samples != 10000 {
			t.Errorf("%d train and %d test samples, want 60000 and 10000", train.Samples, test.Samples)
		}
		for c := range 10 {
			if train.ClassCounts[c] != 6000 || test.ClassCounts[c] != 1000 {
				t.Errorf("class %d: %d train and %d test, want 6000 and 1000", c, train.ClassCounts[c], test.ClassCounts[c])
			}
		}
		s.Close()
	}
}

// TestCommittedManifest: the manifest committed for aerie run check is the one
// ingest writes.
func TestCommittedManifest(t *testing.T) {
	if _, err := os.Stat(ingest.DebianDir); errors.Is(err, os.ErrNotExist) {
		t.Skip("Debian's dataset-fashion-mnist is not installed (make deps)")
	}
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "apps", "jobs", "datasets", "fashion-mnist", fashionMNISTDigest+".json"))
	if err != nil {
		t.Fatal(err)
	}
	if got := dataset.Digest(b); got != fashionMNISTDigest {
		t.Errorf("committed manifest hashes to %s, want %s", got, fashionMNISTDigest)
	}
}
