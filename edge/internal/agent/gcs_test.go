package agent

import (
	"context"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/api/option"

	"github.com/aerie-ml/aerie/edge/internal/reconcile"
	"github.com/aerie-ml/aerie/edge/internal/status"
	"github.com/aerie-ml/aerie/internal/devicestatus"
	"github.com/aerie-ml/aerie/internal/store"
)

// TestGCSEmulator installs a version from gs:// (fake-gcs-server in
// process, over real HTTP), then takes the store away: the agent reports
// ArtifactFailed and keeps the model.
func TestGCSEmulator(t *testing.T) {
	ctx := context.Background()
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{NoListener: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: "aerie-models"})
	ts := httptest.NewServer(srv.HTTPHandler())
	t.Cleanup(ts.Close)
	client, err := storage.NewClient(ctx, option.WithEndpoint(ts.URL+"/storage/v1/"), option.WithoutAuthentication(), storage.WithJSONReads())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	fast := store.WithRetry(gax.Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond, Multiplier: 2}, 3)
	gcs, err := store.Open(ctx, "gs://aerie-models", store.WithClient(client), fast)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gcs.Close() })

	f := newFixture(t, "")
	f.st = gcs // versions go to the emulator
	v1 := f.version(1)
	f.pin(v1)
	if got := gcs.URI(v1.Key); got != "gs://aerie-models/"+v1.Key {
		t.Fatalf("pin URI %s", got)
	}
	opts := Options{Once: true, Log: slog.New(slog.DiscardHandler),
		OpenStore: func(ctx context.Context, uri string) (reconcile.Store, error) {
			return store.Open(ctx, uri, store.WithClient(client), fast)
		}}
	if err := Run(ctx, f.config(), opts); err != nil {
		t.Fatal(err)
	}
	if got := f.current(); got != v1.Digest {
		t.Fatalf("current = %s, want v1 from gs://", got)
	}

	v2 := f.version(2)
	f.pin(v2)
	ts.Close() // the store is gone
	if err := Run(ctx, f.config(), opts); err == nil {
		t.Fatal("Run with the store gone = nil error, want a retryable one")
	}
	if got := f.current(); got != v1.Digest {
		t.Fatalf("current with the store gone = %s, want v1", got)
	}
	rec := status.NewRecorder(f.dataDir+"/status.json", "", "", nil)
	s := rec.Get()
	if c := s.Condition(meta.ReadyCondition); c == nil || c.Reason != devicestatus.ArtifactFailedReason {
		t.Errorf("Ready = %+v, want reason ArtifactFailed", c)
	}

	// A store that accepts connections and never answers: the pass ends at
	// store.timeout with ArtifactFailed, and v1 stays.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var held []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	})
	defer func() {
		ln.Close()
		wg.Wait()
		for _, c := range held {
			c.Close()
		}
	}()
	silent, err := storage.NewClient(ctx, option.WithEndpoint("http://"+ln.Addr().String()+"/storage/v1/"), option.WithoutAuthentication(), storage.WithJSONReads())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	opts.OpenStore = func(ctx context.Context, uri string) (reconcile.Store, error) {
		return store.Open(ctx, uri, store.WithClient(silent), fast)
	}
	cfg := f.config()
	cfg.Store.Timeout = 200 * time.Millisecond
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, opts) }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Run with a silent store = nil error, want a retryable one")
		}
	case <-time.After(2 * time.Minute): // a hang, not a measurement
		t.Fatal("Run -once hangs on a silent store")
	}
	if got := f.current(); got != v1.Digest {
		t.Fatalf("current with a silent store = %s, want v1", got)
	}
	s = status.NewRecorder(f.dataDir+"/status.json", "", "", nil).Get()
	if c := s.Condition(meta.ReadyCondition); c == nil || c.Reason != devicestatus.ArtifactFailedReason || !strings.Contains(c.Message, "no answer within 200ms") {
		t.Errorf("Ready = %+v, want ArtifactFailed naming the deadline", c)
	}
}
