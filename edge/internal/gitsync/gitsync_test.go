package gitsync

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/fluxcd/pkg/gittestserver"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/storage"
	"github.com/go-git/go-git/v5/storage/filesystem"
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
				"fleets/quadcopters.yaml": "fleet: quadcopters\n",
				"fleets/keys/a.pub":       "key-a\n",
				"README.md":               "not wanted\n",
			})
			head, err := src.Head(ctx)
			if err != nil || head != c1 {
				t.Fatalf("Head() = %q, %v; want %q", head, err, c1)
			}
			snap, err := src.Fetch(ctx, "fleets/quadcopters.yaml", "fleets/keys")
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
			if diff := cmp.Diff([]string{"fleets/keys/a.pub", "fleets/quadcopters.yaml"}, got); diff != "" {
				t.Errorf("snapshot files diff (-want +got):\n%s", diff)
			}
			c2 := repo.Commit(t, map[string]string{"fleets/quadcopters.yaml": "fleet: quadcopters # 2\n"})
			if head, _ := src.Head(ctx); head != c2 {
				t.Errorf("Head() after push = %s, want %s", head, c2)
			}
			snap, err = src.Fetch(ctx, "fleets/quadcopters.yaml")
			if err != nil {
				t.Fatal(err)
			}
			if b, _ := fs.ReadFile(snap.FS, "fleets/quadcopters.yaml"); string(b) != "fleet: quadcopters # 2\n" {
				t.Errorf("pin after push = %q", b)
			}
			if _, err := (&Source{URL: url, Branch: "nope"}).Head(ctx); !errors.Is(err, ErrBranchNotFound) {
				t.Errorf("Head(nope) = %v, want ErrBranchNotFound", err)
			}
		})
	}
}

// observed is the object store Fetch uses, recording what goes through
// memory: objects stored one by one (a memory store holds every object so)
// and objects read back. The pack itself arrives through the embedded
// store's PackfileWriter, streamed to disk.
type observed struct {
	*filesystem.Storage
	mu     sync.Mutex
	stored []int64 // sizes of objects set in memory
	read   []plumbing.Hash
	// probe is looked up in the store before the first file is read.
	probe     plumbing.Hash
	probed    bool
	inStore   bool
	packBytes int64 // written through PackfileWriter
}

func (o *observed) PackfileWriter() (io.WriteCloser, error) {
	w, err := o.Storage.PackfileWriter()
	if err != nil {
		return nil, err
	}
	return &probingWriter{WriteCloser: w, o: o}, nil
}

type probingWriter struct {
	io.WriteCloser
	o *observed
}

func (w *probingWriter) Write(p []byte) (int, error) {
	n, err := w.WriteCloser.Write(p)
	w.o.mu.Lock()
	w.o.packBytes += int64(n)
	w.o.mu.Unlock()
	return n, err
}

// EncodedObjectSize is first called by Fetch once the pack is stored.
func (o *observed) EncodedObjectSize(h plumbing.Hash) (int64, error) {
	o.mu.Lock()
	if !o.probed {
		o.probed = true
		_, err := o.Storage.EncodedObjectSize(o.probe)
		o.inStore = err == nil
	}
	o.mu.Unlock()
	return o.Storage.EncodedObjectSize(h)
}

func (o *observed) SetEncodedObject(obj plumbing.EncodedObject) (plumbing.Hash, error) {
	o.mu.Lock()
	o.stored = append(o.stored, obj.Size())
	o.mu.Unlock()
	return o.Storage.SetEncodedObject(obj)
}

func (o *observed) EncodedObject(t plumbing.ObjectType, h plumbing.Hash) (plumbing.EncodedObject, error) {
	o.mu.Lock()
	o.read = append(o.read, h)
	o.mu.Unlock()
	return o.Storage.EncodedObject(t, h)
}

// TestFetchLeavesBigBlobsOnDisk: an 8 MiB blob elsewhere in the tree is
// streamed to the temporary object store on disk and never read or held
// as an object in memory; the pin file is read; the store is removed.
func TestFetchLeavesBigBlobsOnDisk(t *testing.T) {
	repo := gittest.New(t, filepath.Join(t.TempDir(), "aerie.git"))
	big := make([]byte, 8<<20)
	rand.NewChaCha8([32]byte{1}).Read(big) // incompressible
	bigHash := plumbing.ComputeHash(plumbing.BlobObject, big)
	repo.Commit(t, map[string]string{
		"fleets/quadcopters.yaml": "fleet: quadcopters\n",
		"fleets/keys/a.pub":       "key-a\n",
		"data/blob.bin":           string(big),
	})
	tmp := t.TempDir()
	var obs *observed
	src := &Source{URL: repo.URL(), Branch: "main", TempDir: tmp, wrap: func(s *filesystem.Storage) storage.Storer {
		obs = &observed{Storage: s, probe: bigHash}
		return obs
	}}
	snap, err := src.Fetch(context.Background(), "fleets/quadcopters.yaml", "fleets/keys")
	if err != nil {
		t.Fatal(err)
	}
	if !obs.inStore || obs.packBytes < 8<<20 {
		t.Errorf("without filter support the big blob should be fetched: in store %v, pack of %d bytes", obs.inStore, obs.packBytes)
	}
	if b, _ := fs.ReadFile(snap.FS, "fleets/quadcopters.yaml"); string(b) != "fleet: quadcopters\n" {
		t.Errorf("pin file = %q", b)
	}
	for _, n := range obs.stored {
		if n >= 1<<20 {
			t.Errorf("an object of %d bytes was stored in memory", n)
		}
	}
	if slices.Contains(obs.read, bigHash) {
		t.Error("Fetch read the big blob")
	}
	if len(obs.read) == 0 {
		t.Error("no object read through the observed store")
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("object store left in %s: %v", tmp, left)
	}
}

// TestFetchFilteredLeavesBigBlobsOnServer: a server that allows filters
// (git upload-pack with uploadpack.allowFilter) never sends a blob over
// MaxFileSize; one asked for is ErrTooLarge.
func TestFetchFilteredLeavesBigBlobsOnServer(t *testing.T) {
	git, err := exec.LookPath("git")
	if err != nil {
		t.Skip("no git in PATH for the file:// transport's upload-pack")
	}
	repo := gittest.New(t, filepath.Join(t.TempDir(), "aerie.git"))
	if out, err := exec.Command(git, "-C", repo.Bare, "config", "uploadpack.allowFilter", "true").CombinedOutput(); err != nil {
		t.Fatalf("git config: %v: %s", err, out)
	}
	big := make([]byte, 8<<20)
	rand.NewChaCha8([32]byte{2}).Read(big)
	bigHash := plumbing.ComputeHash(plumbing.BlobObject, big)
	c := repo.Commit(t, map[string]string{
		"fleets/quadcopters.yaml": "fleet: quadcopters\n",
		"fleets/keys/a.pub":       "key-a\n",
		"fleets/keys/b.pub":       "key-b\n",
		"data/blob.bin":           string(big),
		"fleets/huge.yaml":        strings.Repeat("#", 2048),
	})
	var obs *observed
	src := &Source{URL: repo.URL(), Branch: "main", TempDir: t.TempDir(), MaxFileSize: 1024, wrap: func(s *filesystem.Storage) storage.Storer {
		obs = &observed{Storage: s, probe: bigHash}
		return obs
	}}
	snap, err := src.Fetch(context.Background(), "fleets/quadcopters.yaml", "fleets/keys")
	if err != nil {
		t.Fatal(err)
	}
	if !obs.probed || obs.inStore || obs.packBytes >= 1<<20 {
		t.Errorf("the server sent the big blob despite the filter: probed %v, in store %v, pack of %d bytes", obs.probed, obs.inStore, obs.packBytes)
	}
	if snap.Commit != c {
		t.Errorf("Fetch().Commit = %s, want %s", snap.Commit, c)
	}
	got := map[string]string{}
	for _, p := range []string{"fleets/quadcopters.yaml", "fleets/keys/a.pub", "fleets/keys/b.pub"} {
		b, err := fs.ReadFile(snap.FS, p)
		if err != nil {
			t.Fatal(err)
		}
		got[p] = string(b)
	}
	want := map[string]string{"fleets/quadcopters.yaml": "fleet: quadcopters\n", "fleets/keys/a.pub": "key-a\n", "fleets/keys/b.pub": "key-b\n"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("snapshot diff (-want +got):\n%s", diff)
	}
	if _, err := src.Fetch(context.Background(), "fleets/huge.yaml"); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Fetch of a filtered-out 2 KiB file = %v, want ErrTooLarge", err)
	}
}

// TestFetchTooLarge: a file over MaxFileSize is ErrTooLarge, decided from
// the object header.
func TestFetchTooLarge(t *testing.T) {
	repo := gittest.New(t, filepath.Join(t.TempDir(), "aerie.git"))
	repo.Commit(t, map[string]string{"fleets/quadcopters.yaml": strings.Repeat("#", 2048) + "\n"})
	src := &Source{URL: repo.URL(), Branch: "main", TempDir: t.TempDir(), MaxFileSize: 1024}
	if _, err := src.Fetch(context.Background(), "fleets/quadcopters.yaml"); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Fetch of a 2 KiB pin file with a 1 KiB limit = %v, want ErrTooLarge", err)
	}
}
