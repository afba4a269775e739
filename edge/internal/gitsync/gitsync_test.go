package gitsync

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/fluxcd/pkg/gittestserver"
	"github.com/google/go-cmp/cmp"

	"github.com/aerie-ml/aerie/edge/internal/gittest"
)

func TestFileAndHTTP(t *testing.T) {
	srv, err := gittestserver.NewTempGitServer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.StopHTTP() })
	if err := srv.StartHTTP(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		repo func(t *testing.T) (*gittest.Repo, string)
	}{
		{"file", func(t *testing.T) (*gittest.Repo, string) {
			r := gittest.New(t, filepath.Join(t.TempDir(), "aerie.git"))
			return r, r.URL()
		}},
		{"http", func(t *testing.T) (*gittest.Repo, string) {
			r := gittest.New(t, filepath.Join(srv.Root(), "aerie.git"))
			return r, srv.HTTPAddress() + "/aerie.git"
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			repo, url := tt.repo(t)
			src := &Source{URL: url, Branch: "main"}
			c1 := repo.Commit(t, map[string]string{
				"edge/fleets/quadcopters.yaml": "fleet: quadcopters\n",
				"edge/keys/a.pub":              "key-a\n",
				"README.md":                    "not wanted\n",
			})
			head, err := src.Head(ctx)
			if err != nil || head != c1 {
				t.Fatalf("Head() = %q, %v; want %q", head, err, c1)
			}
			snap, err := src.Fetch(ctx, "edge/fleets/quadcopters.yaml", "edge/keys")
			if err != nil {
				t.Fatal(err)
			}
			if snap.Commit != c1 {
				t.Errorf("Fetch().Commit = %s, want %s", snap.Commit, c1)
			}
			var got []string
			fs.WalkDir(snap.FS, ".", func(p string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					got = append(got, p)
				}
				return err
			})
			if diff := cmp.Diff([]string{"edge/fleets/quadcopters.yaml", "edge/keys/a.pub"}, got); diff != "" {
				t.Errorf("snapshot files diff (-want +got):\n%s", diff)
			}
			c2 := repo.Commit(t, map[string]string{"edge/fleets/quadcopters.yaml": "fleet: quadcopters # 2\n"})
			if head, _ := src.Head(ctx); head != c2 {
				t.Errorf("Head() after push = %s, want %s", head, c2)
			}
			snap, err = src.Fetch(ctx, "edge/fleets/quadcopters.yaml")
			if err != nil {
				t.Fatal(err)
			}
			if b, _ := fs.ReadFile(snap.FS, "edge/fleets/quadcopters.yaml"); string(b) != "fleet: quadcopters # 2\n" {
				t.Errorf("pin after push = %q", b)
			}
			if _, err := (&Source{URL: url, Branch: "nope"}).Head(ctx); !errors.Is(err, ErrBranchNotFound) {
				t.Errorf("Head(nope) = %v, want ErrBranchNotFound", err)
			}
		})
	}
}
