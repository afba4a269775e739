package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// FS returns a read-only fs.FS over the objects under prefix ("" for the
// whole store, else ending in "/"): name "a/b" is object prefix+"a/b". Reads
// are verified like Get's, so a corrupt object fails its final Read. The
// fs.FS interface has no context; ctx bounds every operation made through
// it. Directories are the key prefixes that have objects under them.
func FS(ctx context.Context, s Store, prefix string) fs.FS {
	return &storeFS{ctx: ctx, s: s, prefix: prefix}
}

type storeFS struct {
	ctx    context.Context
	s      Store
	prefix string
}

var (
	_ fs.StatFS    = (*storeFS)(nil)
	_ fs.ReadDirFS = (*storeFS)(nil)
)

func (f *storeFS) key(op, name string) (string, error) {
	if !fs.ValidPath(name) {
		return "", &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	if name == "." {
		return f.prefix, nil
	}
	return f.prefix + name, nil
}

func (f *storeFS) Open(name string) (fs.File, error) {
	key, err := f.key("open", name)
	if err != nil {
		return nil, err
	}
	if name != "." {
		obj, err := f.s.Stat(f.ctx, key)
		if err == nil {
			r, err := f.s.Get(f.ctx, key)
			if err != nil {
				return nil, &fs.PathError{Op: "open", Path: name, Err: err}
			}
			return &file{ReadCloser: r, info: fileInfo{name: path.Base(name), size: obj.Size}}, nil
		}
		if !errors.Is(err, ErrNotExist) {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
	}
	entries, err := f.ReadDir(name)
	if err != nil {
		return nil, err
	}
	return &dir{info: fileInfo{name: path.Base(name), dir: true}, entries: entries}, nil
}

func (f *storeFS) Stat(name string) (fs.FileInfo, error) {
	key, err := f.key("stat", name)
	if err != nil {
		return nil, err
	}
	if name != "." {
		obj, err := f.s.Stat(f.ctx, key)
		if err == nil {
			return fileInfo{name: path.Base(name), size: obj.Size}, nil
		}
		if !errors.Is(err, ErrNotExist) {
			return nil, &fs.PathError{Op: "stat", Path: name, Err: err}
		}
	}
	if _, err := f.ReadDir(name); err != nil {
		return nil, err
	}
	return fileInfo{name: path.Base(name), dir: true}, nil
}

// ReadDir lists name's immediate children from the objects under it.
func (f *storeFS) ReadDir(name string) ([]fs.DirEntry, error) {
	key, err := f.key("readdir", name)
	if err != nil {
		return nil, err
	}
	if key != "" && !strings.HasSuffix(key, "/") {
		key += "/"
	}
	objs, err := f.s.List(f.ctx, key)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	if len(objs) == 0 && name != "." {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
	}
	var entries []fs.DirEntry
	for _, o := range objs {
		child, _, isDir := strings.Cut(strings.TrimPrefix(o.Key, key), "/")
		if n := len(entries); n > 0 && entries[n-1].Name() == child {
			continue // List is sorted, so a directory's objects are adjacent
		}
		info := fileInfo{name: child, dir: isDir}
		if !isDir {
			info.size = o.Size
		}
		entries = append(entries, fs.FileInfoToDirEntry(info))
	}
	return entries, nil
}

type fileInfo struct {
	name string
	size int64
	dir  bool
}

func (i fileInfo) Name() string { return i.name }
func (i fileInfo) Size() int64  { return i.size }
func (i fileInfo) Mode() fs.FileMode {
	if i.dir {
		return fs.ModeDir | 0o555
	}
	return 0o444
}
func (i fileInfo) ModTime() time.Time { return time.Time{} }
func (i fileInfo) IsDir() bool        { return i.dir }
func (i fileInfo) Sys() any           { return nil }

type file struct {
	io.ReadCloser
	info fileInfo
}

func (f *file) Stat() (fs.FileInfo, error) { return f.info, nil }

type dir struct {
	info    fileInfo
	entries []fs.DirEntry
}

func (d *dir) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *dir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.name, Err: errors.New("is a directory")}
}
func (d *dir) Close() error { return nil }
func (d *dir) ReadDir(n int) ([]fs.DirEntry, error) {
	if n <= 0 {
		e := d.entries
		d.entries = nil
		return e, nil
	}
	if len(d.entries) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(d.entries))
	e := d.entries[:n]
	d.entries = d.entries[n:]
	return e, nil
}

// DownloadDir copies every object under prefix into the local directory dir,
// as dir/<key without prefix>, verifying each. Each file is written to a
// temporary name and renamed into place, so dir never holds a partial file.
// It returns the number of files written.
func DownloadDir(ctx context.Context, s Store, prefix, dir string) (int, error) {
	objs, err := s.List(ctx, prefix)
	if err != nil {
		return 0, err
	}
	for i, o := range objs {
		rel := filepath.FromSlash(strings.TrimPrefix(o.Key, prefix))
		if err := download(ctx, s, o.Key, filepath.Join(dir, rel)); err != nil {
			return i, err
		}
	}
	return len(objs), nil
}

func download(ctx context.Context, s Store, key, dst string) (err error) {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	r, err := s.Get(ctx, key)
	if err != nil {
		return err
	}
	defer r.Close()
	f, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".download-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := io.Copy(f, r); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), dst); err != nil {
		return fmt.Errorf("download %s: %w", s.URI(key), err)
	}
	return nil
}

// PutFile stores the local file at name under key. Because a file can be
// read twice, its CRC32C is computed first and sent with the upload.
func PutFile(ctx context.Context, s Store, key, name string, opts PutOptions) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	return s.Put(ctx, key, f, opts)
}
