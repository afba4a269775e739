package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/aerie-ml/aerie/internal/exitcode"
)

func TestRun(t *testing.T) {
	jobs := filepath.Join("..", "..", "..", "..", "apps", "jobs")
	tests := []struct {
		name string
		cmd  string
		c    config
		code int
	}{
		{"check the committed tree", "check", config{dir: jobs}, exitcode.OK},
		{"diff the committed tree", "diff", config{dir: jobs, revision: "0123456"}, exitcode.OK},
		{"unknown command", "apply", config{dir: jobs}, exitcode.Config},
		{"bad revision", "render", config{dir: jobs, revision: "HEAD"}, exitcode.Config},
		{"missing directory", "check", config{dir: t.TempDir()}, exitcode.Internal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errs bytes.Buffer
			err := run(context.Background(), tt.cmd, tt.c, &out, &errs)
			if got := exitcode.Of(err); got != tt.code {
				t.Errorf("run(%s) = %v (exit %d), want exit %d\n%s", tt.cmd, err, got, tt.code, errs.String())
			}
			if tt.cmd == "diff" && out.Len() > 0 {
				t.Errorf("diff of the committed tree is not empty:\n%s", out.String())
			}
		})
	}
}

// TestRenderInvalidTreeExits2: a declaration renamed to quick.YAML makes
// render exit 2 and keeps quick's overlay (it used to prune it, exit 0).
func TestRenderInvalidTreeExits2(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "jobs")
	if err := os.MkdirAll(filepath.Join(dir, "runs"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"fmnist-cnn.yaml", "quick.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "apps", "jobs", "runs", n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "runs", n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c := config{dir: dir, revision: "0123456"}
	var out, errs bytes.Buffer
	if err := run(context.Background(), "render", c, &out, &errs); err != nil {
		t.Fatalf("render: %v", err)
	}
	if err := os.Rename(filepath.Join(dir, "runs", "quick.yaml"), filepath.Join(dir, "runs", "quick.YAML")); err != nil {
		t.Fatal(err)
	}
	errs.Reset()
	err := run(context.Background(), "render", c, &out, &errs)
	if got := exitcode.Of(err); got != exitcode.Config {
		t.Errorf("render with runs/quick.YAML = %v (exit %d), want exit %d", err, got, exitcode.Config)
	}
	if _, err := os.Stat(filepath.Join(dir, "quick", "pytorchjob.yaml")); err != nil {
		t.Errorf("quick's overlay was pruned: %v\n%s", err, errs.String())
	}
}
