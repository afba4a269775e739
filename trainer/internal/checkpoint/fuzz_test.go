package checkpoint

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLatest feeds arbitrary COMMITTED markers and state files to Latest:
// it must skip what is invalid and never panic or load it.
func FuzzLatest(f *testing.F) {
	f.Add([]byte("state-0000000000000000.safetensors sha256:00 8\n"), []byte("\x02\x00\x00\x00\x00\x00\x00\x00{}"))
	f.Add([]byte("../x sha256:ab -1\n"), []byte{})
	f.Fuzz(func(t *testing.T, marker, state []byte) {
		dir := t.TempDir()
		p := filepath.Join(dir, "checkpoints/r/000000000001")
		os.MkdirAll(p, 0o755)
		os.WriteFile(filepath.Join(p, Committed), marker, 0o644)
		os.WriteFile(filepath.Join(p, "state-0000000000000000.safetensors"), state, 0o644)
		c := &Checkpoints{Store: Dir(dir), Run: "r", Log: newLogger(io.Discard)}
		s, _, err := c.Latest(context.Background())
		if err == nil && s != nil && s.Step != 1 {
			t.Fatalf("loaded a checkpoint of step %d from the step-1 directory", s.Step)
		}
	})
}
