package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// xattrCRC names the extended attribute holding a file:// object's CRC32C
// (8 lowercase hex digits). It lives on the object's own inode, so it is
// committed by the same rename as the data.
const xattrCRC = "user.aerie.crc32c"

// fileStore is a store in a local directory: one regular file per object.
// On file:// a key cannot be both an object and a prefix of other keys
// ("a" and "a/b"), because "a" cannot be both a file and a directory.
type fileStore struct {
	loc Location
}

var _ Store = (*fileStore)(nil)

func openFile(loc Location) (*fileStore, error) {
	fi, err := os.Stat(loc.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Created by the first Put; until then the store is empty.
	case err != nil:
		return nil, fileError(err)
	case !fi.IsDir():
		return nil, fmt.Errorf("%s is not a directory: %w", loc.Path, ErrBadURI)
	}
	return &fileStore{loc: loc}, nil
}

func (s *fileStore) URI(key string) string {
	l := s.loc
	l.Path = filepath.Join(l.Path, filepath.FromSlash(key))
	u := l.String()
	if strings.HasSuffix(key, "/") {
		u += "/"
	}
	return u
}

func (s *fileStore) Close() error { return nil }

func (s *fileStore) path(key string) string {
	return filepath.Join(s.loc.Path, filepath.FromSlash(key))
}

func (s *fileStore) Put(ctx context.Context, key string, r io.Reader, opts PutOptions) error {
	if err := CheckKey(key); err != nil {
		return opError("put", s.URI(key), err)
	}
	return opError("put", s.URI(key), s.put(ctx, key, r, opts))
}

func (s *fileStore) put(ctx context.Context, key string, r io.Reader, opts PutOptions) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	final := s.path(key)
	dir := filepath.Dir(final)
	if opts.IfNotExists {
		// Fail before streaming a large object that cannot be stored.
		if _, err := os.Lstat(final); err == nil {
			return fmt.Errorf("another writer created it first: %w", ErrExists)
		}
	}
	var f *os.File
	for range 3 {
		if err = s.mkdirAll(dir); err != nil {
			return err
		}
		// A concurrent Delete may remove dir once it is empty: try again.
		if f, err = os.CreateTemp(dir, tmpPrefix+"tmp-*"); !errors.Is(err, fs.ErrNotExist) {
			break
		}
	}
	if err != nil {
		return fileError(err)
	}
	tmp := f.Name()
	committed := false
	defer func() {
		if !committed {
			f.Close()
			os.Remove(tmp)
		}
	}()
	var sum checksum
	if _, err := io.Copy(io.MultiWriter(f, &sum), ctxReader{ctx, sourceReader{r}}); err != nil {
		return fileError(err)
	}
	crc := fmt.Appendf(nil, "%08x", sum.crc)
	if err := unix.Fsetxattr(int(f.Fd()), xattrCRC, crc, 0); err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			return fmt.Errorf("the file system of %s does not support user extended attributes, which hold each object's CRC32C; use a directory on ext4, xfs, btrfs or tmpfs: %w", dir, err)
		}
		return fmt.Errorf("set %s on %s: %w", xattrCRC, tmp, fileError(err))
	}
	if err := f.Sync(); err != nil {
		return fileError(err)
	}
	if err := f.Close(); err != nil {
		return fileError(err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if fi, err := os.Stat(final); err == nil && fi.IsDir() {
		return fmt.Errorf("%s is a directory (on file:// a key cannot also be a prefix of other keys): %w", final, ErrExists)
	}
	if opts.IfNotExists {
		err = renameNoReplace(tmp, final)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("another writer created it first: %w", ErrExists)
		}
	} else {
		err = os.Rename(tmp, final)
	}
	if err != nil {
		return fileError(err)
	}
	committed = true
	return syncDir(dir)
}

// renameNoReplace moves oldpath to newpath unless newpath exists, atomically.
func renameNoReplace(oldpath, newpath string) error {
	err := unix.Renameat2(unix.AT_FDCWD, oldpath, unix.AT_FDCWD, newpath, unix.RENAME_NOREPLACE)
	if err == nil || !(errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS)) {
		if err != nil {
			err = &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
		}
		return err
	}
	// The file system lacks RENAME_NOREPLACE: a hard link is just as
	// exclusive. A crash before the Remove leaves a hidden temporary name.
	if err := os.Link(oldpath, newpath); err != nil {
		return err
	}
	return os.Remove(oldpath)
}

// mkdirAll creates dir and its missing parents, fsyncing each parent whose
// entries changed so that the new directories survive a crash.
func (s *fileStore) mkdirAll(dir string) error {
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fileError(err)
		}
		missing = append(missing, d)
		if d == filepath.Dir(d) {
			break
		}
	}
	for _, d := range slices.Backward(missing) {
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return fileError(err)
		}
		if err := syncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fileError(err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fileError(err)
	}
	return nil
}

func (s *fileStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	uri := s.URI(key)
	if err := CheckKey(key); err != nil {
		return nil, opError("get", uri, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, opError("get", uri, err)
	}
	f, err := os.Open(s.path(key))
	if err != nil {
		return nil, opError("get", uri, fileError(err))
	}
	obj, err := s.stat(f, key)
	if err != nil {
		f.Close()
		return nil, opError("get", uri, err)
	}
	return &verifier{r: f, op: "get", uri: uri, wantSize: obj.Size, wantCRC: obj.CRC32C}, nil
}

func (s *fileStore) Stat(ctx context.Context, key string) (Object, error) {
	uri := s.URI(key)
	if err := CheckKey(key); err != nil {
		return Object{}, opError("stat", uri, err)
	}
	if err := ctx.Err(); err != nil {
		return Object{}, opError("stat", uri, err)
	}
	f, err := os.Open(s.path(key))
	if err != nil {
		return Object{}, opError("stat", uri, fileError(err))
	}
	defer f.Close()
	obj, err := s.stat(f, key)
	return obj, opError("stat", uri, err)
}

// stat describes the open object file f.
func (s *fileStore) stat(f *os.File, key string) (Object, error) {
	fi, err := f.Stat()
	if err != nil {
		return Object{}, fileError(err)
	}
	if !fi.Mode().IsRegular() {
		return Object{}, ErrNotExist // a directory: a prefix, not an object
	}
	buf := make([]byte, 16)
	n, err := unix.Fgetxattr(int(f.Fd()), xattrCRC, buf)
	if err != nil {
		if errors.Is(err, unix.ENODATA) || errors.Is(err, unix.ENOTSUP) {
			return Object{}, fmt.Errorf("no %s extended attribute: not written by the store, or copied without extended attributes (use cp -a or rsync -X); write it again: %w", xattrCRC, ErrCorrupt)
		}
		return Object{}, fmt.Errorf("read %s: %w", xattrCRC, fileError(err))
	}
	crc, err := strconv.ParseUint(string(buf[:n]), 16, 32)
	if err != nil || n != 8 {
		return Object{}, fmt.Errorf("%s is %q, not 8 hex digits; write the object again: %w", xattrCRC, buf[:n], ErrCorrupt)
	}
	return Object{Key: key, Size: fi.Size(), CRC32C: uint32(crc)}, nil
}

func (s *fileStore) List(ctx context.Context, prefix string) ([]Object, error) {
	uri := s.URI(prefix)
	if err := checkPrefix(prefix); err != nil {
		return nil, opError("list", uri, err)
	}
	objs, err := s.list(ctx, prefix)
	return objs, opError("list", uri, err)
}

func (s *fileStore) list(ctx context.Context, prefix string) ([]Object, error) {
	// Walk the deepest directory that holds every match.
	start := s.loc.Path
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		start = s.path(prefix[:i])
	}
	var objs []Object
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == start {
				return fs.SkipAll // nothing stored there yet
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), tmpPrefix) {
			return nil // a write in progress, or abandoned by a crash
		}
		rel, err := filepath.Rel(s.loc.Path, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if d.IsDir() {
			if p != start && !strings.HasPrefix(key+"/", prefix) && !strings.HasPrefix(prefix, key+"/") {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !strings.HasPrefix(key, prefix) {
			return nil
		}
		f, err := os.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // deleted meanwhile
		} else if err != nil {
			return err
		}
		obj, err := s.stat(f, key)
		f.Close()
		if errors.Is(err, ErrCorrupt) {
			// Listed objects are read later, and Get fails on this one too;
			// one foreign file must not hide the rest of the prefix.
			slog.WarnContext(ctx, "store: skipping unverifiable object", "uri", s.URI(key), "err", err)
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		objs = append(objs, obj)
		return nil
	})
	if err != nil {
		return nil, fileError(err)
	}
	slices.SortFunc(objs, func(a, b Object) int { return strings.Compare(a.Key, b.Key) })
	return objs, nil
}

func (s *fileStore) Delete(ctx context.Context, key string) error {
	uri := s.URI(key)
	if err := CheckKey(key); err != nil {
		return opError("delete", uri, err)
	}
	if err := ctx.Err(); err != nil {
		return opError("delete", uri, err)
	}
	p := s.path(key)
	if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
		return opError("delete", uri, ErrNotExist)
	}
	if err := os.Remove(p); err != nil {
		return opError("delete", uri, fileError(err))
	}
	// Drop directories left empty, as GCS has no directories to leave.
	dir := filepath.Dir(p)
	for dir != s.loc.Path && strings.HasPrefix(dir, s.loc.Path) {
		if os.Remove(dir) != nil {
			break
		}
		dir = filepath.Dir(dir)
	}
	return opError("delete", uri, syncDir(dir))
}

// fileError maps os errors onto the store's sentinels, keeping the detail.
func fileError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.As(err, new(*readError)):
		return err
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, fs.ErrNotExist):
		return ErrNotExist
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%v: %w", err, ErrPermission)
	case errors.Is(err, unix.EROFS):
		return fmt.Errorf("%v: %w", err, ErrPermission)
	}
	return err
}
