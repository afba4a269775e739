// Package selftest is a model version's self-test set: a few test images of
// every class, packed by the trainer from the dataset's test split into a
// file of the version (an internal/dataset shard, labels included) and
// listed in its manifest with its sha256. Promotion and the edge agent
// classify it before they trust the version; reading it checks every byte,
// so a tampered set fails the self-test instead of passing it.
package selftest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/aerie-ml/aerie/internal/dataset"
	"github.com/aerie-ml/aerie/internal/manifest"
)

// FileName is the set's name among a version's files.
const FileName = "selftest.tar"

// DefaultPerClass is how many images of each class a set has: enough for a
// sampling error of a few points, small enough for a device to classify in
// seconds.
const DefaultPerClass = 30

// Split is the dataset split sets are packed from: never training images.
const Split = "test"

// seedStream separates the set's draw from the trainer's uses of the seed.
const seedStream = 0x5e1f_7e57

// Source is the split a set is packed from: a *dataset.Reader.
type Source interface {
	Len() int64
	Shape() dataset.Shape
	// Sample copies sample j's pixels into dst and returns its class.
	Sample(ctx context.Context, j int64, dst []byte) (int, error)
}

var _ Source = (*dataset.Reader)(nil)

// Packed is a packed set: the file's content and its manifest entry.
type Packed struct {
	Data  []byte
	Entry manifest.SelfTest
}

// Pack chooses perClass samples of each of classes classes of src (all of a
// class's samples when it has fewer), by seed: the same split and seed give
// the same bytes. It reads src twice in order, once for the classes and
// once for the chosen pixels, so a streamed split is fetched shard by shard.
func Pack(ctx context.Context, src Source, classes, perClass int, seed int64) (*Packed, error) {
	if perClass < 1 {
		return nil, fmt.Errorf("self-test set: %d images a class, want at least 1", perClass)
	}
	sh := src.Shape()
	if int64(classes*perClass)*dataset.RecordBytes(sh) > manifest.MaxSelfTestBytes {
		return nil, fmt.Errorf("self-test set: %d images of %s for %d classes would take more than %d bytes: lower the images per class",
			perClass, sh, classes, manifest.MaxSelfTestBytes)
	}
	pixels := make([]byte, sh.Bytes())
	byClass := make([][]int64, classes)
	for j := range src.Len() {
		c, err := src.Sample(ctx, j, pixels)
		if err != nil {
			return nil, fmt.Errorf("self-test set: %w", err)
		}
		if c < 0 || c >= classes {
			return nil, fmt.Errorf("self-test set: sample %d has class %d of %d", j, c, classes)
		}
		byClass[c] = append(byClass[c], j)
	}
	var chosen []int64
	counts := make([]int, classes)
	for c, idx := range byClass {
		perm := dataset.Permute(uint64(seed), seedStream+uint64(c), len(idx))
		for _, p := range perm[:min(perClass, len(idx))] {
			chosen = append(chosen, idx[p])
		}
		counts[c] = min(perClass, len(idx))
	}
	if len(chosen) == 0 {
		return nil, errors.New("self-test set: the split is empty")
	}
	slices.Sort(chosen)
	var b bytes.Buffer
	w := dataset.NewShardWriter(&b, sh)
	for _, j := range chosen {
		c, err := src.Sample(ctx, j, pixels)
		if err != nil {
			return nil, fmt.Errorf("self-test set: %w", err)
		}
		if err := w.Add(c, pixels); err != nil {
			return nil, fmt.Errorf("self-test set: %w", err)
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return &Packed{Data: b.Bytes(), Entry: manifest.SelfTest{
		File: FileName, Split: Split, Seed: seed, PerClass: perClass, ClassCounts: counts,
	}}, nil
}

// ClassResult is the self-test outcome for one class.
type ClassResult struct {
	Class    string  `json:"class"`
	Correct  int     `json:"correct"`
	Total    int     `json:"total"`
	Accuracy float64 `json:"accuracy"`
}

// Result is a self-test outcome.
type Result struct {
	Accuracy    float64       `json:"accuracy"`
	MinAccuracy float64       `json:"minAccuracy"`
	Correct     int           `json:"correct"`
	Total       int           `json:"total"`
	Classes     []ClassResult `json:"classes"`
}

// Passed reports whether the accuracy reached the minimum.
func (r Result) Passed() bool { return r.Accuracy >= r.MinAccuracy }

// ErrBelowMinimum reports a model that classified too few images correctly.
var ErrBelowMinimum = errors.New("self-test accuracy below minimum")

// ErrBadSet is wrapped by the errors of a set whose bytes are not what the
// manifest says.
var ErrBadSet = errors.New("self-test set does not match the manifest")

// Classify labels a batch of images of the model's input shape.
type Classify func(ctx context.Context, images [][]byte) ([]int, error)

// Batch is how many images Run hands Classify at once, at most.
const Batch = 64

// Run classifies the self-test set of the version m, read from r (its
// file's content), and returns the accuracy overall and per class. It
// checks the set while it reads it: layout, labels, per-image checksums,
// size, sha256 and class counts against m; any difference is an error
// wrapping ErrBadSet and no result. The error wraps ErrBelowMinimum when
// the accuracy is below minAccuracy; the Result is complete then.
func Run(ctx context.Context, m *manifest.Manifest, r io.Reader, classify Classify, minAccuracy float64) (Result, error) {
	st := m.SelfTest
	var file manifest.File
	for _, f := range m.Files {
		if f.Name == st.File {
			file = f
		}
	}
	if file.Name == "" {
		return Result{}, fmt.Errorf("self-test: %w: %s is not among the version's files", ErrBadSet, st.File)
	}
	sh := m.Model.Input.Shape()
	info := dataset.ShardInfo{Shape: sh, NumClasses: len(m.Model.Classes),
		Shard: dataset.Shard{File: file.Name, Bytes: file.Size, SHA256: file.SHA256, Samples: st.Samples()}}
	res := Result{MinAccuracy: minAccuracy, Classes: make([]ClassResult, len(m.Model.Classes))}
	for c := range res.Classes {
		res.Classes[c].Class = m.Model.Classes[c]
	}
	batch := make([][]byte, 0, Batch)
	labels := make([]int, 0, Batch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		got, err := classify(ctx, batch)
		if err != nil {
			return fmt.Errorf("self-test: classify: %w", err)
		}
		if len(got) != len(batch) {
			return fmt.Errorf("self-test: classify returned %d labels for %d images", len(got), len(batch))
		}
		for i, want := range labels {
			cr := &res.Classes[want]
			cr.Total++
			if got[i] == want {
				cr.Correct++
				res.Correct++
			}
		}
		res.Total += len(batch)
		batch, labels = batch[:0], labels[:0]
		return nil
	}
	bufs := make([][]byte, Batch)
	_, err := dataset.ReadShard(r, info, func(i, class int, pixels []byte) error {
		if bufs[len(batch)] == nil {
			bufs[len(batch)] = make([]byte, len(pixels))
		}
		b := bufs[len(batch)]
		copy(b, pixels)
		batch, labels = append(batch, b), append(labels, class)
		if len(batch) == Batch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	var se *dataset.SampleError
	switch {
	case errors.As(err, &se):
		return Result{}, fmt.Errorf("self-test: %w: %w", ErrBadSet, err)
	case err != nil:
		return Result{}, err
	}
	for c := range res.Classes {
		if res.Classes[c].Total != st.ClassCounts[c] {
			return Result{}, fmt.Errorf("self-test: %w: %d images of class %q, the manifest says %d",
				ErrBadSet, res.Classes[c].Total, res.Classes[c].Class, st.ClassCounts[c])
		}
		if res.Classes[c].Total > 0 {
			res.Classes[c].Accuracy = float64(res.Classes[c].Correct) / float64(res.Classes[c].Total)
		}
	}
	res.Accuracy = float64(res.Correct) / float64(res.Total)
	if !res.Passed() {
		return res, fmt.Errorf("%w: %d/%d = %.4f < %.4f", ErrBelowMinimum, res.Correct, res.Total, res.Accuracy, minAccuracy)
	}
	return res, nil
}
