package ingest_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/google/go-cmp/cmp"

	"github.com/aerie-ml/aerie/internal/exitcode"
	"github.com/aerie-ml/aerie/internal/fmnist"
	"github.com/aerie-ml/aerie/internal/store"
	"github.com/aerie-ml/aerie/tools/ingest/internal/ingest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// tinyDataset is a valid 3-example Fashion-MNIST, gzipped like Debian's.
func tinyDataset(t *testing.T) fstest.MapFS {
	t.Helper()
	gz := func(write func(*bytes.Buffer) error) []byte {
		var raw, z bytes.Buffer
		if err := write(&raw); err != nil {
			t.Fatal(err)
		}
		zw := gzip.NewWriter(&z)
		zw.Write(raw.Bytes())
		zw.Close()
		return z.Bytes()
	}
	images := gz(func(b *bytes.Buffer) error { return fmnist.WriteImages(b, bytes.Repeat([]byte{7}, 3*28*28), 28, 28) })
	labels := gz(func(b *bytes.Buffer) error { return fmnist.WriteLabels(b, []byte{1, 2, 3}) })
	return fstest.MapFS{
		fmnist.TrainImages + ".gz": {Data: images},
		fmnist.TrainLabels + ".gz": {Data: labels},
		fmnist.TestImages + ".gz":  {Data: images},
		fmnist.TestLabels + ".gz":  {Data: labels},
	}
}

func digestOf(fsys fstest.MapFS) string {
	files := map[string][]byte{}
	for n, f := range fsys {
		files[n] = f.Data
	}
	return fmnist.Digest(files)
}

// backends opens an empty store of each kind: file:// and gs:// on the
// in-process emulator through the real storage client.
var backends = []struct {
	name string
	// open returns the store and the options that reach its backend.
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

func TestDataset(t *testing.T) {
	src := tinyDataset(t)
	digest := digestOf(src)
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			s, opts := be.open(t)
			ctx := t.Context()
			res, err := ingest.Dataset(ctx, quiet, s, src, "fashion-mnist", digest)
			if err != nil {
				t.Fatal(err)
			}
			prefix := "datasets/fashion-mnist/" + digest + "/"
			if diff := cmp.Diff(s.URI(prefix), res.URI); diff != "" {
				t.Errorf("URI (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(digest, res.Digest); diff != "" {
				t.Errorf("Digest (-want +got):\n%s", diff)
			}
			want := []string{
				fmnist.TrainImages + ".gz", fmnist.TrainLabels + ".gz",
				fmnist.TestImages + ".gz", fmnist.TestLabels + ".gz", ingest.SumsFile,
			}
			if diff := cmp.Diff(want, names(res.Files, false)); diff != "" {
				t.Errorf("stored files (-want +got):\n%s", diff)
			}

			// The trainer's view: the dataset URI opens as a store of its own.
			ds, err := store.Open(ctx, res.URI, opts...)
			if err != nil {
				t.Fatal(err)
			}
			loaded, err := fmnist.Load(store.FS(ctx, ds, ""), res.Digest)
			if err != nil {
				t.Fatalf("loading the ingested dataset: %v", err)
			}
			if diff := cmp.Diff([]byte{1, 2, 3}, loaded.Train.Labels); diff != "" {
				t.Errorf("train labels (-want +got):\n%s", diff)
			}
			// SHA256SUMS is the listing whose sha256 is the digest.
			r, err := ds.Get(ctx, ingest.SumsFile)
			if err != nil {
				t.Fatal(err)
			}
			listing, _ := io.ReadAll(r)
			r.Close()
			h := sha256.Sum256(listing)
			if got := hex.EncodeToString(h[:]); got != digest {
				t.Errorf("sha256(SHA256SUMS) = %s, want the digest %s; listing:\n%s", got, digest, listing)
			}

			// Again: nothing new is stored.
			res, err = ingest.Dataset(ctx, quiet, s, src, "fashion-mnist", "")
			if err != nil {
				t.Fatalf("re-ingest: %v", err)
			}
			if diff := cmp.Diff(want, names(res.Files, true)); diff != "" {
				t.Errorf("files already present on re-ingest (-want +got):\n%s", diff)
			}
		})
	}
}

func names(files []ingest.File, present bool) []string {
	var out []string
	for _, f := range files {
		if f.Present == present {
			out = append(out, f.Name)
		}
	}
	return out
}

func TestDatasetConflict(t *testing.T) {
	src := tinyDataset(t)
	digest := digestOf(src)
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			s, _ := be.open(t)
			key := store.DatasetPrefix("fashion-mnist", digest) + fmnist.TestLabels + ".gz"
			if err := s.Put(t.Context(), key, bytes.NewReader([]byte("something else")), store.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			_, err := ingest.Dataset(t.Context(), quiet, s, src, "fashion-mnist", "")
			if err == nil || !bytes.Contains([]byte(err.Error()), []byte("already holds different bytes")) {
				t.Fatalf("ingest over different bytes = %v, want a conflict", err)
			}
			if got := exitcode.Of(err); got != exitcode.Data {
				t.Errorf("exitcode.Of = %d, want Data", got)
			}
		})
	}
}

func TestDatasetBadInput(t *testing.T) {
	good := tinyDataset(t)
	broken := tinyDataset(t)
	broken[fmnist.TestLabels+".gz"] = &fstest.MapFile{Data: []byte("not gzip, not IDX")}
	missing := tinyDataset(t)
	delete(missing, fmnist.TrainImages+".gz")
	tests := []struct {
		name string
		src  fstest.MapFS
		want string
	}{
		{"not IDX", broken, fmnist.TestLabels},
		{"missing file", missing, fmnist.TrainImages},
		{"digest mismatch", good, "digest mismatch"},
	}
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			s, _ := be.open(t)
			for _, tt := range tests {
				_, err := ingest.Dataset(t.Context(), quiet, s, tt.src, "fashion-mnist", "0000")
				if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tt.want)) {
					t.Errorf("%s: ingest = %v, want an error mentioning %q", tt.name, err, tt.want)
				}
				if got := exitcode.Of(err); got != exitcode.Data {
					t.Errorf("%s: exitcode.Of = %d, want Data", tt.name, got)
				}
			}
			if objs, err := s.List(t.Context(), ""); err != nil || len(objs) != 0 {
				t.Errorf("bad input stored %v (%v)", objs, err)
			}
		})
	}
}

// TestDebianPackage ingests the real dataset into a file:// store.
func TestDebianPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("30 MB of real data in -short mode")
	}
	if _, err := os.Stat(fmnist.DebianDir); errors.Is(err, os.ErrNotExist) {
		t.Skip("Debian's dataset-fashion-mnist is not installed (make deps)")
	}
	const want = "f37bf62265b0989968a94c78e420344f1ede1007dabf032a0dc5e88371fef370"
	root := t.TempDir()
	s, err := store.Open(context.Background(), "file://"+root)
	if err != nil {
		t.Fatal(err)
	}
	res, err := ingest.Dataset(t.Context(), quiet, s, os.DirFS(fmnist.DebianDir), "fashion-mnist", want)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "datasets", "fashion-mnist", want, "SHA256SUMS")); err != nil {
		t.Errorf("SHA256SUMS not stored: %v", err)
	}
	if res.Digest != want {
		t.Errorf("digest = %s, want %s", res.Digest, want)
	}
}
