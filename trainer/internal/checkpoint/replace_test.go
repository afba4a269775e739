package checkpoint

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/api/option"

	"github.com/aerie-ml/aerie/internal/store"
)

// backend is a Store and the directory where its objects lie as files, so a
// test can damage them behind the store's back as a disk or a bucket could.
type backend struct {
	name string
	new  func(t *testing.T) (Store, string)
}

var backends = []backend{
	{"Dir", func(t *testing.T) (Store, string) {
		d := t.TempDir()
		return Dir(d), d
	}},
	{"file://", func(t *testing.T) (Store, string) {
		root := t.TempDir()
		s, err := store.Open(t.Context(), "file://"+root)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return FromStore(s), root
	}},
	{"gs://", func(t *testing.T) (Store, string) {
		root := t.TempDir()
		srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{NoListener: true, StorageRoot: root})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Stop)
		srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: "aerie-ckpt"})
		ts := httptest.NewServer(srv.HTTPHandler())
		t.Cleanup(ts.Close)
		client, err := storage.NewClient(context.Background(), option.WithEndpoint(ts.URL+"/storage/v1/"),
			option.WithoutAuthentication(), storage.WithJSONReads())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { client.Close() })
		s, err := store.Open(t.Context(), "gs://aerie-ckpt/", store.WithClient(client))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return FromStore(s), filepath.Join(root, "aerie-ckpt")
	}},
}

// TestSaveReplacesInvalidCheckpoint is issue 15 §16: after the newest
// checkpoint is damaged, the resume falls back to the one before, and saving
// the damaged step again must leave a valid checkpoint at that step, not keep
// the damaged one because its marker exists.
func TestSaveReplacesInvalidCheckpoint(t *testing.T) {
	damages := []struct {
		name string
		// file picks the object to damage: the state or the marker.
		file func(name string) bool
		do   func(t *testing.T, path string)
	}{
		{"state flipped", isState, flipLast},
		{"state truncated", isState, func(t *testing.T, p string) { truncate(t, p) }},
		{"state removed", isState, func(t *testing.T, p string) { remove(t, p) }},
		{"marker garbled", isMarker, func(t *testing.T, p string) { overwrite(t, p, "garbage\n") }},
		{"marker names another digest", isMarker, func(t *testing.T, p string) {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			overwrite(t, p, strings.Replace(string(b), "sha256:", "sha256:0", 1))
		}},
	}
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			for _, d := range damages {
				t.Run(d.name, func(t *testing.T) {
					ctx := t.Context()
					st, root := be.new(t)
					c := &Checkpoints{Store: st, Run: "r", Log: newLogger(&strings.Builder{})}
					for _, step := range []int64{4, 8} {
						if _, err := c.Save(ctx, state(step)); err != nil {
							t.Fatal(err)
						}
					}
					dir := filepath.Join(root, "checkpoints/r/000000000008")
					es, err := os.ReadDir(dir)
					if err != nil {
						t.Fatal(err)
					}
					for _, e := range es {
						if d.file(e.Name()) {
							d.do(t, filepath.Join(dir, e.Name()))
						}
					}
					if got, _, err := c.Latest(ctx); err != nil || got == nil || got.Step != 4 {
						t.Fatalf("Latest after damaging step 8 = %+v, %v; want the fallback to step 4", got, err)
					}
					// The resumed run reaches step 8 again and saves it.
					if _, err := c.Save(ctx, state(8)); err != nil {
						t.Fatalf("re-save of step 8: %v", err)
					}
					fresh := &Checkpoints{Store: st, Run: "r"}
					got, _, err := fresh.Latest(ctx)
					if err != nil {
						t.Fatal(err)
					}
					if diff := cmp.Diff(state(8), got); diff != "" {
						t.Errorf("Latest after re-saving step 8 (-want +got):\n%s", diff)
					}
				})
			}
		})
	}
}

func isState(name string) bool  { return strings.HasPrefix(name, "state-") }
func isMarker(name string) bool { return name == Committed }

func flipLast(t *testing.T, p string) {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 1
	overwrite(t, p, string(b))
}

func truncate(t *testing.T, p string) {
	if err := os.Truncate(p, 10); err != nil {
		t.Fatal(err)
	}
}

func remove(t *testing.T, p string) {
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
}

func overwrite(t *testing.T, p, s string) {
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
