package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/aerie-ml/aerie/internal/exitcode"
)

// repoRoot is this checkout's root, as the tests' working directory is
// tools/aerie/cmd/aerie.
var repoRoot = filepath.Join("..", "..", "..", "..")

func TestRun(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"check the committed tree", []string{"run", "check"}, exitcode.OK},
		{"diff the committed tree", []string{"run", "diff", "--revision", "0123456"}, exitcode.OK},
		{"unknown command", []string{"run", "apply"}, exitcode.Config},
		{"bad revision", []string{"run", "render", "--revision", "HEAD"}, exitcode.Config},
		{"missing directory", []string{"run", "check", "--jobs", t.TempDir()}, exitcode.Internal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errs bytes.Buffer
			got := execute(t.Context(), append([]string{"--repo", repoRoot}, tt.args...), &out, &errs)
			if got != tt.code {
				t.Errorf("aerie %q = exit %d, want exit %d\n%s", tt.args, got, tt.code, errs.String())
			}
			if tt.args[1] == "diff" && out.Len() > 0 {
				t.Errorf("diff of the committed tree is not empty:\n%s", out.String())
			}
		})
	}
}

// TestRunFromSubdirectory: without --repo, aerie finds the repository
// root above the working directory.
func TestRunFromSubdirectory(t *testing.T) {
	sub, err := filepath.Abs(filepath.Join(repoRoot, "edge"))
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(sub)
	var out, errs bytes.Buffer
	if got := execute(t.Context(), []string{"run", "check"}, &out, &errs); got != exitcode.OK {
		t.Errorf("aerie run check from %s = exit %d, want 0\n%s", sub, got, errs.String())
	}
	t.Chdir(t.TempDir())
	errs.Reset()
	if got := execute(t.Context(), []string{"run", "check"}, &out, &errs); got != exitcode.Config {
		t.Errorf("aerie run check outside a repository = exit %d, want %d\n%s", got, exitcode.Config, errs.String())
	}
}

// TestRenderInvalidTreeExits2: a declaration renamed to quick.YAML makes
// render exit 2 and keeps quick's overlay (it used to prune it, exit 0).
func TestRenderInvalidTreeExits2(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "jobs")
	if err := os.MkdirAll(filepath.Join(dir, "runs"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"runs/fmnist-cnn.yaml", "runs/quick.yaml", "images.yaml"} {
		b, err := os.ReadFile(filepath.Join(repoRoot, "apps", "jobs", n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.CopyFS(filepath.Join(dir, "datasets"), os.DirFS(filepath.Join(repoRoot, "apps", "jobs", "datasets"))); err != nil {
		t.Fatal(err)
	}
	args := []string{"--repo", repoRoot, "run", "render", "--jobs", dir, "--revision", "0123456"}
	var out, errs bytes.Buffer
	if got := execute(t.Context(), args, &out, &errs); got != exitcode.OK {
		t.Fatalf("render = exit %d\n%s", got, errs.String())
	}
	if err := os.Rename(filepath.Join(dir, "runs", "quick.yaml"), filepath.Join(dir, "runs", "quick.YAML")); err != nil {
		t.Fatal(err)
	}
	errs.Reset()
	if got := execute(t.Context(), args, &out, &errs); got != exitcode.Config {
		t.Errorf("render with runs/quick.YAML = exit %d, want exit %d\n%s", got, exitcode.Config, errs.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "quick", "pytorchjob.yaml")); err != nil {
		t.Errorf("quick's overlay was pruned: %v\n%s", err, errs.String())
	}
}
