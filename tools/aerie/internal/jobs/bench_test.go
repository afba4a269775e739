package jobs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkCheck plans and builds a tree of 100 runs, as aerie run check does.
// bench/run-check.sh compares the whole command with kustomize build.
func BenchmarkCheck(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "jobs")
	if err := os.MkdirAll(filepath.Join(dir, RunsDir), 0o755); err != nil {
		b.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(repoJobs, RunsDir, "fmnist-cnn.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	for i := range 100 {
		run := strings.Replace(string(src), "name: fmnist-cnn", fmt.Sprintf("name: run-%d", i), 1)
		if err := os.WriteFile(filepath.Join(dir, RunsDir, fmt.Sprintf("run-%d.yaml", i)), []byte(run), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	copyInputs(b, dir, filepath.Dir(dir))
	tr := &Tree{Dir: dir, Repo: filepath.Dir(dir), Revision: func() (string, error) { return revA, nil }}
	p, err := tr.Plan(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	if err := tr.Apply(p); err != nil {
		b.Fatal(err)
	}
	tr.Build, tr.Revision = true, nil
	b.ResetTimer()
	for b.Loop() {
		p, err := tr.Plan(context.Background())
		if err != nil || len(p.Changes) > 0 || p.Err() != nil {
			b.Fatalf("plan: %v, %d changes, %v", err, len(p.Changes), p.Err())
		}
	}
}
