// Package mission tracks whether the device is on a mission. While it is,
// new model versions are downloaded and verified but not activated. Any of
// three signals holds the lock: a lock file exists, a local HTTP client
// POSTed /mission, or a GPIO input line is active.
package mission

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/renameio/v2"
)

// Lock combines the mission signals.
type Lock struct {
	// LockFile, when set, holds the lock while it exists.
	LockFile string
	// PollInterval is how often the lock file is checked; 1s by default.
	PollInterval time.Duration
	// StateFile, when set, keeps the HTTP signal across restarts: it is
	// written before POST or DELETE /mission answers, and read by Load.
	StateFile string

	mu      sync.Mutex
	file    bool
	http    bool
	gpio    bool
	unknown error // why the HTTP signal's state could not be read; holds the lock
	changed chan struct{}
}

type state struct {
	HTTP bool `json:"http"`
}

// Load reads the HTTP signal from StateFile, at startup. A state file that
// cannot be read or parsed holds the lock (the device cannot tell whether
// a mission is on) until a POST or DELETE /mission sets it again.
func (l *Lock) Load() error {
	if l.StateFile == "" {
		return nil
	}
	b, err := os.ReadFile(l.StateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	var st state
	if err == nil {
		if err = json.Unmarshal(b, &st); err != nil {
			err = fmt.Errorf("%s: %w", l.StateFile, err)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.init()
	if err != nil {
		l.unknown = fmt.Errorf("mission state unknown, holding the lock: %w", err)
		return l.unknown
	}
	l.http = st.HTTP
	return nil
}

// persist writes the HTTP signal's new state to StateFile.
func (l *Lock) persist(active bool) error {
	if l.StateFile == "" {
		return nil
	}
	b, _ := json.Marshal(state{HTTP: active})
	return renameio.WriteFile(l.StateFile, append(b, '\n'), 0o644, renameio.WithTempDir(filepath.Dir(l.StateFile)))
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
	return l.file || l.http || l.gpio || l.unknown != nil
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

// SetHTTP records the HTTP signal, persisting it first. When it cannot be
// persisted, a release is refused (the lock stays held: after a restart
// the device would not know) and a take still holds the lock.
func (l *Lock) SetHTTP(active bool) error {
	if err := l.persist(active); err != nil {
		l.set(&l.http, true)
		return fmt.Errorf("mission state %s: %w", l.StateFile, err)
	}
	l.mu.Lock()
	l.unknown = nil
	l.mu.Unlock()
	l.set(&l.http, active)
	return nil
}

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
		s := map[string]any{"active": l.file || l.http || l.gpio || l.unknown != nil, "file": l.file, "http": l.http, "gpio": l.gpio}
		if l.unknown != nil {
			s["unknown"] = l.unknown.Error()
		}
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
		if err := l.SetHTTP(active); err != nil {
			http.Error(w, err.Error()+"; the lock stays held", http.StatusServiceUnavailable)
			return
		}
		report(w)
	})
	mux.HandleFunc("DELETE /mission", func(w http.ResponseWriter, r *http.Request) {
		if err := l.SetHTTP(false); err != nil {
			http.Error(w, err.Error()+"; the lock stays held", http.StatusServiceUnavailable)
			return
		}
		report(w)
	})
	return mux
}
