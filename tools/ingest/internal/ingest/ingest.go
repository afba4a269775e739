// Package ingest uploads a Fashion-MNIST dataset into a store, under
// datasets/<name>/<digest>/, where the digest is the dataset digest that run
// declarations pin (spec.dataset.sha256).
package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"slices"
	"strings"

	"github.com/aerie-ml/aerie/internal/exitcode"
	"github.com/aerie-ml/aerie/internal/fmnist"
	"github.com/aerie-ml/aerie/internal/store"
)

// SumsFile is written last into a dataset's prefix: the sha256sum-style
// listing the digest is the sha256 of. Its presence marks a complete ingest,
// and `sha256sum -c SHA256SUMS` checks a downloaded copy.
const SumsFile = "SHA256SUMS"

// File is one stored dataset file.
type File struct {
	Name   string
	Size   int64
	SHA256 string // hex
	// Present is true when the store already held these exact bytes.
	Present bool
}

// Result describes an ingested dataset.
type Result struct {
	URI    string // the dataset's root: spec.dataset.uri
	Digest string // the dataset digest: spec.dataset.sha256
	Files  []File
}

// Dataset verifies that src holds a readable Fashion-MNIST (the four IDX
// files, gzipped or not), and stores its files under
// store.DatasetPrefix(name, digest) in s, then SumsFile. When want is not
// empty the digest must equal it.
//
// Ingest is idempotent: a file the store already holds with the same bytes
// is left alone. Different bytes under the same key are an error, as the key
// names the content.
func Dataset(ctx context.Context, log *slog.Logger, s store.Store, src fs.FS, name, want string) (*Result, error) {
	ds, err := fmnist.Load(src, want)
	if err != nil {
		return nil, exitcode.Wrap(exitcode.Data, fmt.Errorf("dataset: %w", err))
	}
	prefix := store.DatasetPrefix(name, ds.Digest)
	if err := store.CheckKey(prefix + SumsFile); err != nil {
		return nil, exitcode.Wrap(exitcode.Config, fmt.Errorf("dataset name %q: %w", name, err))
	}
	res := &Result{URI: s.URI(prefix), Digest: ds.Digest}
	sums := map[string]string{}
	for _, base := range fmnist.Files {
		fname, err := fmnist.Resolve(src, base)
		if err != nil {
			return nil, exitcode.Wrap(exitcode.Data, err)
		}
		f, err := put(ctx, s, prefix+fname, func() (io.ReadCloser, error) { return src.Open(fname) })
		if err != nil {
			return nil, err
		}
		f.Name = fname
		sums[fname] = f.SHA256
		res.Files = append(res.Files, f)
		log.Info("dataset file", "uri", s.URI(prefix+fname), "bytes", f.Size, "sha256", f.SHA256, "present", f.Present)
	}
	// Load read the files once; make sure what was stored is what it read.
	if got := fmnist.DigestOfSums(sums); got != ds.Digest {
		return nil, exitcode.Errorf(exitcode.Data, "dataset files changed while being ingested (digest %s, then %s); ingest again", ds.Digest, got)
	}
	listing := sumsListing(sums)
	f, err := put(ctx, s, prefix+SumsFile, func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(listing)), nil
	})
	if err != nil {
		return nil, err
	}
	f.Name = SumsFile
	res.Files = append(res.Files, f)
	return res, nil
}

// sumsListing is the listing fmnist.DigestOfSums hashes.
func sumsListing(sums map[string]string) []byte {
	names := make([]string, 0, len(sums))
	for n := range sums {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, n := range names {
		b.WriteString(sums[n] + "  " + n + "\n")
	}
	return []byte(b.String())
}

// put stores open's content under key unless the store holds it already,
// and returns its size and sha256.
func put(ctx context.Context, s store.Store, key string, open func() (io.ReadCloser, error)) (File, error) {
	r, err := open()
	if err != nil {
		return File{}, exitcode.Wrap(exitcode.Data, err)
	}
	defer r.Close()
	h := sha256.New()
	var n countWriter
	// The source's own Seek is hidden by the tee, so the store streams it;
	// the store checks its CRC32C either way.
	err = s.Put(ctx, key, io.TeeReader(r, io.MultiWriter(h, &n)), store.PutOptions{IfNotExists: true})
	if err == nil {
		return File{Size: int64(n), SHA256: hex.EncodeToString(h.Sum(nil))}, nil
	}
	if !errors.Is(err, store.ErrExists) {
		return File{}, err
	}
	// The key is taken: finish hashing our copy and compare with the stored one.
	if _, err := io.Copy(io.MultiWriter(h, &n), r); err != nil {
		return File{}, exitcode.Wrap(exitcode.Data, fmt.Errorf("read %s: %w", key, err))
	}
	ours := hex.EncodeToString(h.Sum(nil))
	theirs, err := sha256Of(ctx, s, key)
	if err != nil {
		return File{}, err
	}
	if theirs != ours {
		return File{}, exitcode.Errorf(exitcode.Data, "%s already holds different bytes (sha256 %s, ours %s): the store is inconsistent; delete that object and ingest again", s.URI(key), theirs, ours)
	}
	return File{Size: int64(n), SHA256: ours, Present: true}, nil
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
