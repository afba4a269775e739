// Package mission tracks whether the device is on a mission. While it is,
// new model versions are downloaded and verified but not activated. Any of
// three signals holds the lock: a lock file exists, a local HTTP client
// POSTed /mission, or a GPIO input line is active.
package mission

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"sync"
	"time"
)

// Lock combines the mission signals.
type Lock struct {
	// LockFile, when set, holds the lock while it exists.
	LockFile string
	// PollInterval is how often the lock file is checked; 1s by default.
	PollInterval time.Duration

	mu      sync.Mutex
	file    bool
	http    bool
	gpio    bool
	changed chan struct{}
}

func (l *Lock) init() {
	if l.changed == nil {
		l.changed = make(chan struct{}, 1)
	}
}

// Active reports whether any signal holds the lock. The lock file is
// checked now, not only at the last poll.
func (l *Lock) Active() bool {
	l.refreshFile()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.file || l.http || l.gpio
}

// Changed is signalled (coalesced) when the lock may have been released or
// taken.
func (l *Lock) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.init()
	return l.changed
}

func (l *Lock) set(p *bool, v bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.init()
	if *p == v {
		return
	}
	*p = v
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

// SetGPIO records the mission input line's level (a gpio.Chip.Watch callback).
func (l *Lock) SetGPIO(active bool) { l.set(&l.gpio, active) }

// SetHTTP records the HTTP signal.
func (l *Lock) SetHTTP(active bool) { l.set(&l.http, active) }

func (l *Lock) refreshFile() {
	if l.LockFile == "" {
		return
	}
	_, err := os.Stat(l.LockFile)
	l.set(&l.file, !errors.Is(err, fs.ErrNotExist))
}

// Watch polls the lock file until ctx is done, so that removing it
// triggers a reconcile promptly. Run it in a goroutine the caller waits for.
func (l *Lock) Watch(ctx context.Context) {
	if l.LockFile == "" {
		return
	}
	d := l.PollInterval
	if d <= 0 {
		d = time.Second
	}
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		l.refreshFile()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Handler serves /mission: GET reports, POST takes, DELETE releases the
// HTTP signal. Requests with a body of {"active": bool} on POST also work.
func (l *Lock) Handler() http.Handler {
	mux := http.NewServeMux()
	report := func(w http.ResponseWriter) {
		l.refreshFile()
		l.mu.Lock()
		s := map[string]bool{"active": l.file || l.http || l.gpio, "file": l.file, "http": l.http, "gpio": l.gpio}
		l.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(s)
	}
	mux.HandleFunc("GET /mission", func(w http.ResponseWriter, r *http.Request) { report(w) })
	mux.HandleFunc("POST /mission", func(w http.ResponseWriter, r *http.Request) {
		active := true
		if r.ContentLength > 0 {
			var body struct {
				Active *bool `json:"active"`
			}
			if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1024)).Decode(&body); err != nil || body.Active == nil {
				http.Error(w, `want no body or {"active": true|false}`, http.StatusBadRequest)
				return
			}
			active = *body.Active
		}
		l.SetHTTP(active)
		report(w)
	})
	mux.HandleFunc("DELETE /mission", func(w http.ResponseWriter, r *http.Request) {
		l.SetHTTP(false)
		report(w)
	})
	return mux
}
