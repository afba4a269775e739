// Package agent wires the edge agent together: the reconcile loop, the
// frame loop, the status server and the mission lock, each in a goroutine
// that Run owns and waits for.
package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/aerie-ml/aerie/edge/internal/config"
	"github.com/aerie-ml/aerie/edge/internal/frames"
	"github.com/aerie-ml/aerie/edge/internal/gitsync"
	"github.com/aerie-ml/aerie/edge/internal/gpio"
	"github.com/aerie-ml/aerie/edge/internal/infer"
	"github.com/aerie-ml/aerie/edge/internal/install"
	"github.com/aerie-ml/aerie/edge/internal/mission"
	"github.com/aerie-ml/aerie/edge/internal/reconcile"
	"github.com/aerie-ml/aerie/edge/internal/status"
	"github.com/aerie-ml/aerie/internal/exitcode"
	"github.com/aerie-ml/aerie/internal/store"
)

// Options are what tests and main vary beyond the configuration file.
type Options struct {
	Log *slog.Logger
	// Once runs Restore and one reconcile, then returns (its error, if
	// the pass should be retried): for install scripts, CI and tests.
	Once bool
	// OpenStore overrides store.Open for model versions.
	OpenStore reconcile.OpenStore
	// Chip overrides the configured GPIO chip.
	Chip gpio.Chip
	// Listening, if set, receives the status server's address.
	Listening func(addr string)
	// Backoff bounds the retry delay after failures; 5s to 5m by default.
	BackoffBase, BackoffMax time.Duration
}

// Run runs the agent until ctx is done.
func Run(ctx context.Context, cfg *config.Config, opts Options) error {
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	log = log.With("device", cfg.Device.ID)
	// A soft limit makes the GC work harder instead of growing past what a
	// small Pi can spare; GOMEMLIMIT in the environment wins.
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(int64(cfg.Inference.MemoryLimitMiB) << 20)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return exitcode.Wrap(exitcode.Config, fmt.Errorf("data dir: %w", err))
	}
	rec := status.NewRecorder(filepath.Join(cfg.DataDir, "status.json"), cfg.Device.ID, cfg.Device.Fleet, log)
	lock := &mission.Lock{LockFile: cfg.Mission.LockFile}
	if cfg.Mission.HTTP {
		lock.StateFile = filepath.Join(cfg.DataDir, "mission.json")
		if err := lock.Load(); err != nil {
			log.Error("mission lock held until POST or DELETE /mission", "err", err)
		}
	}

	chip := opts.Chip
	if chip == nil && cfg.GPIO.Chip == config.SimChip {
		chip = gpio.NewSim()
	}
	if chip == nil && cfg.GPIO.Chip != "" {
		c, err := gpio.Open(cfg.GPIO.Chip)
		if err != nil {
			return exitcode.Wrap(exitcode.Config, err)
		}
		defer c.Close()
		chip = c
	}
	var rules []infer.Rule
	outputs := map[string][]string{}
	for _, o := range cfg.GPIO.Outputs {
		outputs[o.Name] = o.Classes
		r := infer.Rule{Name: o.Name, Classes: o.Classes, MinConfidence: float32(o.MinConfidence), Debounce: o.DebounceFrames}
		if chip != nil {
			out, err := chip.Output(o.Line, o.ActiveLow)
			if err != nil {
				return exitcode.Wrap(exitcode.Config, fmt.Errorf("gpio.outputs %s: %w", o.Name, err))
			}
			defer out.Close()
			r.Out = out
		}
		rules = append(rules, r)
	}
	if cfg.Mission.GPIOLine != nil && chip != nil {
		w, err := chip.Watch(*cfg.Mission.GPIOLine, lock.SetGPIO)
		if err != nil {
			return exitcode.Wrap(exitcode.Config, fmt.Errorf("mission.gpioLine: %w", err))
		}
		defer w.Close()
	}

	openStore := opts.OpenStore
	if openStore == nil {
		openStore = func(ctx context.Context, uri string) (reconcile.Store, error) { return store.Open(ctx, uri) }
	}
	slot := &infer.Slot{}
	r := &reconcile.Reconciler{
		DeviceID: cfg.Device.ID, Fleet: cfg.Device.Fleet,
		// The clone's object store goes to staging/, emptied at startup.
		Git:     &gitsync.Source{URL: cfg.Repo.URL, Branch: cfg.Repo.Branch, TempDir: filepath.Join(cfg.DataDir, "staging")},
		PinPath: cfg.Repo.Path, KeysDir: cfg.Repo.KeysDir,
		RequireSignature: cfg.RequireSignature,
		OpenStore:        openStore,
		GitTimeout:       cfg.Repo.Timeout,
		StoreTimeout:     cfg.Store.Timeout,
		Installer:        &install.Installer{Dir: cfg.DataDir, Log: log},
		Keep:             cfg.KeepVersions,
		Slot:             slot,
		Outputs:          outputs,
		Mission:          lock,
		Status:           rec,
		Log:              log,
	}
	if err := r.Restore(ctx); err != nil {
		return fmt.Errorf("restore installed models: %w", err)
	}
	up := &uploader{uri: cfg.Store.StatusURI, timeout: cfg.Store.Timeout, key: store.DeviceStatusKey(cfg.Device.ID), rec: rec, log: log}
	defer up.close()
	if opts.Once {
		err := r.Reconcile(ctx)
		up.upload(ctx)
		return err
	}

	// Deferred in this order so that cancel runs first, then the wait.
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 4)

	if cfg.Status.Listen != "off" {
		mux := http.NewServeMux()
		mux.Handle("/status", rec.Handler())
		mux.Handle("/metrics", rec.Handler())
		if cfg.Mission.HTTP {
			mux.Handle("/mission", lock.Handler())
		}
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
		ln, err := net.Listen("tcp", cfg.Status.Listen)
		if err != nil {
			return exitcode.Wrap(exitcode.Config, fmt.Errorf("status.listen: %w", err))
		}
		if opts.Listening != nil {
			opts.Listening(ln.Addr().String())
		}
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		wg.Go(func() {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("status server: %w", err)
			}
		})
		wg.Go(func() {
			<-ctx.Done()
			sctx, c := context.WithTimeout(context.Background(), 2*time.Second)
			defer c()
			srv.Shutdown(sctx)
		})
	}
	wg.Go(func() { lock.Watch(ctx) })

	if cfg.Frames.Source != config.SourceNone {
		src, err := openSource(ctx, cfg.Frames)
		if err != nil {
			return exitcode.Wrap(exitcode.Config, fmt.Errorf("frames: %w", err))
		}
		loop := &infer.Loop{Source: src, Slot: slot, Actuator: infer.NewActuator(rules, log, rec.Metrics), Metrics: rec.Metrics, Log: log, Invert: cfg.Frames.Invert}
		wg.Go(func() {
			defer src.Close()
			// The frame loop ending (a finished file, a dead camera pipe) is
			// logged; model management goes on.
			if err := loop.Run(ctx); err != nil {
				log.Error("frame loop stopped", "err", err)
			}
		})
		if pipe, ok := src.(*frames.MJPEG); ok {
			wg.Go(func() {
				<-ctx.Done()
				// Unblocks a pipe read so the frame loop can return.
				pipe.Close()
			})
		}
	}

	wg.Go(func() { reconcileLoop(ctx, r, lock, up, cfg.Repo.PollInterval, opts, log) })

	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		return err
	}
}

func reconcileLoop(ctx context.Context, r *reconcile.Reconciler, lock *mission.Lock, up *uploader, poll time.Duration, opts Options, log *slog.Logger) {
	base, maxd := opts.BackoffBase, opts.BackoffMax
	if base <= 0 {
		base = 5 * time.Second
	}
	if maxd <= 0 {
		maxd = 5 * time.Minute
	}
	retry := retryBackoff(base, min(maxd, max(poll, base)))
	nextRetry := retry.DelayFunc()
	for {
		err := r.Reconcile(ctx)
		up.upload(ctx)
		var delay time.Duration
		if err != nil {
			delay = nextRetry()
			log.Warn("reconcile failed; keeping the active model", "err", err, "retryIn", delay.Round(time.Millisecond))
		} else {
			nextRetry = retry.DelayFunc()
			// Up to 10% later, so that a fleet does not poll in step.
			delay = wait.Jitter(poll, 0.1)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-lock.Changed():
			t.Stop()
			log.Info("mission lock changed", "active", lock.Active())
		}
	}
}

// retryBackoff is the delays after failures in a row: a random time in
// [d/2, d), d doubling from base up to limit.
func retryBackoff(base, limit time.Duration) wait.Backoff {
	return wait.Backoff{Duration: base / 2, Factor: 2, Jitter: 1, Steps: math.MaxInt32, Cap: limit / 2}
}

func openSource(ctx context.Context, f config.Frames) (frames.Source, error) {
	opts := frames.Options{Loop: f.Loop, Interval: f.Interval}
	switch f.Source {
	case config.SourceDir:
		return frames.OpenDir(f.Path, opts)
	case config.SourceDataset:
		return frames.OpenDataset(ctx, f.Path, opts)
	case config.SourceMJPEG:
		if f.Path == "-" {
			return frames.NewMJPEG(os.Stdin, nil), nil
		}
		// A FIFO's open blocks until a writer appears; that is the camera's
		// business, so open it read-write to return at once.
		file, err := os.OpenFile(f.Path, os.O_RDWR, 0)
		if err != nil {
			file, err = os.Open(f.Path)
		}
		if err != nil {
			return nil, err
		}
		return frames.NewMJPEG(file, file), nil
	case config.SourceV4L2:
		return frames.OpenV4L2(f.Path, f.Width, f.Height)
	}
	return nil, fmt.Errorf("source %q", f.Source)
}

// uploader writes the status document to the store, best effort.
type uploader struct {
	uri     string
	timeout time.Duration // bounds each upload: a silent store must not hold up the next pass
	key     string
	rec     *status.Recorder
	log     *slog.Logger
	st      store.Store
}

func (u *uploader) upload(ctx context.Context) {
	if u.uri == "" {
		return
	}
	if u.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, u.timeout)
		defer cancel()
	}
	if u.st == nil {
		st, err := store.Open(ctx, u.uri)
		if err != nil {
			u.log.Warn("status upload", "uri", u.uri, "err", err)
			return
		}
		u.st = st
	}
	b, err := u.rec.JSON()
	if err != nil {
		return
	}
	if err := u.st.Put(ctx, u.key, bytes.NewReader(b), store.PutOptions{}); err != nil {
		u.log.Warn("status upload", "uri", u.st.URI(u.key), "err", err)
	}
}

func (u *uploader) close() {
	if u.st != nil {
		u.st.Close()
	}
}
