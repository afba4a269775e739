package dataset

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/aerie-ml/aerie/internal/exitcode"
	"github.com/aerie-ml/aerie/internal/store"
)

// File is one object Upload stored or found.
type File struct {
	Key    string // relative to the store's root
	Size   int64
	SHA256 string
	// Present is true when the store already held these exact bytes.
	Present bool
}

// Upload stores a dataset that a Writer built in dir under
// store.DatasetPrefix(name, Digest(manifest)) in s: every shard first, then
// the manifest, each write-once (IfNotExists). An interrupted Upload leaves
// shards without a manifest, which no reader opens; running it again with
// the same bytes skips what is there and finishes. A key holding other
// bytes is an exitcode.Data error.
func Upload(ctx context.Context, s store.Store, name, dir string, manifest []byte) (string, []File, error) {
	m, err := Parse(manifest)
	if err != nil {
		return "", nil, exitcode.Wrap(exitcode.Internal, err)
	}
	prefix := store.DatasetPrefix(name, Digest(manifest))
	if err := store.CheckKey(prefix + ManifestFile); err != nil {
		return "", nil, exitcode.Wrap(exitcode.Config, fmt.Errorf("dataset name %q: %w", name, err))
	}
	var files []File
	for _, sp := range m.Splits {
		for _, sh := range sp.Shards {
			path := filepath.Join(dir, sh.File)
			f, err := put(ctx, s, prefix+sh.File, func() (io.ReadCloser, error) { return os.Open(path) })
			if err != nil {
				return "", files, err
			}
			if f.SHA256 != sh.SHA256 || f.Size != sh.Bytes {
				return "", files, exitcode.Errorf(exitcode.Internal, "%s changed after it was written: sha256 %s, manifest %s", path, f.SHA256, sh.SHA256)
			}
			files = append(files, f)
		}
	}
	f, err := put(ctx, s, prefix+ManifestFile, func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(manifest)), nil
	})
	if err != nil {
		return "", files, err
	}
	files = append(files, f)
	return prefix, files, nil
}

// put stores open's content under key unless the store holds it already,
// and returns its size and sha256.
func put(ctx context.Context, s store.Store, key string, open func() (io.ReadCloser, error)) (File, error) {
	r, err := open()
	if err != nil {
		return File{}, exitcode.Wrap(exitcode.Internal, err)
	}
	defer r.Close()
	h := sha256.New()
	var n countWriter
	err = s.Put(ctx, key, io.TeeReader(r, io.MultiWriter(h, &n)), store.PutOptions{IfNotExists: true})
	if err == nil {
		return File{Key: key, Size: int64(n), SHA256: hex.EncodeToString(h.Sum(nil))}, nil
	}
	if !errors.Is(err, store.ErrExists) {
		return File{}, err
	}
	// The key is taken: finish hashing our copy and compare with the stored one.
	if _, err := io.Copy(io.MultiWriter(h, &n), r); err != nil {
		return File{}, exitcode.Wrap(exitcode.Internal, fmt.Errorf("read %s: %w", key, err))
	}
	ours := hex.EncodeToString(h.Sum(nil))
	theirs, err := sha256Of(ctx, s, key)
	if err != nil {
		return File{}, err
	}
	if theirs != ours {
		return File{}, exitcode.Errorf(exitcode.Data, "%s already holds different bytes (sha256 %s, ours %s): the store is inconsistent; delete that object and ingest again", s.URI(key), theirs, ours)
	}
	return File{Key: key, Size: int64(n), SHA256: ours, Present: true}, nil
}

func sha256Of(ctx context.Context, s store.Store, key string) (string, error) {
	r, err := s.Get(ctx, key)
	if err != nil {
		return "", err
	}
	defer r.Close()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}
