// Package ingest turns labelled images, an ImageFolder tree or IDX files,
// into an internal/dataset dataset in a store, under
// datasets/<name>/<digest>/, where the digest (the manifest's sha256) is
// what run declarations pin (spec.dataset.sha256).
//
// Decoding and resizing happen here, once: the shards hold uint8 pixels of
// one shape. The whole dataset is built in a local staging directory first,
// so bad input leaves nothing in the store; then the shards are uploaded,
// then the manifest, each write-once. The bytes depend only on the source
// images and the options, so an interrupted ingest run again produces the
// same digest, skips the shards already stored and finishes.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"

	"github.com/aerie-ml/aerie/internal/dataset"
	"github.com/aerie-ml/aerie/internal/exitcode"
	"github.com/aerie-ml/aerie/internal/pixels"
	"github.com/aerie-ml/aerie/internal/repofile"
	"github.com/aerie-ml/aerie/internal/store"
)

// DefaultMaxImageBytes caps the bytes read of one source image.
const DefaultMaxImageBytes = 64 << 20

// Options control an ingest. The zero value keeps the sources' size and
// channels, splits off no test set, and uses the defaults below.
type Options struct {
	// Name is the dataset's name in the store layout.
	Name string
	// Want, when not empty, is the digest the dataset must have.
	Want string
	// Height and Width resize every image (shorter side, then centre crop);
	// 0 keeps the sources' size, which must then be the same for all.
	Height, Width int
	// Channels is 1 (grey) or 3 (RGB); 0 takes the sources', which must
	// then be all grey or all colour.
	Channels int
	// Classes names the labels of IDX sources, in order; empty means
	// Fashion-MNIST's.
	Classes []string
	// TestFraction of each class becomes the test split of an ImageFolder
	// tree without train/ and test/.
	TestFraction float64
	// Seed shuffles the samples before they are sharded, and draws the
	// test split.
	Seed uint64
	// ShardBytes is the target shard size (0: dataset.DefaultShardBytes).
	ShardBytes int64
	// MaxImageBytes caps one source image file (0: DefaultMaxImageBytes).
	MaxImageBytes int64
	// WorkDir holds the staging directory ("" : os.TempDir()).
	WorkDir string
	// Workers decode in parallel (0: GOMAXPROCS).
	Workers int
}

// Result describes an ingested dataset.
type Result struct {
	URI      string // the dataset's root: spec.dataset.uri
	Digest   string // the dataset digest: spec.dataset.sha256
	Manifest *dataset.Manifest
	Files    []dataset.File // shards, then dataset.json
	Format   string         // "idx" or "imagefolder"
}

// IsIDX reports whether dir holds Fashion-MNIST-named IDX files.
func IsIDX(dir string) bool {
	for _, name := range []string{TrainImages + ".gz", TrainImages} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return true
		}
	}
	return false
}

// Dataset ingests the images under src into s. Bad input is an
// exitcode.Data error naming the file; bad options are exitcode.Config.
func Dataset(ctx context.Context, log *slog.Logger, s store.Store, src string, o Options) (*Result, error) {
	if o.Channels != 0 && o.Channels != 1 && o.Channels != 3 {
		return nil, exitcode.Errorf(exitcode.Config, "channels %d: want 1 or 3", o.Channels)
	}
	if (o.Height == 0) != (o.Width == 0) || o.Height < 0 || o.Width < 0 || o.Height > dataset.MaxSide || o.Width > dataset.MaxSide {
		return nil, exitcode.Errorf(exitcode.Config, "size %dx%d: want both sides from 1 to %d", o.Height, o.Width, dataset.MaxSide)
	}
	if o.TestFraction < 0 || o.TestFraction >= 1 {
		return nil, exitcode.Errorf(exitcode.Config, "test fraction %v is not in [0, 1)", o.TestFraction)
	}
	if o.MaxImageBytes <= 0 {
		o.MaxImageBytes = DefaultMaxImageBytes
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	tree, err := repofile.Open(src)
	if err != nil {
		return nil, exitcode.Wrap(exitcode.Config, err)
	}
	defer tree.Close()
	stage, err := os.MkdirTemp(o.WorkDir, "aerie-ingest-*")
	if err != nil {
		return nil, exitcode.Wrap(exitcode.Config, fmt.Errorf("staging directory: %w", err))
	}
	defer os.RemoveAll(stage)

	var b []byte
	format := "imagefolder"
	if IsIDX(src) {
		format = "idx"
		b, err = buildIDX(ctx, tree, stage, o)
	} else {
		b, err = buildFolder(ctx, log, tree, stage, o)
	}
	if err != nil {
		if _, ok := errors.AsType[*exitcode.Error](err); !ok && ctx.Err() == nil {
			err = exitcode.Wrap(exitcode.Data, err)
		}
		return nil, err
	}
	digest := dataset.Digest(b)
	if o.Want != "" && o.Want != digest {
		return nil, exitcode.Errorf(exitcode.Data, "dataset from %s has digest %s, but %s was expected (same images and options?)", src, digest, o.Want)
	}
	m, _ := dataset.Parse(b)
	prefix, files, err := dataset.Upload(ctx, s, o.Name, stage, b)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		log.Info("dataset file", "uri", s.URI(f.Key), "bytes", f.Size, "sha256", f.SHA256, "present", f.Present)
	}
	return &Result{URI: s.URI(prefix), Digest: digest, Manifest: m, Files: files, Format: format}, nil
}

func buildIDX(ctx context.Context, tree *repofile.Tree, stage string, o Options) ([]byte, error) {
	classes := o.Classes
	if len(classes) == 0 {
		classes = FashionMNISTClasses
	}
	splits, err := readIDXDir(tree, len(classes))
	if err != nil {
		return nil, err
	}
	h, w, ch := o.Height, o.Width, o.Channels
	if h == 0 {
		h, w = splits[0].rows, splits[0].cols
		for _, sp := range splits {
			if sp.rows != h || sp.cols != w {
				return nil, fmt.Errorf("%s images are %dx%d, %s images %dx%d: pass --size", sp.name, sp.rows, sp.cols, splits[0].name, h, w)
			}
		}
	}
	if ch == 0 {
		ch = 1
	}
	shape := dataset.Shape{Height: h, Width: w, Channels: ch}
	wr, err := dataset.NewWriter(stage, classes, shape, o.ShardBytes)
	if err != nil {
		return nil, exitcode.Wrap(exitcode.Config, err)
	}
	defer wr.Abort()
	for si, sp := range splits {
		n := len(sp.labels)
		order := dataset.Permute(o.Seed, uint64(si)<<1, n)
		err := convert(ctx, o.Workers, n, shape, func(k int) (image.Image, error) {
			return sp.image(order[k]), nil
		}, func(k int, px []byte) error {
			return wr.Add(sp.name, int(sp.labels[order[k]]), px)
		})
		if err != nil {
			return nil, err
		}
	}
	_, b, err := wr.Finish()
	return b, err
}

func buildFolder(ctx context.Context, log *slog.Logger, tree *repofile.Tree, stage string, o Options) ([]byte, error) {
	f, err := listFolder(tree, o.TestFraction, o.Seed)
	if err != nil {
		return nil, err
	}
	// Check every header first, so that bad files fail before any decoding
	// and channels and size are known.
	var first struct {
		grey, colour string
		h, w         int
		sized        string
	}
	splits := slices.Sorted(maps.Keys(f.items))
	total := 0
	for _, sp := range splits {
		for _, it := range f.items[sp] {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			_, hd, err := readImage(tree, it.rel, o.MaxImageBytes)
			if err != nil {
				return nil, err
			}
			if hd.grey && first.grey == "" {
				first.grey = it.rel
			}
			if !hd.grey && first.colour == "" {
				first.colour = it.rel
			}
			if o.Channels == 0 && first.grey != "" && first.colour != "" {
				return nil, fmt.Errorf("%s is grey but %s is colour: pass --channels 1 or 3", tree.Path(first.grey), tree.Path(first.colour))
			}
			if o.Height == 0 {
				if first.sized == "" {
					first.sized, first.h, first.w = it.rel, hd.h, hd.w
				} else if hd.h != first.h || hd.w != first.w {
					return nil, fmt.Errorf("%s is %dx%d but %s is %dx%d: pass --size HxW", tree.Path(it.rel), hd.h, hd.w, tree.Path(first.sized), first.h, first.w)
				}
			}
			total++
		}
	}
	shape := dataset.Shape{Height: o.Height, Width: o.Width, Channels: o.Channels}
	if shape.Height == 0 {
		shape.Height, shape.Width = first.h, first.w
	}
	if shape.Channels == 0 {
		shape.Channels = 3
		if first.colour == "" {
			shape.Channels = 1
		}
	}
	log.Info("source checked", "images", total, "classes", len(f.classes), "shape", shape.String())
	wr, err := dataset.NewWriter(stage, f.classes, shape, o.ShardBytes)
	if err != nil {
		return nil, exitcode.Wrap(exitcode.Data, fmt.Errorf("%s: %w", tree.Dir(), err))
	}
	defer wr.Abort()
	for si, sp := range splits {
		items := f.items[sp]
		order := dataset.Permute(o.Seed, uint64(si)<<1, len(items))
		err := convert(ctx, o.Workers, len(items), shape, func(k int) (image.Image, error) {
			it := items[order[k]]
			b, _, err := readImage(tree, it.rel, o.MaxImageBytes)
			if err != nil {
				return nil, err
			}
			return decode(tree, it.rel, b)
		}, func(k int, px []byte) error {
			return wr.Add(sp, items[order[k]].class, px)
		})
		if err != nil {
			return nil, err
		}
	}
	_, b, err := wr.Finish()
	return b, err
}

// convert loads and converts n images with workers goroutines, handing the
// pixels to add in order 0..n-1.
func convert(ctx context.Context, workers, n int, shape dataset.Shape, load func(k int) (image.Image, error), add func(k int, px []byte) error) error {
	const chunk = 256
	bufs := make([][]byte, chunk)
	for i := range bufs {
		bufs[i] = make([]byte, shape.Bytes())
	}
	errs := make([]error, chunk)
	for lo := 0; lo < n; lo += chunk {
		if err := ctx.Err(); err != nil {
			return err
		}
		hi := min(lo+chunk, n)
		var wg sync.WaitGroup
		next := make(chan int)
		for range workers {
			wg.Go(func() {
				for k := range next {
					img, err := load(k)
					if err == nil {
						pixels.Convert(bufs[k-lo], img, shape)
					}
					errs[k-lo] = err
				}
			})
		}
		for k := lo; k < hi; k++ {
			next <- k
		}
		close(next)
		wg.Wait()
		for k := lo; k < hi; k++ {
			if errs[k-lo] != nil {
				return errs[k-lo]
			}
			if err := add(k, bufs[k-lo]); err != nil {
				return err
			}
		}
	}
	return nil
}
