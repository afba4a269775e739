package main

import (
	"context"

	"github.com/aerie-ml/aerie/internal/dataset"
	"github.com/aerie-ml/aerie/internal/exitcode"
	"github.com/aerie-ml/aerie/internal/selftest"
	"github.com/aerie-ml/aerie/trainer/internal/data"
)

// packSelfTest packs the version's self-test set from the dataset's test
// split: selftest.DefaultPerClass images of each class, chosen by seed.
func packSelfTest(ctx context.Context, src *data.Source, seed int64) (*selftest.Packed, error) {
	r, err := src.Dataset.Reader(data.TestSplit, dataset.Config{CacheShards: 1})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	set, err := selftest.Pack(ctx, r, len(src.Classes()), selftest.DefaultPerClass, seed)
	if err != nil {
		return nil, exitcode.Wrap(exitcode.Data, err)
	}
	return set, nil
}
