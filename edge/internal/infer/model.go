// Package infer runs the frame loop: frames in, the active model's
// predictions out, GPIO outputs driven with a confidence threshold and
// debounce. The model is swapped under the running loop.
package infer

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/aerie-ml/aerie/internal/dataset"
	"github.com/aerie-ml/aerie/internal/manifest"
	"github.com/aerie-ml/aerie/internal/model"
)

// Classifier is what the loop needs of internal/model's *Classifier.
type Classifier interface {
	Classify(ctx context.Context, images [][]byte) ([]model.Prediction, error)
}

var _ Classifier = (*model.Classifier)(nil)

// Model is a loaded model version.
type Model struct {
	Classifier     Classifier
	ManifestDigest string
	Classes        []string
	// Input is the shape frames are preprocessed to for this model.
	Input dataset.Shape
}

// Load builds the model a version's manifest declares (m: architecture,
// input and classes) and reads its weights. The model normalizes frames as
// training did: by model.spec's normalization, which m.Plan checks is the
// recorded model.input's.
func Load(ctx context.Context, m manifest.Model, weights io.Reader, digest string) (*Model, error) {
	p, err := m.Plan()
	if err != nil {
		return nil, fmt.Errorf("model of %s: %w", digest, err)
	}
	c, err := model.Load(ctx, p, weights)
	if err != nil {
		return nil, fmt.Errorf("load %s weights of %s: %w", p.Name, digest, err)
	}
	return &Model{Classifier: c, ManifestDigest: digest, Classes: m.Classes, Input: m.Input.Shape()}, nil
}

// Labels classifies images one at a time (batch 1: one compiled graph, the
// smallest working set) and returns the predicted classes, as
// selftest.Run wants them.
func (m *Model) Labels(ctx context.Context, images [][]byte) ([]int, error) {
	out := make([]int, len(images))
	for i, img := range images {
		p, err := m.Classifier.Classify(ctx, [][]byte{img})
		if err != nil {
			return nil, err
		}
		out[i] = p[0].Class
	}
	return out, nil
}

// Slot holds the active model. The frame loop reads it per frame; the
// reconciler swaps it. A nil model means none is active.
type Slot struct{ p atomic.Pointer[Model] }

// Load returns the active model or nil.
func (s *Slot) Load() *Model { return s.p.Load() }

// Swap makes m active and returns the previous model. A frame being
// classified by the previous model finishes with it.
func (s *Slot) Swap(m *Model) *Model { return s.p.Swap(m) }
