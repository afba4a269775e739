// Package gitsync reads a branch of a Git repository the way Flux's
// source-controller does: list the remote's refs first, and fetch only
// when the head moved, shallow and single-branch, reading only the files
// asked for.
package gitsync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"testing/fstest"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	gitconfig "github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage"
	"github.com/go-git/go-git/v5/storage/filesystem"
	"github.com/go-git/go-git/v5/storage/memory"

	"github.com/aerie-ml/aerie/internal/pins"
)

// Source is one branch of one repository.
type Source struct {
	URL    string
	Branch string
	// Auth is nil for public repositories and file://.
	Auth transport.AuthMethod
	// TempDir holds Fetch's object store while it runs; os.TempDir when "".
	TempDir string
	// MaxFileSize bounds each file read; pins.MaxBytes when 0.
	MaxFileSize int64

	wrap func(*filesystem.Storage) storage.Storer // tests: observe the object store
}

// ErrBranchNotFound reports a remote without the configured branch.
var ErrBranchNotFound = errors.New("branch not found")

// Head lists the remote's refs (git ls-remote) and returns the commit the
// branch points to, without fetching any objects.
func (s *Source) Head(ctx context.Context) (string, error) {
	remote := git.NewRemote(memory.NewStorage(), &gitconfig.RemoteConfig{Name: "origin", URLs: []string{s.URL}})
	refs, err := remote.ListContext(ctx, &git.ListOptions{Auth: s.Auth})
	if err != nil {
		return "", fmt.Errorf("ls-remote %s: %w", s.URL, err)
	}
	want := plumbing.NewBranchReferenceName(s.Branch)
	for _, r := range refs {
		if r.Name() == want {
			return r.Hash().String(), nil
		}
	}
	return "", fmt.Errorf("ls-remote %s: %s: %w", s.URL, want, ErrBranchNotFound)
}

// Snapshot is the content of selected paths at one commit.
type Snapshot struct {
	Commit string
	// FS holds the files under the paths asked for, at their repository paths.
	FS fs.FS
}

// Revision is the commit in Flux's notation, <branch>@sha1:<hash>.
func (s *Source) Revision(commit string) string { return s.Branch + "@sha1:" + commit }

// ErrTooLarge reports a file in the repository over Source.MaxFileSize;
// only a new commit can fix it.
var ErrTooLarge = errors.New("file too large")

// Fetch clones the branch at depth 1 and returns the files at paths, or
// directly under them for directories, in its head commit. A path that
// does not exist is simply absent from the snapshot.
//
// Objects go to a temporary directory under TempDir, removed before Fetch
// returns: go-git keeps a memory store's objects in memory, the whole
// tree, while a filesystem store streams the pack to disk. Only the trees
// on the way to paths and the blobs asked for are read, each after a size
// check against the object header.
func (s *Source) Fetch(ctx context.Context, paths ...string) (*Snapshot, error) {
	dir, err := os.MkdirTemp(s.TempDir, "git-")
	if err != nil {
		return nil, fmt.Errorf("clone %s: %w", s.URL, err)
	}
	defer os.RemoveAll(dir)
	fsst := filesystem.NewStorageWithOptions(osfs.New(dir), cache.NewObjectLRU(256<<10), filesystem.Options{ExclusiveAccess: true})
	var st storage.Storer = fsst
	if s.wrap != nil {
		st = s.wrap(fsst)
	}
	repo, err := git.CloneContext(ctx, st, nil, &git.CloneOptions{
		URL:           s.URL,
		Auth:          s.Auth,
		ReferenceName: plumbing.NewBranchReferenceName(s.Branch),
		SingleBranch:  true,
		Depth:         1,
		NoCheckout:    true,
		Tags:          git.NoTags,
	})
	if err != nil {
		return nil, fmt.Errorf("clone %s@%s: %w", s.URL, s.Branch, err)
	}
	head, err := repo.Head()
	if err != nil {
		return nil, fmt.Errorf("clone %s@%s: head: %w", s.URL, s.Branch, err)
	}
	commit, err := repo.CommitObject(head.Hash())
	if err != nil {
		return nil, fmt.Errorf("clone %s: commit %s: %w", s.URL, head.Hash(), err)
	}
	root, err := commit.Tree()
	if err != nil {
		return nil, fmt.Errorf("clone %s: tree of %s: %w", s.URL, head.Hash(), err)
	}
	limit := s.MaxFileSize
	if limit <= 0 {
		limit = pins.MaxBytes
	}
	files := fstest.MapFS{}
	read := func(name string, e object.TreeEntry) error {
		if !e.Mode.IsFile() {
			return nil
		}
		size, err := st.EncodedObjectSize(e.Hash)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if size > limit {
			return fmt.Errorf("%s: %d bytes at %s, more than %d: %w", name, size, head.Hash(), limit, ErrTooLarge)
		}
		obj, err := st.EncodedObject(plumbing.BlobObject, e.Hash)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		r, err := obj.Reader()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		defer r.Close()
		b, err := io.ReadAll(io.LimitReader(r, limit+1))
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		files[name] = &fstest.MapFile{Data: b, Mode: 0o444}
		return nil
	}
	for _, p := range paths {
		p = path.Clean(p)
		e, err := root.FindEntry(p)
		if errors.Is(err, object.ErrEntryNotFound) || errors.Is(err, object.ErrDirectoryNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s at %s: %s: %w", s.URL, head.Hash(), p, err)
		}
		if e.Mode != filemode.Dir {
			if err := read(p, *e); err != nil {
				return nil, fmt.Errorf("read %s at %s: %w", s.URL, head.Hash(), err)
			}
			continue
		}
		sub, err := repo.TreeObject(e.Hash)
		if err != nil {
			return nil, fmt.Errorf("read %s at %s: %s: %w", s.URL, head.Hash(), p, err)
		}
		for _, c := range sub.Entries {
			if err := read(p+"/"+c.Name, c); err != nil {
				return nil, fmt.Errorf("read %s at %s: %w", s.URL, head.Hash(), err)
			}
		}
	}
	return &Snapshot{Commit: head.Hash().String(), FS: files}, nil
}
