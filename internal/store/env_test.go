package store_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/googleapis/gax-go/v2"
	"golang.org/x/sys/unix"
	"google.golang.org/api/option"

	"github.com/aerie-ml/aerie/internal/store"
)

// env is a fresh, empty store plus ways to damage it behind its back.
type env struct {
	s store.Store
	// corrupt flips one byte of key's stored content, keeping its size and
	// stored checksum.
	corrupt func(t *testing.T, key string)
	// deny makes the store refuse writes with "permission denied" until the
	// returned function is called; it skips the test where it cannot.
	deny func(t *testing.T) (undo func())
	// dir is the directory of key's object file, on file:// only.
	dir func(key string) string
	// faults reaches the HTTP middleware in front of the emulator, gs:// only.
	faults *faults
}

// backends are the two kinds of store every shared test runs against.
var backends = []struct {
	name string
	new  func(t *testing.T) *env
}{
	{"gs", newGCS},
	{"file", newFile},
}

const bucket = "aerie-test"

// gcsPrefix is the store's prefix in the bucket, so tests cover prefixes.
const gcsPrefix = "team/store/"

// faults is an HTTP middleware in front of the emulator that injects the
// failures a real GCS produces and the emulator does not.
type faults struct {
	deny       atomic.Bool  // answer 403 to every request
	unavail    atomic.Int32 // answer the next n requests with 503
	loseUpload atomic.Bool  // let the next upload land but answer it with 503
	requests   atomic.Int32 // requests seen
	mangle     atomic.Bool  // corrupt uploads in transit: "CORRUPTME" becomes "corrupted"
}

func (f *faults) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.requests.Add(1)
		switch {
		case f.deny.Load():
			io.Copy(io.Discard, r.Body)
			writeError(w, http.StatusForbidden, "caller does not have storage.objects access")
			return
		case f.unavail.Add(-1) >= 0:
			io.Copy(io.Discard, r.Body)
			writeError(w, http.StatusServiceUnavailable, "backend unavailable")
			return
		case strings.HasPrefix(r.URL.Path, "/upload/") && f.mangle.Load():
			body, err := io.ReadAll(r.Body)
			if err != nil {
				writeError(w, http.StatusBadRequest, err.Error())
				return
			}
			body = bytes.ReplaceAll(body, []byte("CORRUPTME"), []byte("corrupted"))
			r.Body = io.NopCloser(bytes.NewReader(body))
		case strings.HasPrefix(r.URL.Path, "/upload/") && f.loseUpload.CompareAndSwap(true, false):
			h.ServeHTTP(httptest.NewRecorder(), r)
			writeError(w, http.StatusServiceUnavailable, "response lost")
			return
		}
		h.ServeHTTP(w, r)
	})
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"error":{"code":%d,"message":%q,"errors":[{"message":%q,"reason":"injected"}]}}`, code, msg, msg)
}

// fastRetry keeps tests with injected failures quick.
var fastRetry = store.WithRetry(gax.Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond, Multiplier: 2}, 5)

// newEmulator starts fake-gcs-server in process, behind the faults
// middleware on a real 127.0.0.1 listener, and returns a real storage
// client for it. The emulator keeps objects under root, where tests can
// corrupt them.
func newEmulator(t *testing.T) (client *storage.Client, f *faults, root string) {
	t.Helper()
	root = t.TempDir()
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{NoListener: true, StorageRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: bucket})
	f = new(faults)
	ts := httptest.NewServer(f.wrap(srv.HTTPHandler()))
	t.Cleanup(ts.Close)
	client, err = storage.NewClient(context.Background(),
		option.WithEndpoint(ts.URL+"/storage/v1/"),
		option.WithoutAuthentication(),
		storage.WithJSONReads(), // the emulator serves XML-API reads on another host
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return client, f, root
}

func newGCS(t *testing.T) *env {
	client, f, root := newEmulator(t)
	s, err := store.Open(t.Context(), "gs://"+bucket+"/"+gcsPrefix, store.WithClient(client), fastRetry)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &env{
		s:      s,
		faults: f,
		corrupt: func(t *testing.T, key string) {
			flipByte(t, filepath.Join(root, bucket, filepath.FromSlash(gcsPrefix+key)))
		},
		deny: func(t *testing.T) func() {
			f.deny.Store(true)
			return func() { f.deny.Store(false) }
		},
	}
}

func newFile(t *testing.T) *env {
	root := filepath.Join(t.TempDir(), "store")
	s, err := store.Open(t.Context(), "file://"+root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	path := func(key string) string { return filepath.Join(root, filepath.FromSlash(key)) }
	return &env{
		s:       s,
		corrupt: func(t *testing.T, key string) { flipByte(t, path(key)) },
		deny:    func(t *testing.T) func() { return denyWrites(t, root) },
		dir:     func(key string) string { return filepath.Dir(path(key)) },
	}
}

// flipByte inverts the middle byte of the file at path, in place.
func flipByte(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() == 0 {
		t.Fatalf("cannot corrupt empty %s", path)
	}
	b := make([]byte, 1)
	off := fi.Size() / 2
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// denyWrites makes dir refuse new entries. Permission bits do not bind
// root, so as root it sets the immutable attribute instead (chattr +i).
func denyWrites(t *testing.T, dir string) func() {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		return func() { os.Chmod(dir, 0o755) }
	}
	setFlags := func(on bool) error {
		d, err := os.Open(dir)
		if err != nil {
			return err
		}
		defer d.Close()
		flags, err := unix.IoctlGetUint32(int(d.Fd()), unix.FS_IOC_GETFLAGS)
		if err != nil {
			return err
		}
		if on {
			flags |= fsImmutableFL
		} else {
			flags &^= fsImmutableFL
		}
		return unix.IoctlSetPointerInt(int(d.Fd()), unix.FS_IOC_SETFLAGS, int(flags))
	}
	if err := setFlags(true); err != nil {
		t.Skipf("running as root and cannot make %s immutable (%v): no way to deny a write", dir, err)
	}
	undo := func() {
		if err := setFlags(false); err != nil {
			t.Errorf("clear immutable flag on %s: %v", dir, err)
		}
	}
	t.Cleanup(undo)
	return undo
}

// content returns n deterministic pseudo-random bytes.
func content(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// stream hides any Seek method, so that Put sees a plain stream.
type stream struct{ io.Reader }

func readAll(t *testing.T, s store.Store, key string) ([]byte, error) {
	t.Helper()
	r, err := s.Get(t.Context(), key)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func mustPut(t *testing.T, s store.Store, key string, b []byte, opts store.PutOptions) {
	t.Helper()
	if err := s.Put(t.Context(), key, strings.NewReader(string(b)), opts); err != nil {
		t.Fatalf("Put(%q) = %v", key, err)
	}
}

// fsImmutableFL is FS_IMMUTABLE_FL from linux/fs.h (chattr +i).
const fsImmutableFL = 0x00000010
