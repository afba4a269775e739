package data

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/aerie-ml/aerie/internal/dataset"
	"github.com/aerie-ml/aerie/internal/exitcode"
	"github.com/aerie-ml/aerie/internal/fmnist"
	"github.com/aerie-ml/aerie/internal/store"
)

// IsDataset reports whether s holds an internal/dataset dataset (what
// ingest writes) rather than bare IDX files.
func IsDataset(ctx context.Context, s store.Store) (bool, error) {
	_, err := s.Stat(ctx, dataset.ManifestFile)
	if errors.Is(err, store.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// LoadDataset reads the train and test splits of the dataset in s, checked
// against digest, and holds out the validation set as Load does. Until the
// model is built from the dataset's shape (issue #12), the trainer takes
// 28×28 grey images of 10 classes, and keeps the splits in memory.
func LoadDataset(ctx context.Context, s store.Store, digest string, valFraction float64, seed int64) (*Sets, error) {
	if valFraction < 0 || valFraction >= 1 {
		return nil, exitcode.Errorf(exitcode.Config, "validation fraction %v is not in [0, 1)", valFraction)
	}
	d, err := dataset.Open(ctx, s, digest)
	if err != nil {
		return nil, err
	}
	m := d.Manifest
	if want := (dataset.Shape{Height: 28, Width: 28, Channels: 1}); m.Shape != want || len(m.Classes) != fmnist.NumClasses {
		return nil, exitcode.Errorf(exitcode.Data, "dataset %s: %s images of %d classes; this trainer takes %s images of %d classes",
			s.URI(""), m.Shape, len(m.Classes), want, fmnist.NumClasses)
	}
	sets := &Sets{Digest: digest, Files: map[string]string{}}
	for _, sp := range m.Splits {
		for _, sh := range sp.Shards {
			sets.Files[sh.File] = sh.SHA256
		}
	}
	train, err := readSplit(ctx, d, "train")
	if err != nil {
		return nil, err
	}
	if sets.Test, err = readSplit(ctx, d, "test"); err != nil {
		return nil, err
	}
	n := train.Len()
	nVal := int(float64(n) * valFraction)
	if n-nVal < 1 || sets.Test.Len() < 1 {
		return nil, exitcode.Errorf(exitcode.Data, "dataset %s: %d training and %d test images leave nothing to train or test on", s.URI(""), n, sets.Test.Len())
	}
	perm := rand.New(rand.NewPCG(uint64(seed), splitStream)).Perm(n)
	sets.Train = gather(train.Image, train.Labels, perm[:n-nVal])
	sets.Val = gather(train.Image, train.Labels, perm[n-nVal:])
	return sets, nil
}

func readSplit(ctx context.Context, d *dataset.Dataset, name string) (Set, error) {
	r, err := d.Reader(name, dataset.Config{})
	if err != nil {
		return Set{}, err
	}
	defer r.Close()
	n := int(r.Len())
	set := Set{Images: make([]byte, n*ImageSize), Labels: make([]byte, n)}
	for j := range n {
		c, err := r.Sample(ctx, int64(j), set.Images[j*ImageSize:(j+1)*ImageSize])
		if err != nil {
			return Set{}, fmt.Errorf("split %s: %w", name, err)
		}
		set.Labels[j] = byte(c)
	}
	return set, nil
}
