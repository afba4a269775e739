package main

import (
	"bytes"
	"context"
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
