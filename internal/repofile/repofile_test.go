package repofile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// newTree lays out a tree and an outside directory holding a secret, and
// returns the tree and the outside directory.
func newTree(t *testing.T) (*Tree, string) {
	t.Helper()
	base := t.TempDir()
	dir := filepath.Join(base, "repo")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{filepath.Join(dir, "sub"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "sub", "ok.yaml"), "ok")
	write(filepath.Join(dir, "big"), strings.Repeat("x", 100))
	write(filepath.Join(outside, "secret"), "root:x:0:0")
	for link, target := range map[string]string{
		"link-file":    filepath.Join(outside, "secret"),
		"link-dir":     outside,
		"link-inside":  "sub/ok.yaml",
		"link-zero":    "/dev/zero",
		"sub/link-out": "../../outside/secret",
	} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	tr, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr, outside
}

func TestReadFile(t *testing.T) {
	tr, _ := newTree(t)
	for _, tc := range []struct {
		rel     string
		limit   int64
		want    string
		wantErr string
		is      error
	}{
		{rel: "sub/ok.yaml", limit: 10, want: "ok"},
		{rel: "./sub/../sub/ok.yaml", limit: 10, want: "ok"},
		{rel: "big", limit: 100, want: strings.Repeat("x", 100)},
		{rel: "big", limit: 99, wantErr: "100 bytes, more than the limit of 99", is: ErrTooLarge},
		{rel: "link-file", limit: 1 << 20, wantErr: "link-file: is a symlink", is: ErrNotRegular},
		{rel: "link-inside", limit: 1 << 20, wantErr: "link-inside: is a symlink", is: ErrNotRegular},
		{rel: "link-zero", limit: 1 << 20, wantErr: "link-zero: is a symlink", is: ErrNotRegular},
		{rel: "link-dir/secret", limit: 1 << 20, wantErr: "link-dir: is a symlink", is: ErrNotRegular},
		{rel: "sub/link-out", limit: 1 << 20, wantErr: "link-out: is a symlink", is: ErrNotRegular},
		{rel: "fifo", limit: 1 << 20, wantErr: "fifo: is a named pipe", is: ErrNotRegular},
		{rel: "sub", limit: 1 << 20, wantErr: "sub: is a directory", is: ErrNotRegular},
		{rel: "../outside/secret", limit: 1 << 20, wantErr: "path leaves the tree"},
		{rel: "/etc/passwd", limit: 1 << 20, wantErr: "path leaves the tree"},
		{rel: "sub/ok.yaml/x", limit: 1 << 20, wantErr: "ok.yaml: is not a directory"},
		{rel: "missing", limit: 1 << 20, is: os.ErrNotExist},
	} {
		t.Run(tc.rel, func(t *testing.T) {
			got, err := tr.ReadFile(tc.rel, tc.limit)
			if tc.wantErr == "" && tc.is == nil {
				if err != nil || string(got) != tc.want {
					t.Fatalf("ReadFile(%q) = %q, %v, want %q", tc.rel, got, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("ReadFile(%q) = %q, want an error", tc.rel, got)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ReadFile(%q) error %q, want it to contain %q", tc.rel, err, tc.wantErr)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("ReadFile(%q) error %v, want errors.Is %v", tc.rel, err, tc.is)
			}
			if strings.Contains(err.Error(), "root:x") {
				t.Errorf("error echoes the outside file: %v", err)
			}
		})
	}
}

func TestWriteFileStaysInside(t *testing.T) {
	tr, outside := newTree(t)
	for _, rel := range []string{"link-file", "link-dir/secret", "sub/link-out", "../outside/secret", "fifo", "sub"} {
		t.Run(rel, func(t *testing.T) {
			if err := tr.WriteFile(rel, []byte("pwned")); err == nil {
				t.Fatalf("WriteFile(%q) succeeded, want an error", rel)
			}
			b, err := os.ReadFile(filepath.Join(outside, "secret"))
			if err != nil || string(b) != "root:x:0:0" {
				t.Fatalf("outside file = %q, %v; want it unchanged", b, err)
			}
		})
	}
}

func TestWriteFileReplacesAtomically(t *testing.T) {
	tr, _ := newTree(t)
	if err := tr.WriteFile("sub/ok.yaml", []byte("new")); err != nil {
		t.Fatal(err)
	}
	if err := tr.WriteFile("sub/fresh.yaml", []byte("fresh")); err != nil {
		t.Fatal(err)
	}
	for rel, want := range map[string]string{"sub/ok.yaml": "new", "sub/fresh.yaml": "fresh"} {
		got, err := tr.ReadFile(rel, 10)
		if err != nil || string(got) != want {
			t.Errorf("ReadFile(%q) = %q, %v, want %q", rel, got, err, want)
		}
	}
	entries, err := tr.ReadDir("sub")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

func TestReadDirAndRemoveRefuseSymlinks(t *testing.T) {
	tr, outside := newTree(t)
	if _, err := tr.ReadDir("link-dir"); !errors.Is(err, ErrNotRegular) {
		t.Errorf("ReadDir(link-dir) error %v, want ErrNotRegular", err)
	}
	if err := tr.Remove("link-dir/secret"); err == nil {
		t.Error("Remove(link-dir/secret) succeeded, want an error")
	}
	if _, err := os.Stat(filepath.Join(outside, "secret")); err != nil {
		t.Errorf("outside file removed: %v", err)
	}
	if err := tr.MkdirAll("link-dir/new"); err == nil {
		t.Error("MkdirAll through a symlink succeeded, want an error")
	}
}
