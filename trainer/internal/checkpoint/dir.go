package checkpoint

import (
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Dir is a Store in a local directory, for tests and local runs: a Create
// writes a temporary file and hard-links it into place, which fails if the
// key exists.
type Dir string

var _ Store = Dir("")

// Create implements Store.
func (d Dir) Create(ctx context.Context, key string, r io.Reader) error {
	p := filepath.Join(string(d), filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Link(f.Name(), p)
}

// Get implements Store.
func (d Dir) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	return os.Open(filepath.Join(string(d), filepath.FromSlash(key)))
}

// List implements Store.
func (d Dir) List(ctx context.Context, prefix string) ([]string, error) {
	var keys []string
	err := filepath.WalkDir(string(d), func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if e.IsDir() || strings.HasPrefix(e.Name(), ".tmp-") {
			return nil
		}
		rel, _ := filepath.Rel(string(d), p)
		if k := filepath.ToSlash(rel); strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
		return nil
	})
	slices.Sort(keys)
	return keys, err
}

// Delete implements Store.
func (d Dir) Delete(ctx context.Context, key string) error {
	return os.Remove(filepath.Join(string(d), filepath.FromSlash(key)))
}

// URI implements Store.
func (d Dir) URI(key string) string {
	return "file://" + filepath.Join(string(d), filepath.FromSlash(key))
}
