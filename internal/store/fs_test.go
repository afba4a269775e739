package store_test

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/aerie-ml/aerie/internal/fmnist"
	"github.com/aerie-ml/aerie/internal/store"
)

// tinyDataset returns a valid 3-example Fashion-MNIST in IDX, gzipped as
// Debian ships it, and its digest.
func tinyDataset(t *testing.T) (map[string][]byte, string) {
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
	images := func(b *bytes.Buffer) error { return fmnist.WriteImages(b, content(7, 3*28*28), 28, 28) }
	labels := func(b *bytes.Buffer) error { return fmnist.WriteLabels(b, []byte{1, 2, 3}) }
	files := map[string][]byte{
		fmnist.TrainImages + ".gz": gz(images),
		fmnist.TrainLabels + ".gz": gz(labels),
		fmnist.TestImages + ".gz":  gz(images),
		fmnist.TestLabels + ".gz":  gz(labels),
	}
	return files, fmnist.Digest(files)
}

func TestFS(t *testing.T) {
	files, digest := tinyDataset(t)
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := be.new(t)
			prefix := store.DatasetPrefix("fashion-mnist", digest)
			var names []string
			for name, b := range files {
				mustPut(t, e.s, prefix+name, b, store.PutOptions{IfNotExists: true})
				names = append(names, name)
			}
			mustPut(t, e.s, prefix+"extra/nested.txt", []byte("n"), store.PutOptions{})
			mustPut(t, e.s, "datasets/other", []byte("not in the view"), store.PutOptions{})

			fsys := store.FS(t.Context(), e.s, prefix)
			if err := fstest.TestFS(fsys, append(names, "extra/nested.txt")...); err != nil {
				t.Fatal(err)
			}
			ds, err := fmnist.Load(fsys, digest)
			if err != nil {
				t.Fatalf("fmnist.Load over store.FS: %v", err)
			}
			if diff := cmp.Diff([]byte{1, 2, 3}, ds.Test.Labels); diff != "" {
				t.Errorf("test labels (-want +got):\n%s", diff)
			}
			if _, err := fs.Stat(fsys, "missing"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Stat(missing) = %v, want fs.ErrNotExist", err)
			}

			// A corrupt object fails the read through the view too.
			e.corrupt(t, prefix+fmnist.TestLabels+".gz")
			if _, err := fs.ReadFile(fsys, fmnist.TestLabels+".gz"); !errors.Is(err, store.ErrCorrupt) {
				t.Errorf("ReadFile of a corrupt object = %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestDownloadDir(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := be.new(t)
			want := map[string]string{"a.txt": "a", "sub/b.txt": "bb"}
			for name, data := range want {
				mustPut(t, e.s, "models/r/v/"+name, []byte(data), store.PutOptions{IfNotExists: true})
			}
			dir := t.TempDir()
			n, err := store.DownloadDir(t.Context(), e.s, "models/r/v/", dir)
			if err != nil || n != len(want) {
				t.Fatalf("DownloadDir = %d, %v; want %d, nil", n, err, len(want))
			}
			got := map[string]string{}
			err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				b, err := os.ReadFile(p)
				rel, _ := filepath.Rel(dir, p)
				got[filepath.ToSlash(rel)] = string(b)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("downloaded files (-want +got):\n%s", diff)
			}

			// A corrupt object stops the download and leaves no file.
			e.corrupt(t, "models/r/v/a.txt")
			dir2 := t.TempDir()
			if _, err := store.DownloadDir(t.Context(), e.s, "models/r/v/", dir2); !errors.Is(err, store.ErrCorrupt) {
				t.Errorf("DownloadDir of a corrupt object = %v, want ErrCorrupt", err)
			}
			if entries, _ := os.ReadDir(dir2); len(entries) != 0 {
				t.Errorf("failed download left %v", entries)
			}
		})
	}
}
