// Package gittest makes real Git repositories for tests: a bare repository
// on disk (served over file:// or by gittestserver over HTTP) and a
// working clone that commits and pushes to it.
package gittest

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	gitconfig "github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Repo is a bare repository and a work tree that pushes to it.
type Repo struct {
	Bare string // path of the bare repository
	work string
	repo *git.Repository
	n    int
}

// New creates a bare repository at bare (created if missing) with an
// empty history; Commit pushes branch main to it.
func New(t testing.TB, bare string) *Repo {
	t.Helper()
	if _, err := git.PlainInit(bare, true); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	repo, err := git.PlainInit(work, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.CreateRemote(&gitconfig.RemoteConfig{Name: "origin", URLs: []string{"file://" + bare}}); err != nil {
		t.Fatal(err)
	}
	// HEAD of both points at main.
	for _, r := range []*git.Repository{repo, mustOpen(t, bare)} {
		if err := r.Storer.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, plumbing.NewBranchReferenceName("main"))); err != nil {
			t.Fatal(err)
		}
	}
	return &Repo{Bare: bare, work: work, repo: repo}
}

func mustOpen(t testing.TB, dir string) *git.Repository {
	r, err := git.PlainOpen(dir)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// URL is the bare repository's file:// URL.
func (r *Repo) URL() string { return "file://" + r.Bare }

// Commit writes files (an empty value deletes the file), commits them on
// main and pushes. It returns the commit hash.
func (r *Repo) Commit(t testing.TB, files map[string]string) string {
	t.Helper()
	wt, err := r.repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		p := filepath.Join(r.work, name)
		if content == "" {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if _, err := wt.Remove(name); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := wt.Add(name); err != nil {
			t.Fatal(err)
		}
	}
	r.n++
	when := time.Date(2026, 1, 1, 0, r.n, 0, 0, time.UTC)
	h, err := wt.Commit("change", &git.CommitOptions{
		Author:            &object.Signature{Name: "test", Email: "test@example.com", When: when},
		AllowEmptyCommits: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.repo.Push(&git.PushOptions{RemoteName: "origin", RefSpecs: []gitconfig.RefSpec{"refs/heads/main:refs/heads/main"}, Force: true}); err != nil {
		t.Fatal(err)
	}
	return h.String()
}
