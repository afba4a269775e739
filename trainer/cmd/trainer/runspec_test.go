package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/aerie-ml/aerie/trainer/internal/data"
)

func TestTrainFromRunDeclaration(t *testing.T) {
	dataDir, out := t.TempDir(), t.TempDir()
	digest, err := data.WriteSynthetic(dataDir, 160, 40, 1)
	if err != nil {
		t.Fatal(err)
	}
	runFile := filepath.Join(t.TempDir(), "quick.yaml")
	os.WriteFile(runFile, []byte(`apiVersion: aerie.dev/v1alpha1
kind: TrainingRun
metadata:
  name: quick
spec:
  model:
    architecture: small
    epochs: 1
    batchSize: 32
  dataset:
    uri: gs://bucket/datasets/fashion-mnist/`+digest+`/
    sha256: `+digest+`
  output:
    uri: gs://bucket
  gates:
    minTestAccuracy: 0.1
    minClassAccuracy: 0
  image: example.com/trainer@sha256:b28009423ade7024b7ee2e34661b867eadccec2ebc2e829494036c7adbd59954
`), 0o644)
	// The declaration names gs:// locations; flags point them here.
	var stdout, stderr bytes.Buffer
	err = run(context.Background(), []string{"train", "--run=" + runFile, "--data=" + dataDir, "--output=" + out}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	if m, _ := filepath.Glob(filepath.Join(out, "models/quick/*/manifest.json")); len(m) != 1 {
		t.Errorf("manifests %v, want one under models/quick/", m)
	}
}
