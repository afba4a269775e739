package main

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/aerie-ml/aerie/internal/exitcode"
	"github.com/aerie-ml/aerie/internal/fmnist"
	"github.com/aerie-ml/aerie/internal/store"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// writeIDX writes an uncompressed 2-example dataset into dir.
func writeIDX(t *testing.T, dir string) {
	t.Helper()
	for _, f := range []struct {
		name  string
		write func(*bytes.Buffer) error
	}{
		{fmnist.TrainImages, func(b *bytes.Buffer) error { return fmnist.WriteImages(b, make([]byte, 2*28*28), 28, 28) }},
		{fmnist.TestImages, func(b *bytes.Buffer) error { return fmnist.WriteImages(b, make([]byte, 2*28*28), 28, 28) }},
		{fmnist.TrainLabels, func(b *bytes.Buffer) error { return fmnist.WriteLabels(b, []byte{0, 9}) }},
		{fmnist.TestLabels, func(b *bytes.Buffer) error { return fmnist.WriteLabels(b, []byte{9, 0}) }},
	} {
		var b bytes.Buffer
		if err := f.write(&b); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f.name), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRun(t *testing.T) {
	src := t.TempDir()
	writeIDX(t, src)
	ds, err := fmnist.Load(os.DirFS(src), "")
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	uri := "file://" + root + "/datasets/fashion-mnist/" + ds.Digest + "/"
	for i, counts := range []string{"5 files stored, 0 already present", "0 files stored, 5 already present"} {
		var out bytes.Buffer
		if err := run(t.Context(), &out, quiet, src, "file://"+root, "fashion-mnist", ""); err != nil {
			t.Fatalf("run #%d: %v", i+1, err)
		}
		want := "# fashion-mnist from " + src + ": " + counts + ".\n" +
			"# Paste into the run declaration:\nspec:\n  dataset:\n    uri: " + uri + "\n    sha256: " + ds.Digest + "\n"
		if diff := cmp.Diff(want, out.String()); diff != "" {
			t.Errorf("run #%d output (-want +got):\n%s", i+1, diff)
		}
	}
	// The printed URI opens as the dataset.
	s, err := store.Open(t.Context(), uri)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fmnist.Load(store.FS(t.Context(), s, ""), ds.Digest); err != nil {
		t.Errorf("loading %s: %v", uri, err)
	}
}

func TestRunErrors(t *testing.T) {
	src := t.TempDir()
	writeIDX(t, src)
	tests := []struct {
		name, from, to, want string
		code                 int
	}{
		{"missing source", filepath.Join(src, "nope"), "file:///tmp/x", "install Debian's dataset-fashion-mnist", exitcode.Config},
		{"relative store path", src, "./store", "want gs://bucket[/prefix] or file:///absolute/path", exitcode.Config},
		{"bad bucket", src, "gs://Bad_Bucket", "bucket", exitcode.Config},
	}
	for _, tt := range tests {
		err := run(t.Context(), io.Discard, quiet, tt.from, tt.to, "fashion-mnist", "")
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: run = %v, want an error mentioning %q", tt.name, err, tt.want)
		}
		if got := exitcode.Of(err); got != tt.code {
			t.Errorf("%s: exitcode.Of(%v) = %d, want %d", tt.name, err, got, tt.code)
		}
	}
	if err := run(t.Context(), io.Discard, quiet, src, "file://"+t.TempDir(), "a/../b", ""); !errors.Is(err, store.ErrBadURI) {
		t.Errorf("run with a bad dataset name = %v, want ErrBadURI", err)
	}
}
