package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/aerie-ml/aerie/internal/exitcode"
	"github.com/aerie-ml/aerie/internal/store"
)

// The tests in this file run the same table against gs:// (fake-gcs-server
// through the real storage client) and file://.

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return fmt.Sprintf("%d bytes sha256:%s", len(b), hex.EncodeToString(s[:8]))
}

func TestRoundTrip(t *testing.T) {
	big := content(1, 17<<20) // more than one 16 MiB upload chunk
	tests := []struct {
		name string
		key  string
		data []byte
		// reader wraps data; stream hides Seek so that Put cannot read twice.
		reader func(b []byte) io.Reader
	}{
		{"empty", "a/empty", nil, func(b []byte) io.Reader { return bytes.NewReader(b) }},
		{"small", "models/run/0123/manifest.json", []byte(`{"ok":true}`), func(b []byte) io.Reader { return bytes.NewReader(b) }},
		{"small stream", "status/devices/pi-1.json", []byte(`{"up":1}`), func(b []byte) io.Reader { return stream{bytes.NewReader(b)} }},
		{"multi-MB seekable", "checkpoints/run/000000000100/w.bin", big, func(b []byte) io.Reader { return bytes.NewReader(b) }},
		{"multi-MB stream", "datasets/x/abc/big.bin", big, func(b []byte) io.Reader { return stream{bytes.NewReader(b)} }},
		{"odd key", "a b/ü+%20?#x", []byte("odd"), func(b []byte) io.Reader { return bytes.NewReader(b) }},
	}
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := be.new(t)
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					if len(tt.data) > 1<<20 && testing.Short() {
						t.Skip("multi-MB object in -short mode")
					}
					ctx := t.Context()
					if err := e.s.Put(ctx, tt.key, tt.reader(tt.data), store.PutOptions{IfNotExists: true}); err != nil {
						t.Fatalf("Put(%q) = %v", tt.key, err)
					}
					got, err := readAll(t, e.s, tt.key)
					if err != nil {
						t.Fatalf("Get(%q) = %v", tt.key, err)
					}
					if diff := cmp.Diff(sum(tt.data), sum(got)); diff != "" {
						t.Errorf("Get(%q) content (-want +got):\n%s", tt.key, diff)
					}
					obj, err := e.s.Stat(ctx, tt.key)
					if err != nil {
						t.Fatalf("Stat(%q) = %v", tt.key, err)
					}
					if diff := cmp.Diff(int64(len(tt.data)), obj.Size); diff != "" {
						t.Errorf("Stat(%q).Size (-want +got):\n%s", tt.key, diff)
					}
				})
			}
		})
	}
}

func TestOverwrite(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := be.new(t)
			const key = "status/devices/pi-7.json"
			mustPut(t, e.s, key, []byte("first"), store.PutOptions{})
			mustPut(t, e.s, key, []byte("second, longer"), store.PutOptions{})
			got, err := readAll(t, e.s, key)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff("second, longer", string(got)); diff != "" {
				t.Errorf("after overwrite (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIfNotExistsConflict(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := be.new(t)
			const key = "models/run/v1/model.safetensors"
			mustPut(t, e.s, key, []byte("winner"), store.PutOptions{IfNotExists: true})
			for _, data := range []string{"loser", "winner"} {
				err := e.s.Put(t.Context(), key, strings.NewReader(data), store.PutOptions{IfNotExists: true})
				if !errors.Is(err, store.ErrExists) {
					t.Fatalf("second Put(%q, %q) = %v, want ErrExists", key, data, err)
				}
				for _, want := range []string{e.s.URI(key), "another writer created it first"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not mention %q", err, want)
					}
				}
			}
			got, err := readAll(t, e.s, key)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff("winner", string(got)); diff != "" {
				t.Errorf("content after conflict (-want +got):\n%s", diff)
			}
		})
	}
}

func TestConcurrentCreate(t *testing.T) {
	const writers = 8
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := be.new(t)
			const key = "checkpoints/run/000000000042/state.bin"
			errs := make([]error, writers)
			var wg sync.WaitGroup
			for i := range writers {
				wg.Go(func() {
					data := bytes.Repeat([]byte{byte('a' + i)}, 64<<10)
					errs[i] = e.s.Put(t.Context(), key, stream{bytes.NewReader(data)}, store.PutOptions{IfNotExists: true})
				})
			}
			wg.Wait()
			winner := -1
			for i, err := range errs {
				switch {
				case err == nil && winner >= 0:
					t.Errorf("writers %d and %d both won", winner, i)
				case err == nil:
					winner = i
				case !errors.Is(err, store.ErrExists):
					t.Errorf("writer %d: %v, want nil or ErrExists", i, err)
				}
			}
			if winner < 0 {
				t.Fatal("no writer won")
			}
			got, err := readAll(t, e.s, key)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(sum(bytes.Repeat([]byte{byte('a' + winner)}, 64<<10)), sum(got)); diff != "" {
				t.Errorf("stored content is not the winner's (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCorruptionDetectedOnRead(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := be.new(t)
			const key = "datasets/fashion-mnist/abc/train-images-idx3-ubyte.gz"
			mustPut(t, e.s, key, content(2, 300<<10), store.PutOptions{IfNotExists: true})
			e.corrupt(t, key)
			_, err := readAll(t, e.s, key)
			if !errors.Is(err, store.ErrCorrupt) {
				t.Fatalf("reading a corrupted object: %v, want ErrCorrupt", err)
			}
			for _, want := range []string{e.s.URI(key), "CRC32C", "write it again"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			if got := exitcode.Of(err); got != exitcode.Data {
				t.Errorf("exitcode.Of(%v) = %d, want %d (Data)", err, got, exitcode.Data)
			}
			if !errors.Is(err, store.ErrPermanent) {
				t.Errorf("reading a corrupted object: %v, want it to match ErrPermanent", err)
			}
		})
	}
}

func TestList(t *testing.T) {
	keys := []string{
		"checkpoints/run/000000000010/state.bin",
		"checkpoints/run/000000000200/state.bin",
		"datasets/fashion-mnist/abc/t10k.gz",
		"datasets/fashion-mnist/abc/train.gz",
		"datasets/fashion.other",
		"models/run/v1/manifest.json",
		"top",
	}
	tests := []struct {
		prefix string
		want   []string
	}{
		{"", keys},
		{"datasets/", keys[2:5]},
		{"datasets/fashion", keys[2:5]},
		{"datasets/fashion-mnist/abc/", keys[2:4]},
		{"datasets/fashion-mnist/abc/t1", keys[2:3]},
		{"checkpoints/run/", keys[0:2]},
		{"t", keys[6:7]},
		{"nothing/", nil},
		{"models/run/v1/manifest.json", keys[5:6]},
	}
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := be.new(t)
			for i, k := range keys {
				mustPut(t, e.s, k, []byte(strings.Repeat("x", i)), store.PutOptions{IfNotExists: true})
			}
			for _, tt := range tests {
				objs, err := e.s.List(t.Context(), tt.prefix)
				if err != nil {
					t.Fatalf("List(%q) = %v", tt.prefix, err)
				}
				var got []string
				for _, o := range objs {
					got = append(got, o.Key)
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("List(%q) keys (-want +got):\n%s", tt.prefix, diff)
				}
			}
		})
	}
}

func TestDelete(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := be.new(t)
			const key = "checkpoints/run/000000000001/state.bin"
			mustPut(t, e.s, key, []byte("state"), store.PutOptions{IfNotExists: true})
			if err := e.s.Delete(t.Context(), key); err != nil {
				t.Fatalf("Delete(%q) = %v", key, err)
			}
			if _, err := e.s.Get(t.Context(), key); !errors.Is(err, store.ErrNotExist) {
				t.Errorf("Get after Delete = %v, want ErrNotExist", err)
			}
			if err := e.s.Delete(t.Context(), key); !errors.Is(err, store.ErrNotExist) {
				t.Errorf("second Delete = %v, want ErrNotExist", err)
			}
			if objs, err := e.s.List(t.Context(), ""); err != nil || len(objs) != 0 {
				t.Errorf("List after Delete = %v, %v; want nothing", objs, err)
			}
			// A deleted immutable key can be created again.
			mustPut(t, e.s, key, []byte("again"), store.PutOptions{IfNotExists: true})
		})
	}
}

func TestNotExist(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := be.new(t)
			const key = "models/run/v9/manifest.json"
			_, err := e.s.Get(t.Context(), key)
			if !errors.Is(err, store.ErrNotExist) || !errors.Is(err, os.ErrNotExist) {
				t.Errorf("Get(missing) = %v, want ErrNotExist (and fs.ErrNotExist)", err)
			}
			if err != nil && !strings.Contains(err.Error(), e.s.URI(key)) {
				t.Errorf("error %q does not name %s", err, e.s.URI(key))
			}
			if _, err := e.s.Stat(t.Context(), key); !errors.Is(err, store.ErrNotExist) {
				t.Errorf("Stat(missing) = %v, want ErrNotExist", err)
			}
			// An object can appear later: retrying may help.
			if errors.Is(err, store.ErrPermanent) {
				t.Errorf("Get(missing) = %v matches ErrPermanent", err)
			}
		})
	}
}

func TestBadKeys(t *testing.T) {
	keys := []string{"", "/abs", "a//b", "a/", "../up", "a/../b", "./a", "a/.", "x\nnewline", "nul\x00", ".aerie-tmp-1", "a/.aerie-x", strings.Repeat("k", 1025), "\xff"}
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := be.new(t)
			ctx := t.Context()
			for _, key := range keys {
				ops := map[string]error{
					"Put":    e.s.Put(ctx, key, strings.NewReader("x"), store.PutOptions{}),
					"Delete": e.s.Delete(ctx, key),
				}
				_, ops["Get"] = e.s.Get(ctx, key)
				_, ops["Stat"] = e.s.Stat(ctx, key)
				for op, err := range ops {
					if !errors.Is(err, store.ErrBadURI) || !errors.Is(err, store.ErrPermanent) {
						t.Errorf("%s(%q) = %v, want ErrBadURI and ErrPermanent", op, key, err)
					} else if got := exitcode.Of(err); got != exitcode.Config {
						t.Errorf("exitcode.Of(%s(%q)) = %d, want Config", op, key, got)
					}
				}
			}
			for _, prefix := range []string{"/abs", "a//", "../"} {
				if _, err := e.s.List(ctx, prefix); !errors.Is(err, store.ErrBadURI) {
					t.Errorf("List(%q) = %v, want ErrBadURI", prefix, err)
				}
			}
			if objs, err := e.s.List(ctx, ""); err != nil || len(objs) != 0 {
				t.Errorf("after bad keys, List = %v, %v; want nothing stored", objs, err)
			}
		})
	}
}

func TestPermissionDenied(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := be.new(t)
			const key = "models/run/v1/manifest.json"
			undo := e.deny(t)
			err := e.s.Put(t.Context(), key, strings.NewReader("{}"), store.PutOptions{IfNotExists: true})
			undo()
			if !errors.Is(err, store.ErrPermission) {
				t.Fatalf("Put into a read-only store = %v, want ErrPermission", err)
			}
			if !strings.Contains(err.Error(), e.s.URI(key)) {
				t.Errorf("error %q does not name %s", err, e.s.URI(key))
			}
			if got := exitcode.Of(err); got != exitcode.Config {
				t.Errorf("exitcode.Of(%v) = %d, want %d (Config)", err, got, exitcode.Config)
			}
			if !errors.Is(err, store.ErrPermanent) {
				t.Errorf("Put into a read-only store = %v, want it to match ErrPermanent", err)
			}
			if _, err := e.s.Get(t.Context(), key); !errors.Is(err, store.ErrNotExist) {
				t.Errorf("Get after a denied Put = %v, want ErrNotExist", err)
			}
		})
	}
}

// cancelAfter cancels its context once n bytes have been read, then keeps
// serving data as a slow writer would.
type cancelAfter struct {
	r      io.Reader
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n -= n
	if c.n <= 0 {
		c.cancel()
	}
	return n, err
}

func TestInterruptedWrite(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := be.new(t)
			const key = "checkpoints/run/000000000007/state.bin"
			for _, opts := range []store.PutOptions{{IfNotExists: true}, {}} {
				ctx, cancel := context.WithCancel(t.Context())
				r := &cancelAfter{r: bytes.NewReader(content(3, 20<<20)), n: 3 << 20, cancel: cancel}
				err := e.s.Put(ctx, key, stream{r}, opts)
				cancel()
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("Put(%+v) cancelled mid-stream = %v, want context.Canceled", opts, err)
				}
				if got := exitcode.Of(err); got != exitcode.Interrupted {
					t.Errorf("exitcode.Of(%v) = %d, want Interrupted", err, got)
				}
				if _, err := e.s.Get(t.Context(), key); !errors.Is(err, store.ErrNotExist) {
					t.Errorf("Get after an interrupted Put = %v, want ErrNotExist", err)
				}
				if objs, err := e.s.List(t.Context(), ""); err != nil || len(objs) != 0 {
					t.Errorf("List after an interrupted Put = %v, %v; want nothing", objs, err)
				}
				if e.dir != nil {
					entries, _ := os.ReadDir(e.dir(key))
					if len(entries) != 0 {
						t.Errorf("interrupted Put left %v in %s", entries, e.dir(key))
					}
				}
			}
		})
	}
}

// failingReader fails after n bytes: the caller's data source broke.
type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("disk on fire")
	}
	n := min(len(p), f.n)
	f.n -= n
	return n, nil
}

func TestSourceError(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := be.new(t)
			const key = "models/run/v1/model.safetensors"
			err := e.s.Put(t.Context(), key, &failingReader{n: 1 << 20}, store.PutOptions{IfNotExists: true})
			if err == nil || !strings.Contains(err.Error(), "disk on fire") {
				t.Fatalf("Put from a failing reader = %v, want its error", err)
			}
			if _, err := e.s.Stat(t.Context(), key); !errors.Is(err, store.ErrNotExist) {
				t.Errorf("Stat after a failed Put = %v, want ErrNotExist", err)
			}
		})
	}
}
