package dataset_test

import (
	"context"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/api/option"

	"github.com/aerie-ml/aerie/internal/dataset"
	"github.com/aerie-ml/aerie/internal/store"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const bucket = "aerie-data"

// backend is an empty store of one kind, with a way to reach its objects'
// files behind its back and, for gs://, to make the store unavailable.
type backend struct {
	s    store.Store
	uri  string
	opts []store.Option
	// file is the path of key's content on disk.
	file func(key string) string
	// unavailable makes every request fail with 503 while set (gs:// only).
	unavailable *atomic.Bool
	// stalled makes every request hang until its client gives up (gs://
	// only).
	stalled *atomic.Bool
}

var backends = []struct {
	name string
	open func(t *testing.T) *backend
}{
	{"file", func(t *testing.T) *backend { return openFile(t) }},
	{"gs", openGCS},
}

func openFile(t testing.TB) *backend {
	root := filepath.Join(t.TempDir(), "store")
	s, err := store.Open(t.Context(), "file://"+root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &backend{s: s, uri: "file://" + root, file: func(key string) string { return filepath.Join(root, filepath.FromSlash(key)) }}
}

// openGCS serves fake-gcs-server on a 127.0.0.1 listener, behind a
// middleware that can answer 503, through the real storage client.
func openGCS(t *testing.T) *backend {
	root := t.TempDir()
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{NoListener: true, StorageRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: bucket})
	down, stall := new(atomic.Bool), new(atomic.Bool)
	h := srv.HTTPHandler()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if stall.Load() {
			<-r.Context().Done()
			return
		}
		if down.Load() {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"error":{"code":503,"message":"backend unavailable"}}`)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	client, err := storage.NewClient(context.Background(),
		option.WithEndpoint(ts.URL+"/storage/v1/"),
		option.WithoutAuthentication(),
		storage.WithJSONReads(),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	opts := []store.Option{store.WithClient(client),
		store.WithRetry(gax.Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond, Multiplier: 2}, 3)}
	s, err := store.Open(t.Context(), "gs://"+bucket+"/dev", opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &backend{s: s, uri: "gs://" + bucket + "/dev", opts: opts, unavailable: down, stalled: stall,
		file: func(key string) string { return filepath.Join(root, bucket, "dev", filepath.FromSlash(key)) }}
}

// pixels is sample j's deterministic content.
func pixels(sh dataset.Shape, split string, j int) []byte {
	b := make([]byte, sh.Bytes())
	for i := range b {
		b[i] = byte(i*7 + j*13 + len(split))
	}
	return b
}

func classOf(split string, j int) int { return (j*5 + len(split)) % 3 }

var tinyShape = dataset.Shape{Height: 4, Width: 3, Channels: 3}

var tinyClasses = []string{"cat", "dog", "T-shirt/top"}

// writeTiny builds a dataset of train (n samples) and test (n/2) with about
// perShard samples a shard, in a new directory; it returns the directory and
// the manifest's bytes.
func writeTiny(t testing.TB, n, perShard int) (string, []byte) {
	t.Helper()
	dir := t.TempDir()
	w, err := dataset.NewWriter(dir, tinyClasses, tinyShape, int64(perShard)*dataset.RecordBytes(tinyShape))
	if err != nil {
		t.Fatal(err)
	}
	for _, sp := range []struct {
		name string
		n    int
	}{{"train", n}, {"test", n / 2}} {
		for j := range sp.n {
			if err := w.Add(sp.name, classOf(sp.name, j), pixels(tinyShape, sp.name, j)); err != nil {
				t.Fatal(err)
			}
		}
	}
	_, b, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return dir, b
}

// uploadTiny writes the tiny dataset into be's store and opens it as a
// trainer would: a store rooted at the dataset's URI.
func uploadTiny(t *testing.T, be *backend, n, perShard int) (*dataset.Dataset, store.Store, string) {
	t.Helper()
	dir, b := writeTiny(t, n, perShard)
	prefix, _, err := dataset.Upload(t.Context(), be.s, "tiny", dir, b)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := store.Open(t.Context(), be.s.URI(prefix), be.opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ds.Close() })
	d, err := dataset.Open(t.Context(), ds, dataset.Digest(b))
	if err != nil {
		t.Fatal(err)
	}
	return d, ds, prefix
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// openPrefix opens a store rooted at prefix of be's store.
func openPrefix(t testing.TB, be *backend, prefix string) store.Store {
	t.Helper()
	ds, err := store.Open(t.Context(), be.s.URI(prefix), be.opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ds.Close() })
	return ds
}
