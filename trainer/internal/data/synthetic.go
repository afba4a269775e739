package data

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"

	"github.com/aerie-ml/aerie/internal/dataset"
	"github.com/aerie-ml/aerie/internal/store"
)

// Synthetic describes a small learnable dataset for tests: class k is a
// bright bar in row band k over noise, jittered by a pixel, in every
// channel.
type Synthetic struct {
	Shape         dataset.Shape
	Classes       int
	Train, Test   int
	Seed          uint64
	SamplesAShard int // 0: 32, so that even a small set has several shards and windows
}

// Write ingests the dataset into s under datasets/synthetic/<digest>/, as
// ingest would, and returns its URI and digest.
func (y Synthetic) Write(ctx context.Context, s store.Store) (uri, digest string, err error) {
	h, w := y.Shape.Height, y.Shape.Width
	if y.Classes < 1 || h < y.Classes+2 || w < 4 {
		return "", "", fmt.Errorf("synthetic dataset: %d classes need at least %d rows", y.Classes, y.Classes+2)
	}
	per := y.SamplesAShard
	if per < 1 {
		per = 32
	}
	dir, err := os.MkdirTemp("", "aerie-synthetic-*")
	if err != nil {
		return "", "", err
	}
	defer os.RemoveAll(dir)
	classes := make([]string, y.Classes)
	for k := range classes {
		classes[k] = fmt.Sprintf("class-%d", k)
	}
	wr, err := dataset.NewWriter(dir, classes, y.Shape, int64(per)*dataset.RecordBytes(y.Shape))
	if err != nil {
		return "", "", err
	}
	defer wr.Abort()
	rng := rand.New(rand.NewPCG(y.Seed, 1))
	img := make([]byte, y.Shape.Bytes())
	c := y.Shape.Channels
	for _, sp := range []struct {
		name string
		n    int
	}{{TrainSplit, y.Train}, {TestSplit, y.Test}} {
		for range sp.n {
			k := rng.IntN(y.Classes)
			for i := range img {
				img[i] = byte(rng.IntN(60))
			}
			row := 1 + k*(h-2)/y.Classes + rng.IntN(3) - 1
			row = min(max(row, 0), h-1)
			for x := w / 7; x < w-w/7; x++ {
				for ch := range c {
					img[(row*w+x)*c+ch] = 200 + byte(rng.IntN(56))
				}
			}
			if err := wr.Add(sp.name, k, img); err != nil {
				return "", "", err
			}
		}
	}
	_, manifest, err := wr.Finish()
	if err != nil {
		return "", "", err
	}
	prefix, _, err := dataset.Upload(ctx, s, "synthetic", dir, manifest)
	if err != nil {
		return "", "", err
	}
	return s.URI(prefix), dataset.Digest(manifest), nil
}

// Open writes the dataset into a new file:// store under dir and opens it
// for training with cfg.
func (y Synthetic) Open(ctx context.Context, dir string, cfg Config) (*Source, error) {
	root, err := store.Open(ctx, "file://"+dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	uri, digest, err := y.Write(ctx, root)
	if err != nil {
		return nil, err
	}
	s, err := store.Open(ctx, uri)
	if err != nil {
		return nil, err
	}
	src, err := Open(ctx, s, digest, cfg)
	if err != nil {
		s.Close()
		return nil, err
	}
	src.closeStore = s
	return src, nil
}
