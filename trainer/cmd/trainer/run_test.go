package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/aerie-ml/aerie/internal/dataset"
	"github.com/aerie-ml/aerie/internal/exitcode"
	"github.com/aerie-ml/aerie/internal/manifest"
	"github.com/aerie-ml/aerie/internal/model"
	"github.com/aerie-ml/aerie/internal/selftest"
	"github.com/aerie-ml/aerie/internal/store"
	"github.com/aerie-ml/aerie/trainer/internal/data"
)

// synthetic ingests a small learnable Fashion-MNIST-shaped dataset into a
// temporary file:// store and returns its URI and digest.
func synthetic(t *testing.T, nTrain, nTest int) (uri, digest string) {
	t.Helper()
	s, err := store.Open(t.Context(), "file://"+t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	uri, digest, err = data.Synthetic{Shape: dataset.Shape{Height: 28, Width: 28, Channels: 1}, Classes: 10, Train: nTrain, Test: nTest, Seed: 1}.Write(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	return uri, digest
}

func smallArgs(dataURI, digest, out string) []string {
	return []string{"train", "--arch=small", "--epochs=2", "--batch-size=16", "--lr=0.01",
		"--data=" + dataURI, "--dataset-sha256=" + digest, "--output=file://" + out, "--name=t", "--val-fraction=0.2"}
}

func TestTrainWritesLoadableModel(t *testing.T) {
	dataURI, digest := synthetic(t, 160, 60)
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	args := smallArgs(dataURI, digest, out)
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
	if len(m.Metrics.Epochs) != 2 || m.Dataset.Digest != digest || m.Model.Parameters != 2010 || len(m.Metrics.ClassAccuracy) != 10 {
		t.Errorf("manifest: %d epochs, digest %s, %d parameters, %d class accuracies", len(m.Metrics.Epochs), m.Dataset.Digest, m.Model.Parameters, len(m.Metrics.ClassAccuracy))
	}
	var files []string
	for _, file := range m.Files {
		files = append(files, file.Name)
	}
	slices.Sort(files)
	want := []string{"metrics.jsonl", "model.safetensors", "report.html", "selftest.tar"}
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
	// The version carries its self-test set, which the model it ships with
	// classifies as promotion and the devices do.
	if m.SelfTest.PerClass != selftest.DefaultPerClass || m.SelfTest.Split != "test" || m.Model.Input.Channels != 1 {
		t.Errorf("self-test %+v, input %+v", m.SelfTest, m.Model.Input)
	}
	set, err := os.Open(filepath.Join(versions[0], m.SelfTest.File))
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	res, err := selftest.Run(context.Background(), m, set, func(ctx context.Context, images [][]byte) ([]int, error) {
		preds, err := c.Classify(ctx, images)
		labels := make([]int, len(preds))
		for i, p := range preds {
			labels[i] = p.Class
		}
		return labels, err
	}, 0)
	if err != nil || res.Total != m.SelfTest.Samples() || len(res.Classes) != len(m.Model.Classes) || res.Classes[0].Class != m.Model.Classes[0] {
		t.Errorf("self-test of the written version = %+v, %v", res, err)
	}
}

func TestTrainBadInput(t *testing.T) {
	good, digest := synthetic(t, 100, 20)
	truncated, tdigest := synthetic(t, 100, 20)
	p := filepath.Join(strings.TrimPrefix(truncated, "file://"), "test-000000.tar")
	b, _ := os.ReadFile(p)
	os.WriteFile(p, b[:len(b)/2], 0o644)
	for _, tc := range []struct {
		name     string
		args     func(out string) []string
		code     int
		contains string
	}{
		{"wrong digest", func(out string) []string {
			return smallArgs(good, strings.Repeat("ab", 32), out)
		}, exitcode.Data, "manifest sha256 is " + digest},
		{"truncated shard", func(out string) []string { return smallArgs(truncated, tdigest, out) }, exitcode.Data, "shard test-000000.tar is"},
		{"bad schedule", func(out string) []string { return append(smallArgs(good, digest, out), "--schedule=linear") }, exitcode.Config, "schedule"},
		{"unknown arch", func(out string) []string { return append(smallArgs(good, digest, out), "--arch=vgg") }, exitcode.Config, "vgg"},
		{"missing run file", func(out string) []string { return append(smallArgs(good, digest, out), "--run=/nonexistent/run.yaml") }, exitcode.Config, "/nonexistent/run.yaml"},
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

// TestHelpAndVersion: -h of every command and --version exit 0 and print
// on stdout, as the aerie CLI's do; a bad flag is a usage error (exit 2)
// with the flags on stderr.
func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"train", "-h"}, {"train", "--help"}, {"launch", "-h"}, {"bench-allreduce", "-h"}, {"--version"}} {
		var out, errs bytes.Buffer
		if err := run(t.Context(), args, &out, &errs); err != nil {
			t.Errorf("trainer %q = %v, want nil (exit 0)", args, err)
		}
		if out.Len() == 0 || errs.Len() > 0 {
			t.Errorf("trainer %q printed %d bytes on stdout and %q on stderr, want its help on stdout only", args, out.Len(), errs.String())
		}
	}
	for _, args := range [][]string{{"train", "--bogus"}, {"launch", "--bogus"}, {"bench-allreduce", "--bogus"}} {
		var out, errs bytes.Buffer
		err := run(t.Context(), args, &out, &errs)
		if exitcode.Of(err) != exitcode.Config || !strings.Contains(fmt.Sprint(err), "-bogus") || out.Len() > 0 || !strings.Contains(errs.String(), "usage") && !strings.Contains(errs.String(), "Usage") {
			t.Errorf("trainer %q = %v, stdout %q, stderr %q; want exit 2 naming -bogus, the flags on stderr", args, err, out.String(), errs.String())
		}
	}
	var out bytes.Buffer
	run(t.Context(), []string{"--version"}, &out, &out)
	if !strings.HasPrefix(out.String(), "trainer ") {
		t.Errorf("trainer --version = %q, want trainer <version>", out.String())
	}
}

// TestTrainArchitecture: --arch takes a models file or a built-in name,
// and a rendered run.yaml carries its architecture inline.
func TestTrainArchitecture(t *testing.T) {
	tests := []struct {
		args []string
		name string
	}{
		{[]string{"--arch", "small", "--output", t.TempDir(), "--data", t.TempDir(), "--dataset-sha256", strings.Repeat("0", 64)}, "small"},
		{[]string{"--arch", "../../../models/resnet-small.yaml", "--output", t.TempDir(), "--data", t.TempDir(), "--dataset-sha256", strings.Repeat("0", 64)}, "resnet-small"},
		{[]string{"--run", "../../../apps/jobs/quick/run.yaml"}, "small"},
		{[]string{"--run", "../../../apps/jobs/quick/run.yaml", "--arch", "cnn"}, "cnn"},
	}
	for _, tt := range tests {
		f, err := parseTrainFlags(tt.args, io.Discard, io.Discard)
		if err != nil {
			t.Errorf("parseTrainFlags(%q): %v", tt.args, err)
			continue
		}
		if f.spec.Name != tt.name {
			t.Errorf("parseTrainFlags(%q) trains %s, want %s", tt.args, f.spec.Name, tt.name)
		}
	}
}

func TestTrainGCPercent(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want int
		set  bool
	}{
		{env: nil, want: 50, set: true},
		{env: map[string]string{"GOGC": "200"}},
		{env: map[string]string{"GOMEMLIMIT": "900MiB"}},
	} {
		got, set := trainGCPercent(func(k string) string { return tc.env[k] })
		if got != tc.want || set != tc.set {
			t.Errorf("trainGCPercent(%v) = %d, %v; want %d, %v", tc.env, got, set, tc.want, tc.set)
		}
	}
}
