package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/aerie-ml/aerie/internal/exitcode"
)

func TestTrainFromRunDeclaration(t *testing.T) {
	dataDir, digest := synthetic(t, 160, 40)
	out := t.TempDir()
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
	err := run(context.Background(), []string{"train", "--run=" + runFile, "--data=" + dataDir, "--output=" + out}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	if m, _ := filepath.Glob(filepath.Join(out, "models/quick/*/manifest.json")); len(m) != 1 {
		t.Errorf("manifests %v, want one under models/quick/", m)
	}
}

// TestFlagDefaultsAreTheDeclarations checks that a run given only by flags
// trains exactly as the smallest declaration of the same run: the flags
// take their defaults from runspec.
func TestFlagDefaultsAreTheDeclarations(t *testing.T) {
	runFile := filepath.Join(t.TempDir(), "minimal.yaml")
	os.WriteFile(runFile, []byte(`apiVersion: aerie.dev/v1alpha1
kind: TrainingRun
metadata:
  name: local
spec:
  model:
    architecture: cnn
  dataset:
    uri: gs://bucket/datasets/fashion-mnist/f37bf62265b0989968a94c78e420344f1ede1007dabf032a0dc5e88371fef370/
    sha256: f37bf62265b0989968a94c78e420344f1ede1007dabf032a0dc5e88371fef370
  output:
    uri: gs://bucket
  image: example.com/trainer@sha256:b28009423ade7024b7ee2e34661b867eadccec2ebc2e829494036c7adbd59954
`), 0o644)
	fromRun, err := parseTrainFlags([]string{"--run=" + runFile}, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	const digest = "f37bf62265b0989968a94c78e420344f1ede1007dabf032a0dc5e88371fef370"
	fromFlags, err := parseTrainFlags([]string{"--arch=cnn", "--output=gs://bucket", "--data=gs://bucket/datasets/fashion-mnist/" + digest + "/", "--dataset-sha256=" + digest}, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(fromRun.cfg, fromFlags.cfg); diff != "" {
		t.Errorf("training config from flags differs from the declaration's (-run +flags):\n%s", diff)
	}
	if diff := cmp.Diff(fromRun.gates, fromFlags.gates); diff != "" {
		t.Errorf("gates from flags differ from the declaration's (-run +flags):\n%s", diff)
	}
	if fromRun.valFraction != fromFlags.valFraction {
		t.Errorf("validation fraction: run %v, flags %v", fromRun.valFraction, fromFlags.valFraction)
	}
}

func TestArchRequired(t *testing.T) {
	_, err := parseTrainFlags([]string{"--output=gs://bucket"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--arch") {
		t.Fatalf("parseTrainFlags without --arch = %v, want an error naming --arch", err)
	}
	_, err = parseTrainFlags([]string{"--arch=cnn", "--output=gs://bucket"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--data and --dataset-sha256") {
		t.Fatalf("parseTrainFlags without --data = %v, want an error naming --data", err)
	}
}

// TestFlagsBoundedAsDeclarations: a flag refuses what the declaration's
// field refuses, naming the flag.
func TestFlagsBoundedAsDeclarations(t *testing.T) {
	const digest = "f37bf62265b0989968a94c78e420344f1ede1007dabf032a0dc5e88371fef370"
	base := []string{"--arch=cnn", "--output=gs://bucket", "--data=gs://bucket/d/", "--dataset-sha256=" + digest}
	for _, tt := range []struct{ flags, want string }{
		{"--val-fraction=0.6", "--val-fraction"},
		{"--val-fraction=-0.1", "--val-fraction"},
		{"--val-fraction=0 --patience=3", "--patience"},
	} {
		_, err := parseTrainFlags(append(base, strings.Fields(tt.flags)...), io.Discard, io.Discard)
		if exitcode.Of(err) != exitcode.Config || !strings.Contains(fmt.Sprint(err), tt.want) {
			t.Errorf("parseTrainFlags(%s) = %v, want a configuration error naming %s", tt.flags, err, tt.want)
		}
	}
}

func TestRunFileBounded(t *testing.T) {
	for name, path := range map[string]string{"device": "/dev/zero", "directory": t.TempDir()} {
		t.Run(name, func(t *testing.T) {
			if _, err := parseTrainFlags([]string{"--run=" + path}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "not a regular file") {
				t.Errorf("--run=%s: error %v, want not a regular file", path, err)
			}
		})
	}
	big := filepath.Join(t.TempDir(), "big.yaml")
	os.WriteFile(big, bytes.Repeat([]byte("# padding\n"), 40_000), 0o644)
	if _, err := parseTrainFlags([]string{"--run=" + big}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "more than the limit") {
		t.Errorf("400 KB run file: error %v, want a size error", err)
	}
}
