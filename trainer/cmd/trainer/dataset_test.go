package main

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aerie-ml/aerie/internal/dataset"
	"github.com/aerie-ml/aerie/internal/exitcode"
	"github.com/aerie-ml/aerie/internal/manifest"
	"github.com/aerie-ml/aerie/internal/store"
)

// ingestTiny writes a dataset of random images in the format
// ingest writes, into a file:// store, and returns its URI and digest.
func ingestTiny(t *testing.T, shape dataset.Shape, classes []string, perClass int) (uri, digest string) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	w, err := dataset.NewWriter(dir, classes, shape, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	pixels := make([]byte, shape.Bytes())
	for _, split := range []string{"train", "test"} {
		for c := range classes {
			for range perClass {
				for i := range pixels {
					pixels[i] = byte(rng.IntN(256))
				}
				if err := w.Add(split, c, pixels); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	_, manifest, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	root := "file://" + t.TempDir()
	s, err := store.Open(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	prefix, _, err := dataset.Upload(ctx, s, "tiny", dir, manifest)
	if err != nil {
		t.Fatal(err)
	}
	return s.URI(prefix), dataset.Digest(manifest)
}

// TestTrainOnOtherShapes: the architecture is planned on the dataset's
// shape and classes, colour or not; one it cannot take is refused naming
// the dataset.
func TestTrainOnOtherShapes(t *testing.T) {
	uri, digest := ingestTiny(t, dataset.Shape{Height: 20, Width: 24, Channels: 3}, []string{"red", "green", "blue"}, 8)
	out := t.TempDir()
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"train", "--arch=small", "--epochs=1", "--batch-size=8", "--val-fraction=0.1", "--flip", "--brightness=0.2",
		"--name=t", "--data=" + uri, "--dataset-sha256=" + digest, "--output=" + out}, &bytes.Buffer{}, &stderr)
	if err != nil {
		t.Fatalf("20×24 colour dataset of 3 classes: %v\n%s", err, stderr.String())
	}
	ms, _ := filepath.Glob(filepath.Join(out, "models/t/*/manifest.json"))
	if len(ms) != 1 {
		t.Fatalf("manifests %v, want one", ms)
	}
	b, _ := os.ReadFile(ms[0])
	m, err := manifest.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Metrics.ClassAccuracy) != 3 || !m.Hyperparameters.HorizontalFlip || m.Hyperparameters.Brightness != 0.2 {
		t.Errorf("manifest: %d class accuracies, flip %v, brightness %v; want 3, true, 0.2", len(m.Metrics.ClassAccuracy), m.Hyperparameters.HorizontalFlip, m.Hyperparameters.Brightness)
	}

	uri, digest = ingestTiny(t, dataset.Shape{Height: 2, Width: 2, Channels: 1}, []string{"a", "b"}, 2)
	err = run(context.Background(), []string{"train", "--arch=cnn", "--data=" + uri, "--dataset-sha256=" + digest,
		"--output=" + filepath.Join(t.TempDir(), "out")}, &bytes.Buffer{}, &bytes.Buffer{})
	if exitcode.Of(err) != exitcode.Config || !strings.Contains(err.Error(), "dataset "+uri) {
		t.Errorf("cnn on 2×2 images: %v, want a Config error naming the dataset", err)
	}
}
