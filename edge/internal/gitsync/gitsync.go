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
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/sideband"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
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
// check against the object header. A server that supports filters is
// asked to leave out blobs over MaxFileSize (see fetchFiltered).
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
	limit := s.MaxFileSize
	if limit <= 0 {
		limit = pins.MaxBytes
	}
	hash, filtered, err := s.fetchFiltered(ctx, st, limit)
	if err != nil {
		return nil, err
	}
	if !filtered {
		if hash, err = s.clone(ctx, st); err != nil {
			return nil, err
		}
	}
	commit, err := object.GetCommit(st, hash)
	if err != nil {
		return nil, fmt.Errorf("clone %s: commit %s: %w", s.URL, hash, err)
	}
	root, err := commit.Tree()
	if err != nil {
		return nil, fmt.Errorf("clone %s: tree of %s: %w", s.URL, hash, err)
	}
	files := fstest.MapFS{}
	read := func(name string, e object.TreeEntry) error {
		if !e.Mode.IsFile() {
			return nil
		}
		size, err := st.EncodedObjectSize(e.Hash)
		if filtered && errors.Is(err, plumbing.ErrObjectNotFound) {
			return fmt.Errorf("%s: left out at %s by filter blob:limit=%d: %w", name, hash, limit+1, ErrTooLarge)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if size > limit {
			return fmt.Errorf("%s: %d bytes at %s, more than %d: %w", name, size, hash, limit, ErrTooLarge)
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
			return nil, fmt.Errorf("read %s at %s: %s: %w", s.URL, hash, p, err)
		}
		if e.Mode != filemode.Dir {
			if err := read(p, *e); err != nil {
				return nil, fmt.Errorf("read %s at %s: %w", s.URL, hash, err)
			}
			continue
		}
		sub, err := object.GetTree(st, e.Hash)
		if err != nil {
			return nil, fmt.Errorf("read %s at %s: %s: %w", s.URL, hash, p, err)
		}
		for _, c := range sub.Entries {
			if err := read(p+"/"+c.Name, c); err != nil {
				return nil, fmt.Errorf("read %s at %s: %w", s.URL, hash, err)
			}
		}
	}
	return &Snapshot{Commit: hash.String(), FS: files}, nil
}

// clone fetches the branch's head commit and its whole tree, at depth 1,
// and returns the commit.
func (s *Source) clone(ctx context.Context, st storage.Storer) (plumbing.Hash, error) {
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
		return plumbing.ZeroHash, fmt.Errorf("clone %s@%s: %w", s.URL, s.Branch, err)
	}
	head, err := repo.Head()
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("clone %s@%s: head: %w", s.URL, s.Branch, err)
	}
	return head.Hash(), nil
}

// fetchFiltered asks the server for the branch's head commit at depth 1
// with the partial-clone filter blob:limit=limit+1, so that blobs over
// limit are never sent: go-git buffers a big blob while indexing the
// pack, whatever the store. It reports false, having fetched nothing,
// when the server does not advertise filter and shallow; go-git's clone
// cannot send a filter.
func (s *Source) fetchFiltered(ctx context.Context, st storage.Storer, limit int64) (plumbing.Hash, bool, error) {
	ep, err := transport.NewEndpoint(s.URL)
	if err != nil {
		return plumbing.ZeroHash, false, fmt.Errorf("fetch %s: %w", s.URL, err)
	}
	tr, err := client.NewClient(ep)
	if err != nil {
		return plumbing.ZeroHash, false, fmt.Errorf("fetch %s: %w", s.URL, err)
	}
	sess, err := tr.NewUploadPackSession(ep, s.Auth)
	if err != nil {
		return plumbing.ZeroHash, false, fmt.Errorf("fetch %s: %w", s.URL, err)
	}
	defer sess.Close()
	adv, err := sess.AdvertisedReferencesContext(ctx)
	if err != nil {
		return plumbing.ZeroHash, false, fmt.Errorf("fetch %s: refs: %w", s.URL, err)
	}
	if !adv.Capabilities.Supports(capability.Filter) || !adv.Capabilities.Supports(capability.Shallow) {
		return plumbing.ZeroHash, false, nil
	}
	refs, err := adv.AllReferences()
	if err != nil {
		return plumbing.ZeroHash, false, fmt.Errorf("fetch %s: refs: %w", s.URL, err)
	}
	want := plumbing.NewBranchReferenceName(s.Branch)
	ref, ok := refs[want]
	if !ok || ref.Type() != plumbing.HashReference {
		return plumbing.ZeroHash, false, fmt.Errorf("fetch %s: %s: %w", s.URL, want, ErrBranchNotFound)
	}
	req := packp.NewUploadPackRequestFromCapabilities(adv.Capabilities)
	req.Capabilities.Delete(capability.ThinPack) // no local objects to complete one
	for _, c := range []capability.Capability{capability.Shallow, capability.Filter} {
		if err := req.Capabilities.Set(c); err != nil {
			return plumbing.ZeroHash, false, fmt.Errorf("fetch %s: %w", s.URL, err)
		}
	}
	if adv.Capabilities.Supports(capability.NoProgress) {
		if err := req.Capabilities.Set(capability.NoProgress); err != nil {
			return plumbing.ZeroHash, false, fmt.Errorf("fetch %s: %w", s.URL, err)
		}
	}
	req.Wants = []plumbing.Hash{ref.Hash()}
	req.Depth = packp.DepthCommits(1)
	req.Filter = packp.FilterBlobLimit(uint64(limit)+1, packp.BlobLimitPrefixNone) // omits blobs of at least n bytes
	resp, err := sess.UploadPack(ctx, req)
	if err != nil {
		return plumbing.ZeroHash, false, fmt.Errorf("fetch %s@%s: %w", s.URL, s.Branch, err)
	}
	defer resp.Close()
	var pack io.Reader = resp
	switch {
	case req.Capabilities.Supports(capability.Sideband64k):
		pack = sideband.NewDemuxer(sideband.Sideband64k, resp)
	case req.Capabilities.Supports(capability.Sideband):
		pack = sideband.NewDemuxer(sideband.Sideband, resp)
	}
	if err := packfile.UpdateObjectStorage(st, pack); err != nil {
		return plumbing.ZeroHash, false, fmt.Errorf("fetch %s@%s: pack: %w", s.URL, s.Branch, err)
	}
	return ref.Hash(), true, nil
}
