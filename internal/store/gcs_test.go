package store_test

import (
	"bytes"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/google/go-cmp/cmp"

	"github.com/aerie-ml/aerie/internal/exitcode"
	"github.com/aerie-ml/aerie/internal/store"
)

func TestGCSMissingBucket(t *testing.T) {
	client, _, _ := newEmulator(t)
	const uri = "gs://no-such-bucket/runs"
	_, err := store.Open(t.Context(), uri, store.WithClient(client), fastRetry)
	if !errors.Is(err, store.ErrNotExist) {
		t.Fatalf("Open(%s) = %v, want ErrNotExist", uri, err)
	}
	for _, want := range []string{"gs://no-such-bucket/runs/", `bucket "no-such-bucket" does not exist`, "terraform"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if got := exitcode.Of(err); got != exitcode.Config {
		t.Errorf("exitcode.Of(%v) = %d, want Config", err, got)
	}
}

func TestGCSOpenPermissionDenied(t *testing.T) {
	client, f, _ := newEmulator(t)
	f.deny.Store(true)
	_, err := store.Open(t.Context(), "gs://"+bucket, store.WithClient(client), fastRetry)
	if !errors.Is(err, store.ErrPermission) {
		t.Fatalf("Open with denied access = %v, want ErrPermission", err)
	}
	for _, want := range []string{"gs://" + bucket + "/", "roles/storage.objectAdmin"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// TestGCSRetryPolicy pins down which calls survive transient 503s: every
// read, and creates guarded by DoesNotExist, but not unconditional writes.
func TestGCSRetryPolicy(t *testing.T) {
	tests := []struct {
		name    string
		op      func(e *env) error
		wantErr bool
	}{
		{"create with IfNotExists", func(e *env) error {
			return e.s.Put(t.Context(), "models/run/v2/a", strings.NewReader("a"), store.PutOptions{IfNotExists: true})
		}, false},
		{"create stream with IfNotExists", func(e *env) error {
			return e.s.Put(t.Context(), "models/run/v2/b", stream{strings.NewReader("b")}, store.PutOptions{IfNotExists: true})
		}, false},
		{"unconditional overwrite", func(e *env) error {
			return e.s.Put(t.Context(), "status/devices/x.json", strings.NewReader("{}"), store.PutOptions{})
		}, true},
		{"get", func(e *env) error {
			_, err := readAll(t, e.s, "seed")
			return err
		}, false},
		{"stat", func(e *env) error {
			_, err := e.s.Stat(t.Context(), "seed")
			return err
		}, false},
		{"list", func(e *env) error {
			_, err := e.s.List(t.Context(), "")
			return err
		}, false},
		{"delete", func(e *env) error { return e.s.Delete(t.Context(), "seed") }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newGCS(t)
			mustPut(t, e.s, "seed", []byte("seed"), store.PutOptions{})
			e.faults.unavail.Store(2)
			err := tt.op(e)
			// Retried calls use both 503s; the others give up after one.
			wantLeft := int32(0)
			if tt.wantErr {
				wantLeft = 1
			}
			if left := max(e.faults.unavail.Load(), 0); left != wantLeft {
				t.Errorf("%s: %d injected 503s left unused, want %d", tt.name, left, wantLeft)
			}
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("%s after two 503s: err = %v, want error: %v", tt.name, err, tt.wantErr)
			}
			if err != nil {
				if got := exitcode.Of(err); got != exitcode.StorageDown {
					t.Errorf("exitcode.Of(%v) = %d, want StorageDown", err, got)
				}
			}
		})
	}
}

// TestGCSLostCreateResponse: the first create lands but its answer is lost;
// the retry then meets the precondition. The object holds our bytes, so the
// Put succeeded and must say so.
func TestGCSLostCreateResponse(t *testing.T) {
	e := newGCS(t)
	const key = "models/run/v3/model.safetensors"
	data := content(4, 100<<10)
	e.faults.loseUpload.Store(true)
	if err := e.s.Put(t.Context(), key, bytes.NewReader(data), store.PutOptions{IfNotExists: true}); err != nil {
		t.Fatalf("Put whose first answer was lost = %v, want success", err)
	}
	if e.faults.loseUpload.Load() {
		t.Fatal("the upload's answer was not lost: the test tests nothing")
	}
	got, err := readAll(t, e.s, key)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sum(data), sum(got)); diff != "" {
		t.Errorf("content (-want +got):\n%s", diff)
	}
	// Someone else's bytes under the key are still a conflict.
	e.faults.loseUpload.Store(true)
	err = e.s.Put(t.Context(), key, bytes.NewReader(content(5, 100<<10)), store.PutOptions{IfNotExists: true})
	if !errors.Is(err, store.ErrExists) {
		t.Errorf("Put of other bytes = %v, want ErrExists", err)
	}
}

func TestGCSURI(t *testing.T) {
	client, _, _ := newEmulator(t)
	tests := []struct{ root, key, want string }{
		{"gs://" + bucket, "models/r/v/manifest.json", "gs://aerie-test/models/r/v/manifest.json"},
		{"gs://" + bucket + "/", "", "gs://aerie-test/"},
		{"gs://" + bucket + "/p/q", "datasets/x/", "gs://aerie-test/p/q/datasets/x/"},
	}
	for _, tt := range tests {
		s, err := store.Open(t.Context(), tt.root, store.WithClient(client))
		if err != nil {
			t.Fatal(err)
		}
		if got := s.URI(tt.key); got != tt.want {
			t.Errorf("Open(%s).URI(%q) = %q, want %q", tt.root, tt.key, got, tt.want)
		}
	}
}

// TestGCSCorruptedInTransit: bytes changed between client and server never
// become an object, whether Put could declare the CRC32C up front (a
// seekable reader) or computed it while streaming.
func TestGCSCorruptedInTransit(t *testing.T) {
	data := append(content(6, 64<<10), "CORRUPTME"...)
	tests := []struct {
		name   string
		reader func() io.Reader
	}{
		{"seekable", func() io.Reader { return bytes.NewReader(data) }},
		{"stream", func() io.Reader { return stream{bytes.NewReader(data)} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newGCS(t)
			e.faults.mangle.Store(true)
			const key = "models/run/v4/model.safetensors"
			err := e.s.Put(t.Context(), key, tt.reader(), store.PutOptions{IfNotExists: true})
			if err == nil {
				t.Fatal("Put corrupted in transit succeeded")
			}
			t.Logf("Put: %v", err)
			if !strings.Contains(err.Error(), e.s.URI(key)) {
				t.Errorf("error %q does not name %s", err, e.s.URI(key))
			}
			if _, err := e.s.Stat(t.Context(), key); !errors.Is(err, store.ErrNotExist) {
				t.Errorf("Stat after a corrupted upload = %v, want ErrNotExist", err)
			}
		})
	}
}

// TestGCSEmulatorHost: with STORAGE_EMULATOR_HOST set, Open needs no client
// and no credentials.
func TestGCSEmulatorHost(t *testing.T) {
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{NoListener: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: bucket})
	ts := httptest.NewServer(srv.HTTPHandler())
	t.Cleanup(ts.Close)
	t.Setenv("STORAGE_EMULATOR_HOST", strings.TrimPrefix(ts.URL, "http://"))

	s, err := store.Open(t.Context(), "gs://"+bucket+"/env")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustPut(t, s, "k", []byte("v"), store.PutOptions{IfNotExists: true})
	got, err := readAll(t, s, "k")
	if err != nil || string(got) != "v" {
		t.Errorf("round trip through STORAGE_EMULATOR_HOST = %q, %v; want \"v\"", got, err)
	}
}
