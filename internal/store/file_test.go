package store_test

import (
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/aerie-ml/aerie/internal/store"
)

func openFileStore(t *testing.T) (store.Store, string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "store")
	s, err := store.Open(t.Context(), "file://"+root)
	if err != nil {
		t.Fatal(err)
	}
	return s, root
}

func TestFileChecksumAttribute(t *testing.T) {
	s, root := openFileStore(t)
	const key = "models/r/v/model.safetensors"
	mustPut(t, s, key, []byte("weights"), store.PutOptions{IfNotExists: true})
	p := filepath.Join(root, filepath.FromSlash(key))
	buf := make([]byte, 16)
	n, err := unix.Getxattr(p, "user.aerie.crc32c", buf)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := s.Stat(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	crc := crc32.Checksum([]byte("weights"), crc32.MakeTable(crc32.Castagnoli))
	if diff := cmp.Diff(store.Object{Key: key, Size: 7, CRC32C: crc}, obj); diff != "" {
		t.Errorf("Stat (-want +got):\n%s", diff)
	}
	if got, want := string(buf[:n]), fmt.Sprintf("%08x", crc); got != want {
		t.Errorf("user.aerie.crc32c = %q, want %q", got, want)
	}

	// A file copied in without its attribute cannot be verified.
	if err := unix.Removexattr(p, "user.aerie.crc32c"); err != nil {
		t.Fatal(err)
	}
	_, err = s.Get(t.Context(), key)
	if !errors.Is(err, store.ErrCorrupt) || !strings.Contains(err.Error(), "cp -a") {
		t.Errorf("Get without checksum attribute = %v, want ErrCorrupt with a hint", err)
	}
	// List skips it rather than failing for the whole prefix.
	mustPut(t, s, "models/r/v/manifest.json", []byte("{}"), store.PutOptions{IfNotExists: true})
	objs, err := s.List(t.Context(), "models/r/")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(objs) != 1 || objs[0].Key != "models/r/v/manifest.json" {
		t.Errorf("List = %v, want only models/r/v/manifest.json", objs)
	}
}

func TestFileTruncatedDetected(t *testing.T) {
	s, root := openFileStore(t)
	const key = "datasets/d/1/a.gz"
	mustPut(t, s, key, content(9, 4096), store.PutOptions{IfNotExists: true})
	if err := os.Truncate(filepath.Join(root, filepath.FromSlash(key)), 1000); err != nil {
		t.Fatal(err)
	}
	// Stat reports the file as it is now; reading it finds the damage.
	if _, err := readAll(t, s, key); !errors.Is(err, store.ErrCorrupt) {
		t.Errorf("reading a truncated object: %v, want ErrCorrupt", err)
	}
}

func TestFileHidesTemporaryFiles(t *testing.T) {
	s, root := openFileStore(t)
	mustPut(t, s, "a/b", []byte("b"), store.PutOptions{})
	// What a crash between write and rename leaves behind.
	if err := os.WriteFile(filepath.Join(root, "a", ".aerie-tmp-123"), []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	objs, err := s.List(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range objs {
		keys = append(keys, o.Key)
	}
	if diff := cmp.Diff([]string{"a/b"}, keys); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
}

func TestFileKeyIsDirectory(t *testing.T) {
	s, _ := openFileStore(t)
	mustPut(t, s, "a/b", []byte("b"), store.PutOptions{})
	for _, opts := range []store.PutOptions{{}, {IfNotExists: true}} {
		err := s.Put(t.Context(), "a", strings.NewReader("a"), opts)
		if !errors.Is(err, store.ErrExists) {
			t.Errorf("Put(%q, %+v) over a directory = %v, want ErrExists", "a", opts, err)
		}
	}
	if _, err := s.Get(t.Context(), "a"); !errors.Is(err, store.ErrNotExist) {
		t.Errorf("Get of a directory = %v, want ErrNotExist", err)
	}
}

func TestFileOpen(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Open(t.Context(), "file://"+notDir); !errors.Is(err, store.ErrBadURI) || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("Open(a file) = %v, want ErrBadURI naming it", err)
	}
	// A missing root is an empty store until the first Put creates it.
	missing := filepath.Join(dir, "new", "store")
	s, err := store.Open(t.Context(), "file://"+missing)
	if err != nil {
		t.Fatal(err)
	}
	if objs, err := s.List(t.Context(), ""); err != nil || len(objs) != 0 {
		t.Errorf("List of a missing root = %v, %v; want nothing", objs, err)
	}
	mustPut(t, s, "k", []byte("v"), store.PutOptions{IfNotExists: true})
	if _, err := os.Stat(filepath.Join(missing, "k")); err != nil {
		t.Errorf("first Put did not create the root: %v", err)
	}
	tests := []struct{ key, want string }{
		{"", "file://" + missing},
		{"models/r/v/", "file://" + missing + "/models/r/v/"},
		{"a b/c", "file://" + missing + "/a%20b/c"},
	}
	for _, tt := range tests {
		if got := s.URI(tt.key); got != tt.want {
			t.Errorf("URI(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
}
