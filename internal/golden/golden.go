// Package golden embeds a small, class-balanced set of Fashion-MNIST TEST
// images, the fixed exam a model version must pass before a device (or
// promotion) trusts it. The files are generated from Debian's
// dataset-fashion-mnist by `go test ./internal/golden -run TestGenerate -update`.
package golden

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"sync"

	"github.com/aerie-ml/aerie/internal/fmnist"
)

// PerClass is the number of golden images of each class.
const PerClass = 30

// Size is the number of golden images.
const Size = PerClass * fmnist.NumClasses

// The embedded files, IDX gzipped like the dataset's own.
const (
	ImagesFile = "golden-images-idx3-ubyte.gz"
	LabelsFile = "golden-labels-idx1-ubyte.gz"
)

var (
	//go:embed golden-images-idx3-ubyte.gz
	imagesGz []byte
	//go:embed golden-labels-idx1-ubyte.gz
	labelsGz []byte
)

var load = sync.OnceValues(func() (*fmnist.Split, error) {
	images, n, rows, cols, err := fmnist.ReadImages(bytes.NewReader(imagesGz))
	if err != nil {
		return nil, fmt.Errorf("golden %s: %w", ImagesFile, err)
	}
	labels, err := fmnist.ReadLabels(bytes.NewReader(labelsGz))
	if err != nil {
		return nil, fmt.Errorf("golden %s: %w", LabelsFile, err)
	}
	if n != len(labels) || n != Size || rows != 28 || cols != 28 {
		return nil, fmt.Errorf("golden set: %d images of %dx%d and %d labels, want %d of 28x28", n, rows, cols, len(labels), Size)
	}
	return &fmnist.Split{Images: images, Labels: labels, Rows: rows, Cols: cols}, nil
})

// Set returns the golden images and labels. The split is shared: do not
// modify it.
func Set() (*fmnist.Split, error) { return load() }

// Select picks the first perClass images of each class from split, in
// split order, so the same source always yields the same set.
func Select(split *fmnist.Split, perClass int) (*fmnist.Split, error) {
	var idx []int
	count := make([]int, fmnist.NumClasses)
	for i, l := range split.Labels {
		if int(l) < fmnist.NumClasses && count[l] < perClass {
			count[l]++
			idx = append(idx, i)
		}
	}
	for c, n := range count {
		if n < perClass {
			return nil, fmt.Errorf("class %d has %d images, want %d", c, n, perClass)
		}
	}
	out := &fmnist.Split{Rows: split.Rows, Cols: split.Cols}
	for _, i := range idx {
		out.Images = append(out.Images, split.Image(i)...)
		out.Labels = append(out.Labels, split.Labels[i])
	}
	return out, nil
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

// ErrBelowMinimum reports a model that classified too few golden images
// correctly.
var ErrBelowMinimum = errors.New("self-test accuracy below minimum")

// Classify labels a batch of 28×28 grayscale images.
type Classify func(ctx context.Context, images [][]byte) ([]int, error)

// SelfTest classifies the golden set and returns the accuracy overall and
// per class. The error wraps ErrBelowMinimum when the accuracy is below
// minAccuracy; the Result is complete either way. classify receives the
// whole set at once and may split it into batches of its choosing.
func SelfTest(ctx context.Context, classify Classify, minAccuracy float64) (Result, error) {
	set, err := Set()
	if err != nil {
		return Result{}, err
	}
	images := make([][]byte, set.Len())
	for i := range images {
		images[i] = set.Image(i)
	}
	got, err := classify(ctx, images)
	if err != nil {
		return Result{}, fmt.Errorf("self-test: classify: %w", err)
	}
	if len(got) != len(images) {
		return Result{}, fmt.Errorf("self-test: classify returned %d labels for %d images", len(got), len(images))
	}
	r := Result{MinAccuracy: minAccuracy, Total: len(images), Classes: make([]ClassResult, fmnist.NumClasses)}
	for c := range r.Classes {
		r.Classes[c].Class = fmnist.Classes[c]
	}
	for i, want := range set.Labels {
		cr := &r.Classes[want]
		cr.Total++
		if got[i] == int(want) {
			cr.Correct++
			r.Correct++
		}
	}
	for c := range r.Classes {
		if r.Classes[c].Total > 0 {
			r.Classes[c].Accuracy = float64(r.Classes[c].Correct) / float64(r.Classes[c].Total)
		}
	}
	r.Accuracy = float64(r.Correct) / float64(r.Total)
	if !r.Passed() {
		return r, fmt.Errorf("%w: %d/%d = %.4f < %.4f", ErrBelowMinimum, r.Correct, r.Total, r.Accuracy, minAccuracy)
	}
	return r, nil
}
