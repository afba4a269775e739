package main

import (
	"bytes"
	"context"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aerie-ml/aerie/internal/dataset"
	"github.com/aerie-ml/aerie/internal/fmnist"
	"github.com/aerie-ml/aerie/internal/store"
)

// ingestTiny writes a dataset of random 28×28 grey images in the format
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

func TestTrainOnIngestedDataset(t *testing.T) {
	uri, digest := ingestTiny(t, dataset.Shape{Height: 28, Width: 28, Channels: 1}, fmnist.Classes[:], 4)
	var stdout, stderr bytes.Buffer
	args := []string{"train", "--arch=small", "--epochs=1", "--batch-size=8", "--val-fraction=0.25",
		"--data=" + uri, "--dataset-sha256=" + digest, "--output=" + t.TempDir()}
	if err := run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), digest) {
		t.Errorf("log does not name the dataset digest %s:\n%s", digest, stderr.String())
	}

	// A wrong digest is a permanent data error naming the manifest.
	args[len(args)-2] = "--dataset-sha256=" + strings.Repeat("0", 64)
	err := run(context.Background(), args, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "manifest sha256 is "+digest) {
		t.Errorf("wrong digest: %v, want the manifest's sha256 named", err)
	}
}

func TestTrainRefusesOtherShapes(t *testing.T) {
	uri, digest := ingestTiny(t, dataset.Shape{Height: 32, Width: 32, Channels: 3}, []string{"a", "b"}, 2)
	err := run(context.Background(), []string{"train", "--arch=small", "--data=" + uri, "--dataset-sha256=" + digest,
		"--output=" + filepath.Join(t.TempDir(), "out")}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "32x32x3 images of 2 classes") {
		t.Errorf("32×32 colour dataset: %v, want a refusal naming its shape", err)
	}
}
