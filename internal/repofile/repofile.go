// Package repofile reads and writes the regular files of one directory tree,
// such as a Git work tree, and nothing else: no path leaves the tree, no
// symlink is followed, and a device, FIFO or directory where a file is
// expected is an error that names the path.
//
// It is the one way aerie run render and aerie promote touch the repository, so that a
// hostile tree (a symlinked overlay, a run that is /dev/zero) cannot make
// them write outside it, read without bound, or echo a foreign file.
package repofile

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
)

// noFollow makes an open fail on a symlink swapped in after the check.
const noFollow = syscall.O_NOFOLLOW

// ErrTooLarge is wrapped by ReadFile when a file is over its size limit.
var ErrTooLarge = errors.New("file too large")

// ErrNotRegular is wrapped when a path is a symlink, a device, a directory or
// anything else but a regular file (or, for directories, but a directory).
var ErrNotRegular = errors.New("not a regular file")

// Tree is a directory tree that is read and written through os.Root, which
// refuses any path that resolves outside it.
type Tree struct {
	dir  string
	root *os.Root
}

// Open opens the tree rooted at dir.
func Open(dir string) (*Tree, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	r, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("open tree: %w", err)
	}
	return &Tree{dir: abs, root: r}, nil
}

// Close releases the tree's root directory.
func (t *Tree) Close() error { return t.root.Close() }

// Dir is the tree's absolute path.
func (t *Tree) Dir() string { return t.dir }

// Path is rel's path on disk, for messages.
func (t *Tree) Path(rel string) string { return filepath.Join(t.dir, filepath.FromSlash(rel)) }

// clean checks that rel is a local, slash-separated path and that none of
// its existing components is a symlink. It returns the cleaned path.
func (t *Tree) clean(rel string) (string, error) {
	rel = path.Clean(filepath.ToSlash(rel))
	if !filepath.IsLocal(rel) {
		return "", fmt.Errorf("%s: path leaves the tree %s", rel, t.dir)
	}
	parts := strings.Split(rel, "/")
	for i := range parts {
		p := strings.Join(parts[:i+1], "/")
		fi, err := t.root.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return rel, nil
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return "", fmt.Errorf("%s: is a symlink; only regular files and directories are allowed: %w", t.Path(p), ErrNotRegular)
		}
		if i < len(parts)-1 && !fi.IsDir() {
			return "", fmt.Errorf("%s: is not a directory", t.Path(p))
		}
	}
	return rel, nil
}

// Stat returns rel's FileInfo without following a symlink anywhere on the
// way. A missing path gives an error that wraps fs.ErrNotExist.
func (t *Tree) Stat(rel string) (fs.FileInfo, error) {
	rel, err := t.clean(rel)
	if err != nil {
		return nil, err
	}
	return t.root.Lstat(rel)
}

// ReadFile reads the regular file rel, refusing one over limit bytes
// without reading it whole.
func (t *Tree) ReadFile(rel string, limit int64) ([]byte, error) {
	rel, err := t.clean(rel)
	if err != nil {
		return nil, err
	}
	fi, err := t.root.Lstat(rel)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: is %s: %w", t.Path(rel), Describe(fi.Mode()), ErrNotRegular)
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s: %d bytes, more than the limit of %d: %w", t.Path(rel), fi.Size(), limit, ErrTooLarge)
	}
	f, err := t.root.OpenFile(rel, os.O_RDONLY|noFollow, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// The file may have been swapped or grown since Lstat: check again.
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: changed while being opened: %w", t.Path(rel), ErrNotRegular)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", t.Path(rel), err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: more than the limit of %d bytes: %w", t.Path(rel), limit, ErrTooLarge)
	}
	return b, nil
}

// ReadDir lists the directory rel, which must be a real directory.
func (t *Tree) ReadDir(rel string) ([]fs.DirEntry, error) {
	rel, err := t.clean(rel)
	if err != nil {
		return nil, err
	}
	fi, err := t.root.Lstat(rel)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s: is %s, want a directory: %w", t.Path(rel), Describe(fi.Mode()), ErrNotRegular)
	}
	f, err := t.root.Open(rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.ReadDir(-1)
}

// MkdirAll creates the directory rel and its parents.
func (t *Tree) MkdirAll(rel string) error {
	rel, err := t.clean(rel)
	if err != nil {
		return err
	}
	return t.root.MkdirAll(rel, 0o755)
}

// WriteFile replaces rel with data atomically: it writes a temporary file in
// the same directory, syncs it and renames it over rel, so a reader sees the
// old or the new content and a symlink at rel is replaced, never followed.
// The parent directory must exist.
func (t *Tree) WriteFile(rel string, data []byte) error {
	rel, err := t.clean(rel)
	if err != nil {
		return err
	}
	if fi, err := t.root.Lstat(rel); err == nil && !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: is %s: %w", t.Path(rel), Describe(fi.Mode()), ErrNotRegular)
	}
	dir, base := path.Split(rel)
	tmp := path.Join(dir, "."+base+".tmp")
	f, err := t.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|noFollow, 0o644)
	if err != nil {
		return fmt.Errorf("write %s: %w", t.Path(rel), err)
	}
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = t.root.Rename(tmp, rel)
	}
	if werr != nil {
		_ = t.root.Remove(tmp)
		return fmt.Errorf("write %s: %w", t.Path(rel), werr)
	}
	return t.syncDir(dir)
}

func (t *Tree) syncDir(dir string) error {
	d, err := t.root.Open(cmp.Or(path.Clean(dir), "."))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Remove removes the file or empty directory rel; a symlink on the way is
// an error, so nothing outside the tree is removed.
func (t *Tree) Remove(rel string) error {
	rel, err := t.clean(rel)
	if err != nil {
		return err
	}
	return t.root.Remove(rel)
}

// Describe names the kind of file m is, for messages: "a symlink", "a
// directory", "a device" and so on.
func Describe(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "a symlink"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m.IsRegular():
		return "a regular file"
	}
	return "not a regular file"
}
