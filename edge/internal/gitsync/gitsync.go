// Package gitsync reads a branch of a Git repository the way Flux's
// source-controller does: list the remote's refs first, and fetch only
// when the head moved, shallow and single-branch, into memory.
package gitsync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"testing/fstest"

	"github.com/go-git/go-git/v5"
	gitconfig "github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/memory"
)

// Source is one branch of one repository.
type Source struct {
	URL    string
	Branch string
	// Auth is nil for public repositories and file://.
	Auth transport.AuthMethod
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

// maxFile bounds what a snapshot reads per file: pins and keys are tiny.
const maxFile = 1 << 20

// Fetch clones the branch at depth 1 into memory and returns the files at
// or under paths (files or directories) in its head commit. A path that
// does not exist is simply absent from the snapshot.
func (s *Source) Fetch(ctx context.Context, paths ...string) (*Snapshot, error) {
	repo, err := git.CloneContext(ctx, memory.NewStorage(), nil, &git.CloneOptions{
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
	tree, err := commit.Tree()
	if err != nil {
		return nil, fmt.Errorf("clone %s: tree of %s: %w", s.URL, head.Hash(), err)
	}
	files := fstest.MapFS{}
	err = tree.Files().ForEach(func(f *object.File) error {
		if !under(f.Name, paths) || !f.Mode.IsFile() {
			return nil
		}
		if f.Size > maxFile {
			return fmt.Errorf("%s: %d bytes, more than %d", f.Name, f.Size, maxFile)
		}
		r, err := f.Reader()
		if err != nil {
			return fmt.Errorf("%s: %w", f.Name, err)
		}
		defer r.Close()
		b, err := io.ReadAll(r)
		if err != nil {
			return fmt.Errorf("%s: %w", f.Name, err)
		}
		files[f.Name] = &fstest.MapFile{Data: b, Mode: 0o444}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %s at %s: %w", s.URL, head.Hash(), err)
	}
	return &Snapshot{Commit: head.Hash().String(), FS: files}, nil
}

func under(name string, paths []string) bool {
	for _, p := range paths {
		p = path.Clean(p)
		if name == p || strings.HasPrefix(name, p+"/") {
			return true
		}
	}
	return false
}
