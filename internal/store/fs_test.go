package store_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/aerie-ml/aerie/internal/store"
)

func TestFS(t *testing.T) {
	files := map[string][]byte{
		"dataset.json":       []byte(`{"schema": "x"}` + "\n"),
		"train-000000.tar":   content(7, 3*512),
		"test-000000.tar":    content(9, 1024),
		"extra/nested.txt":   []byte("n"),
		"extra/deeper/z.bin": content(3, 10),
	}
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := be.new(t)
			prefix := store.DatasetPrefix("tiny", strings.Repeat("ab", 32))
			var names []string
			for name, b := range files {
				mustPut(t, e.s, prefix+name, b, store.PutOptions{IfNotExists: true})
				names = append(names, name)
			}
			mustPut(t, e.s, "datasets/other", []byte("not in the view"), store.PutOptions{})

			fsys := store.FS(t.Context(), e.s, prefix)
			if err := fstest.TestFS(fsys, names...); err != nil {
				t.Fatal(err)
			}
			for name, want := range files {
				got, err := fs.ReadFile(fsys, name)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("ReadFile(%s) = %d bytes that differ from the %d stored", name, len(got), len(want))
				}
			}
			if _, err := fs.Stat(fsys, "missing"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Stat(missing) = %v, want fs.ErrNotExist", err)
			}

			// A corrupt object fails the read through the view too.
			e.corrupt(t, prefix+"test-000000.tar")
			if _, err := fs.ReadFile(fsys, "test-000000.tar"); !errors.Is(err, store.ErrCorrupt) {
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
