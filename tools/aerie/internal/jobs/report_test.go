package jobs

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestUnifiedDiff(t *testing.T) {
	tests := []struct {
		name     string
		old, new []byte
		want     string
	}{
		{"equal", []byte("a\n"), []byte("a\n"), ""},
		{"created", nil, []byte("a\nb\n"), "--- /dev/null\n+++ b/f\n@@ -0,0 +1,2 @@\n+a\n+b\n"},
		{"deleted", []byte("a\n"), nil, "--- a/f\n+++ /dev/null\n@@ -1 +0,0 @@\n-a\n"},
		{"changed middle", []byte("1\n2\n3\n4\n5\n6\n7\n8\n9\n"), []byte("1\n2\n3\n4\nfive\n6\n7\n8\n9\n"),
			"--- a/f\n+++ b/f\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, unifiedDiff("a/f", tt.old, "b/f", tt.new)); diff != "" {
				t.Errorf("unifiedDiff (-want +got):\n%s", diff)
			}
		})
	}
}

// TestUnifiedDiffApplies checks with patch(1), when present, that the diff
// turns old into new.
func TestUnifiedDiffApplies(t *testing.T) {
	patch, err := exec.LookPath("patch")
	if err != nil {
		t.Skip("no patch(1)")
	}
	old := "apiVersion: v1\nkind: X\n" + strings.Repeat("keep\n", 10) + "spec:\n  a: 1\n  b: 2\n" + strings.Repeat("same\n", 12) + "end\n"
	new := "apiVersion: v1\nkind: Y\n" + strings.Repeat("keep\n", 10) + "spec:\n  a: 1\n  c: 3\n  b: 2\n" + strings.Repeat("same\n", 12)
	f := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(f, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(patch, "-s", f)
	cmd.Stdin = strings.NewReader(unifiedDiff("a/f", []byte(old), "b/f", []byte(new)))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("patch: %v\n%s", err, out)
	}
	got, _ := os.ReadFile(f)
	if diff := cmp.Diff(new, string(got)); diff != "" {
		t.Errorf("patched (-want +got):\n%s", diff)
	}
}
