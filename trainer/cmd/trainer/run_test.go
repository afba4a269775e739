package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/aerie-ml/aerie/internal/exitcode"
	"github.com/aerie-ml/aerie/internal/fmnist"
	"github.com/aerie-ml/aerie/internal/manifest"
	"github.com/aerie-ml/aerie/internal/model"
	"github.com/aerie-ml/aerie/trainer/internal/data"
)

func smallArgs(dataDir, out string) []string {
	return []string{"train", "--arch=small", "--epochs=2", "--batch-size=16", "--lr=0.01",
		"--data=" + dataDir, "--output=file://" + out, "--name=t", "--val-fraction=0.2"}
}

func TestTrainWritesLoadableModel(t *testing.T) {
	dataDir, out := t.TempDir(), t.TempDir()
	digest, err := data.WriteSynthetic(dataDir, 160, 60, 1)
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	args := append(smallArgs(dataDir, out), "--dataset-sha256="+digest)
	if err := run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	versions, _ := filepath.Glob(filepath.Join(out, "models/t/*"))
	if len(versions) != 1 {
		t.Fatalf("model versions %v, want one", versions)
	}
	mb, err := os.ReadFile(filepath.Join(versions[0], manifest.FileName))
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Parse(mb)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Verify(os.DirFS(versions[0])); err != nil {
		t.Errorf("verify: %v", err)
	}
	if len(m.Metrics.Epochs) != 2 || m.Dataset.Digest != digest || m.Model.Parameters != 2010 || len(m.Metrics.ClassAccuracy) != fmnist.NumClasses {
		t.Errorf("manifest: %d epochs, digest %s, %d parameters, %d class accuracies", len(m.Metrics.Epochs), m.Dataset.Digest, m.Model.Parameters, len(m.Metrics.ClassAccuracy))
	}
	var files []string
	for _, file := range m.Files {
		files = append(files, file.Name)
	}
	slices.Sort(files)
	want := []string{"confusion.png", "curves.png", "metrics.jsonl", "model.safetensors", "report.html"}
	if diff := cmp.Diff(want, files); diff != "" {
		t.Errorf("manifest files diff (-want +got):\n%s", diff)
	}
	f, err := os.Open(filepath.Join(versions[0], m.Model.Weights))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, err := model.VersionPlan(m.Model)
	if err != nil {
		t.Fatal(err)
	}
	c, err := model.Load(context.Background(), p, f)
	if err != nil {
		t.Fatalf("load the weights for inference: %v", err)
	}
	defer c.Close()
	if _, err := c.Classify(context.Background(), [][]byte{make([]byte, 784)}); err != nil {
		t.Error(err)
	}
}

func TestTrainBadInput(t *testing.T) {
	good := t.TempDir()
	if _, err := data.WriteSynthetic(good, 100, 20, 1); err != nil {
		t.Fatal(err)
	}
	truncated := t.TempDir()
	data.WriteSynthetic(truncated, 100, 20, 1)
	p := filepath.Join(truncated, fmnist.TestImages+".gz")
	b, _ := os.ReadFile(p)
	os.WriteFile(p, b[:len(b)/2], 0o644)
	for _, tc := range []struct {
		name     string
		args     func(out string) []string
		code     int
		contains string
	}{
		{"wrong digest", func(out string) []string {
			return append(smallArgs(good, out), "--dataset-sha256="+strings.Repeat("ab", 32))
		}, exitcode.Data, "digest mismatch"},
		{"truncated file", func(out string) []string { return smallArgs(truncated, out) }, exitcode.Data, fmnist.TestImages},
		{"bad schedule", func(out string) []string { return append(smallArgs(good, out), "--schedule=linear") }, exitcode.Config, "schedule"},
		{"unknown arch", func(out string) []string { return append(smallArgs(good, out), "--arch=vgg") }, exitcode.Config, "vgg"},
		{"missing run file", func(out string) []string { return append(smallArgs(good, out), "--run=/nonexistent/run.yaml") }, exitcode.Config, "/nonexistent/run.yaml"},
		{"no command", func(string) []string { return nil }, exitcode.Config, "no command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tc.args(out), &stdout, &stderr)
			if got := exitcode.Of(err); got != tc.code {
				t.Fatalf("exit code %d (%v), want %d", got, err, tc.code)
			}
			if !strings.Contains(err.Error(), tc.contains) {
				t.Errorf("error %q does not mention %q", err, tc.contains)
			}
			if entries, _ := os.ReadDir(out); len(entries) != 0 {
				t.Errorf("output has %d entries after a failed run, want none", len(entries))
			}
		})
	}
}
