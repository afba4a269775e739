package data

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"path"
	"testing/fstest"

	"github.com/aerie-ml/aerie/internal/exitcode"
	"github.com/aerie-ml/aerie/internal/fmnist"
	"github.com/aerie-ml/aerie/internal/store"
)

// maxFileBytes bounds one dataset file read from a store (the training
// images are 47 MB uncompressed).
const maxFileBytes = 256 << 20

// OpenStore is an OpenFunc for store URIs: gs://bucket/prefix/dir (or
// file:///dir through the store) is read into memory, each file gzipped or
// not, and verified by the store's CRC32C on the way.
func OpenStore(ctx context.Context, uri string) (fs.FS, error) {
	s, err := store.Open(ctx, uri)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	objs, err := s.List(ctx, "")
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, o := range objs {
		have[o.Key] = true
	}
	mem := fstest.MapFS{}
	for _, base := range fmnist.Files {
		name := ""
		for _, n := range []string{base + ".gz", base} {
			if have[n] {
				name = n
				break
			}
		}
		if name == "" {
			return nil, exitcode.Errorf(exitcode.Data, "dataset %s: %s[.gz] is missing", uri, base)
		}
		r, err := s.Get(ctx, name)
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(io.LimitReader(r, maxFileBytes+1))
		r.Close()
		if err != nil {
			return nil, fmt.Errorf("dataset %s: %w", s.URI(name), err)
		}
		if len(b) > maxFileBytes {
			return nil, exitcode.Errorf(exitcode.Data, "dataset %s: larger than %d bytes", s.URI(name), maxFileBytes)
		}
		mem[path.Base(name)] = &fstest.MapFile{Data: b}
	}
	return mem, nil
}
