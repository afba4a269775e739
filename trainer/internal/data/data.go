// Package data loads Fashion-MNIST for training: it verifies the declared
// digest, splits the 60k training images into train and validation with a
// seeded permutation, keeps the official 10k test set apart, and yields
// deterministic, sharded, augmented batches normalized to [-1, 1].
package data

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"strings"
	"testing/fstest"

	"github.com/aerie-ml/aerie/internal/exitcode"
	"github.com/aerie-ml/aerie/internal/fmnist"
)

// ImageSize is the number of pixels of one image.
const ImageSize = 28 * 28

// Set is a list of labelled 28×28 images.
type Set struct {
	Images []byte // Len()×784 pixels
	Labels []byte
}

// Len returns the number of examples.
func (s *Set) Len() int { return len(s.Labels) }

// Image returns the pixels of example i.
func (s *Set) Image(i int) []byte { return s.Images[i*ImageSize : (i+1)*ImageSize] }

// Sets are the three disjoint sets training uses.
type Sets struct {
	Train, Val, Test Set
	// Digest is the dataset digest (fmnist.Digest) that was verified.
	Digest string
	// Files maps each file read to its hex sha256.
	Files map[string]string
}

// OpenFunc opens the dataset at a URI the local opener does not know
// (gs://…), as a file system holding the four IDX files. The trainer wires
// internal/store here.
type OpenFunc func(ctx context.Context, uri string) (fs.FS, error)

// Open resolves uri to a file system: "" means Debian's
// dataset-fashion-mnist directory, file:///path and plain paths are local
// directories, and anything else goes to remote (nil: unsupported).
func Open(ctx context.Context, uri string, remote OpenFunc) (fs.FS, string, error) {
	switch {
	case uri == "":
		if _, err := os.Stat(fmnist.DebianDir); err != nil {
			return nil, "", exitcode.Errorf(exitcode.Data, "no dataset given and %s is missing (install Debian's dataset-fashion-mnist or pass a dataset URI)", fmnist.DebianDir)
		}
		return os.DirFS(fmnist.DebianDir), fmnist.DebianDir, nil
	case strings.HasPrefix(uri, "file://"):
		dir := strings.TrimPrefix(uri, "file://")
		return os.DirFS(dir), dir, nil
	case !strings.Contains(uri, "://"):
		return os.DirFS(uri), uri, nil
	case remote != nil:
		fsys, err := remote(ctx, uri)
		return fsys, uri, err
	}
	return nil, "", exitcode.Errorf(exitcode.Config, "dataset URI %q: unsupported scheme", uri)
}

// Load reads the dataset from fsys (named where in errors), checks it
// against digest when digest is not empty, and splits it: the last
// valFraction of a seeded permutation of the training images is the
// validation set. Every failure is an exitcode.Data error naming the file.
func Load(fsys fs.FS, where, digest string, valFraction float64, seed int64) (*Sets, error) {
	if valFraction < 0 || valFraction >= 1 {
		return nil, exitcode.Errorf(exitcode.Config, "validation fraction %v is not in [0, 1)", valFraction)
	}
	// Read each file once: hash it for the manifest and hand the bytes to
	// fmnist.Load, which verifies the digest before parsing anything.
	mem := fstest.MapFS{}
	sums := map[string]string{}
	for _, base := range fmnist.Files {
		name, err := fmnist.Resolve(fsys, base)
		if err != nil {
			return nil, exitcode.Errorf(exitcode.Data, "dataset %s: %w", where, err)
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, exitcode.Errorf(exitcode.Data, "dataset %s: read %s: %w", where, name, err)
		}
		sum := sha256.Sum256(b)
		sums[name] = hex.EncodeToString(sum[:])
		mem[name] = &fstest.MapFile{Data: b}
	}
	ds, err := fmnist.Load(mem, digest)
	if err != nil {
		var fe *fmnist.FileError
		if errors.As(err, &fe) {
			return nil, exitcode.Errorf(exitcode.Data, "dataset %s: file %s: %w", where, fe.File, fe.Err)
		}
		return nil, exitcode.Errorf(exitcode.Data, "dataset %s: %w", where, err)
	}
	for _, sp := range []struct {
		name string
		s    *fmnist.Split
	}{{fmnist.TrainImages, &ds.Train}, {fmnist.TestImages, &ds.Test}} {
		if sp.s.Rows != 28 || sp.s.Cols != 28 {
			return nil, exitcode.Errorf(exitcode.Data, "dataset %s: file %s: images are %d×%d, want 28×28", where, sp.name, sp.s.Rows, sp.s.Cols)
		}
		for i, l := range sp.s.Labels {
			if l >= fmnist.NumClasses {
				return nil, exitcode.Errorf(exitcode.Data, "dataset %s: labels of %s: label %d of example %d is not below %d", where, sp.name, l, i, fmnist.NumClasses)
			}
		}
	}
	n := ds.Train.Len()
	nVal := int(float64(n) * valFraction)
	if n-nVal < 1 || ds.Test.Len() < 1 {
		return nil, exitcode.Errorf(exitcode.Data, "dataset %s: %d training and %d test images leave nothing to train or test on", where, n, ds.Test.Len())
	}
	perm := rand.New(rand.NewPCG(uint64(seed), splitStream)).Perm(n)
	sets := &Sets{
		Train:  gather(ds.Train.Image, ds.Train.Labels, perm[:n-nVal]),
		Val:    gather(ds.Train.Image, ds.Train.Labels, perm[n-nVal:]),
		Test:   Set{Images: ds.Test.Images, Labels: ds.Test.Labels},
		Digest: ds.Digest,
		Files:  sums,
	}
	return sets, nil
}

// Streams of the seeded generators, so that split, shuffle, augmentation
// and dropout draw independent numbers from one seed.
const (
	splitStream   = 0x5eed_0001
	shuffleStream = 0x5eed_0002
	augmentStream = 0x5eed_0003
)

// gather copies the examples idx of a set whose example i is image(i),
// labels[i].
func gather(image func(int) []byte, labels []byte, idx []int) Set {
	out := Set{Images: make([]byte, 0, len(idx)*ImageSize), Labels: make([]byte, 0, len(idx))}
	for _, i := range idx {
		out.Images = append(out.Images, image(i)...)
		out.Labels = append(out.Labels, labels[i])
	}
	return out
}

// Order is the order in which epoch visits n training examples: a
// permutation that depends only on seed and epoch, the same on every rank.
func Order(n int, seed int64, epoch int) []int {
	return rand.New(rand.NewPCG(uint64(seed)^shuffleStream, uint64(epoch))).Perm(n)
}

// StepsPerEpoch is the number of full global batches of size batch in n
// examples; the remainder is dropped, so every step has the same size.
func StepsPerEpoch(n, batch int) int { return n / batch }

// Shard returns the positions [lo, hi) of rank's part of a global batch of
// size batch split over world ranks: contiguous, sizes differing by at most
// one. Splitting each global batch (rather than the epoch) makes N ranks
// see exactly the batches one rank would.
func Shard(batch, rank, world int) (lo, hi int) {
	q, r := batch/world, batch%world
	lo = rank*q + min(rank, r)
	hi = lo + q
	if rank < r {
		hi++
	}
	return lo, hi
}
