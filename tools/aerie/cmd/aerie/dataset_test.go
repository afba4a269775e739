package main

import (
	"bytes"
	"errors"
	"image"
	"image/png"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/aerie-ml/aerie/internal/dataset"
	"github.com/aerie-ml/aerie/internal/exitcode"
	"github.com/aerie-ml/aerie/internal/store"
	"github.com/aerie-ml/aerie/tools/aerie/internal/ingest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// writeIDX writes an uncompressed 2-example dataset into dir.
func writeIDX(t *testing.T, dir string) {
	t.Helper()
	for _, f := range []struct {
		name  string
		write func(*bytes.Buffer) error
	}{
		{ingest.TrainImages, func(b *bytes.Buffer) error { return ingest.WriteIDXImages(b, make([]byte, 2*28*28), 28, 28) }},
		{ingest.TestImages, func(b *bytes.Buffer) error { return ingest.WriteIDXImages(b, make([]byte, 2*28*28), 28, 28) }},
		{ingest.TrainLabels, func(b *bytes.Buffer) error { return ingest.WriteIDXLabels(b, []byte{0, 9}) }},
		{ingest.TestLabels, func(b *bytes.Buffer) error { return ingest.WriteIDXLabels(b, []byte{9, 0}) }},
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

func TestIngest(t *testing.T) {
	src := t.TempDir()
	writeIDX(t, src)
	root := t.TempDir()
	var digest string
	for i, counts := range []string{"3 files stored, 0 already present", "0 files stored, 3 already present"} {
		var out bytes.Buffer
		if err := runIngest(t.Context(), &out, quiet, ingestFlags{from: src, to: "file://" + root, opts: opts("fashion-mnist")}); err != nil {
			t.Fatalf("ingest #%d: %v", i+1, err)
		}
		entries, _ := os.ReadDir(filepath.Join(root, "datasets", "fashion-mnist"))
		if len(entries) != 1 {
			t.Fatalf("ingest #%d: %d datasets stored, want 1", i+1, len(entries))
		}
		digest = entries[0].Name()
		uri := "file://" + root + "/datasets/fashion-mnist/" + digest + "/"
		want := "# fashion-mnist from " + src + ": " + counts + ".\n" +
			"# Paste into the run declaration:\nspec:\n  dataset:\n    uri: " + uri + "\n    sha256: " + digest + "\n"
		if diff := cmp.Diff(want, out.String()); diff != "" {
			t.Errorf("ingest #%d output (-want +got):\n%s", i+1, diff)
		}
	}
	// The printed URI and digest open as the dataset.
	s, err := store.Open(t.Context(), "file://"+root+"/datasets/fashion-mnist/"+digest+"/")
	if err != nil {
		t.Fatal(err)
	}
	d, err := dataset.Open(t.Context(), s, digest)
	if err != nil {
		t.Fatalf("opening the printed dataset: %v", err)
	}
	if d.Manifest.Classes[9] != "Ankle boot" {
		t.Errorf("classes %v, want Fashion-MNIST's", d.Manifest.Classes)
	}
}

func opts(name string) ingest.Options { return ingest.Options{Name: name} }

func TestIngestImageFolder(t *testing.T) {
	src := t.TempDir()
	for _, p := range []string{"cat/a.png", "cat/b.png", "dog/c.png", "dog/d.png"} {
		os.MkdirAll(filepath.Join(src, filepath.Dir(p)), 0o755)
		var b bytes.Buffer
		png.Encode(&b, image.NewGray(image.Rect(0, 0, 10, 6)))
		os.WriteFile(filepath.Join(src, p), b.Bytes(), 0o644)
	}
	root := t.TempDir()
	var out bytes.Buffer
	f := ingestFlags{from: src, to: "file://" + root, size: "4x4", opts: opts("pets")}
	f.opts.Channels = 3
	f.opts.TestFraction = 0.5
	if err := runIngest(t.Context(), &out, quiet, f); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "# pets from "+src+": 3 files stored") {
		t.Errorf("output %q, want 3 files (test and train shards, manifest)", out.String())
	}
}

func TestIngestErrors(t *testing.T) {
	src := t.TempDir()
	writeIDX(t, src)
	tests := []struct {
		name string
		f    ingestFlags
		want string
		code int
	}{
		{"missing source", ingestFlags{from: filepath.Join(src, "nope"), to: "file:///tmp/x", opts: opts("fashion-mnist")}, "install Debian's dataset-fashion-mnist", exitcode.Config},
		{"relative store path", ingestFlags{from: src, to: "./store", opts: opts("fashion-mnist")}, "want gs://bucket[/prefix] or file:///absolute/path", exitcode.Config},
		{"bad bucket", ingestFlags{from: src, to: "gs://Bad_Bucket", opts: opts("fashion-mnist")}, "bucket", exitcode.Config},
		{"bad size", ingestFlags{from: src, to: "file:///tmp/x", size: "28", opts: opts("fashion-mnist")}, `--size "28": want HxW`, exitcode.Config},
		{"IDX without classes", ingestFlags{from: src, to: "file:///tmp/x", opts: opts("mnist")}, "pass --classes or --classes-file", exitcode.Config},
		{"both class flags", ingestFlags{from: src, to: "file:///tmp/x", classes: "a", classesFile: "b", opts: opts("mnist")}, "pass one", exitcode.Config},
	}
	for _, tt := range tests {
		err := runIngest(t.Context(), io.Discard, quiet, tt.f)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: runIngest = %v, want an error mentioning %q", tt.name, err, tt.want)
		}
		if got := exitcode.Of(err); got != tt.code {
			t.Errorf("%s: exitcode.Of(%v) = %d, want %d", tt.name, err, got, tt.code)
		}
	}
	if err := runIngest(t.Context(), io.Discard, quiet, ingestFlags{from: src, to: "file://" + t.TempDir(), opts: opts("a/../b"), classes: "c0,c1,c2,c3,c4,c5,c6,c7,c8,c9"}); !errors.Is(err, store.ErrBadURI) {
		t.Errorf("runIngest with a bad dataset name = %v, want ErrBadURI", err)
	}
}

func TestClassesFile(t *testing.T) {
	src := t.TempDir()
	writeIDX(t, src)
	names := "zero\none\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nnine\n"
	cf := filepath.Join(t.TempDir(), "classes.txt")
	os.WriteFile(cf, []byte(names), 0o644)
	root := t.TempDir()
	if err := runIngest(t.Context(), io.Discard, quiet, ingestFlags{from: src, to: "file://" + root, classesFile: cf, opts: opts("mnist")}); err != nil {
		t.Fatal(err)
	}
	m, _ := filepath.Glob(filepath.Join(root, "datasets/mnist/*/dataset.json"))
	if len(m) != 1 {
		t.Fatalf("manifests %v", m)
	}
	b, _ := os.ReadFile(m[0])
	man, err := dataset.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(strings.Fields(names), man.Classes); diff != "" {
		t.Errorf("classes (-want +got):\n%s", diff)
	}
}

func TestIngestManifestCopy(t *testing.T) {
	src := t.TempDir()
	writeIDX(t, src)
	root, datasets := t.TempDir(), t.TempDir()
	var out bytes.Buffer
	f := ingestFlags{from: src, to: "file://" + root, manifestCopy: datasets, opts: opts("fashion-mnist")}
	if err := runIngest(t.Context(), &out, quiet, f); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(filepath.Join(root, "datasets", "fashion-mnist"))
	if err != nil || len(entries) != 1 {
		t.Fatalf("stored datasets: %v, %v", entries, err)
	}
	digest := entries[0].Name()
	copyPath := filepath.Join(datasets, dataset.CopyPath("fashion-mnist", digest))
	if !strings.Contains(out.String(), "# Commit the manifest's copy: "+copyPath+"\n") {
		t.Errorf("output %q does not name the copy %s", out.String(), copyPath)
	}
	b, err := os.ReadFile(copyPath)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := os.ReadFile(filepath.Join(root, "datasets", "fashion-mnist", digest, dataset.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(stored), string(b)); diff != "" {
		t.Errorf("copy differs from the stored manifest (-stored +copy):\n%s", diff)
	}

	// A symlink where the copy's directory belongs is refused, nothing written through it.
	elsewhere, linked := t.TempDir(), t.TempDir()
	if err := os.Symlink(elsewhere, filepath.Join(linked, "fashion-mnist")); err != nil {
		t.Fatal(err)
	}
	f.manifestCopy = linked
	if err := runIngest(t.Context(), io.Discard, quiet, f); err == nil {
		t.Error("ingest wrote the copy through a symlink")
	}
	if left, _ := os.ReadDir(elsewhere); len(left) != 0 {
		t.Errorf("wrote %v through the symlink", left)
	}
}

// TestShowFromCommittedManifest: a run's dataset shows from the manifest's
// committed copy, with no store to reach (fmnist-cnn's is on GCS).
func TestShowFromCommittedManifest(t *testing.T) {
	var out, errs bytes.Buffer
	if code := execute(t.Context(), []string{"--repo", repoRoot, "dataset", "show", "fmnist-cnn"}, &out, &errs); code != 0 {
		t.Fatalf("aerie dataset show fmnist-cnn = exit %d\n%s", code, errs.String())
	}
	for _, want := range []string{"gs://", "Ankle boot", "60000 (3 shards)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("aerie dataset show fmnist-cnn lacks %q:\n%s", want, out.String())
		}
	}
}
