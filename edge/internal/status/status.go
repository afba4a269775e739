// Package status is the edge agent's record of what it runs and why, kept
// in a Recorder: the status document (internal/devicestatus), persisted to
// disk, served as JSON at /status and as Prometheus text at /metrics.
package status

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/google/renameio/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/aerie-ml/aerie/internal/devicestatus"
)

// Recorder holds the status, persists it and counts events. It is safe for
// concurrent use: updates are applied in order, and the state file always
// ends up holding the latest of them.
//
// The state file is written only when what it holds changes; the time of
// the last pass and the Reconciling condition are kept in memory only, so
// an idle device does not wear its SD card. A write that fails (a full
// disk) is logged and counted, never returned: the model keeps running.
type Recorder struct {
	path string // state file; "" keeps it in memory only
	log  *slog.Logger

	mu  sync.Mutex
	st  devicestatus.Status
	gen uint64 // incremented by every Update

	wmu     sync.Mutex // serializes writes of the state file
	wgen    uint64     // generation of the last write attempted
	written []byte     // content of the state file, nil if unknown

	Metrics *Metrics
}

// NewRecorder loads the status persisted at path (if any). An unreadable
// or torn state file is logged and ignored: the versions on disk are the
// truth, and the agent must start without it.
func NewRecorder(path, deviceID, fleet string, log *slog.Logger) *Recorder {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Recorder{path: path, log: log, Metrics: NewMetrics()}
	r.Metrics.registry.MustRegister(statusCollector{r})
	if path != "" {
		// A crash or a full disk in the middle of a write leaves these.
		left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+"*"))
		for _, f := range append(left, path+".tmp") {
			os.Remove(f)
		}
		b, err := os.ReadFile(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			log.Error("read status; starting with an empty one", "path", path, "err", err)
		default:
			if err := json.Unmarshal(b, &r.st); err != nil {
				log.Error("status file is torn; starting with an empty one", "path", path, "err", err)
				r.st = devicestatus.Status{}
			} else {
				r.written = b
			}
		}
	}
	r.st.DeviceID, r.st.Fleet = deviceID, fleet
	if r.written != nil && !bytes.Equal(r.written, r.persisted(r.st)) {
		r.written = nil
	}
	return r
}

// Get returns a deep copy of the status.
func (r *Recorder) Get() devicestatus.Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return clone(r.st)
}

func clone(s devicestatus.Status) devicestatus.Status {
	b, _ := json.Marshal(s)
	var c devicestatus.Status
	json.Unmarshal(b, &c)
	return c
}

// persisted is the content of the state file for s: s without what
// changes at every pass.
func (r *Recorder) persisted(s devicestatus.Status) []byte {
	s.LastReconcileTime = nil
	s.Conditions = slices.DeleteFunc(slices.Clone(s.Conditions), func(c metav1.Condition) bool {
		return c.Type == meta.ReconcilingCondition
	})
	b, _ := json.MarshalIndent(s, "", "  ")
	return append(b, '\n')
}

// Update applies f to the status and persists it if the state file's
// content changed.
func (r *Recorder) Update(f func(*devicestatus.Status)) {
	r.mu.Lock()
	f(&r.st)
	r.gen++
	gen := r.gen
	var b []byte
	if r.path != "" {
		b = r.persisted(r.st)
	}
	r.mu.Unlock()
	if r.path == "" {
		return
	}

	r.wmu.Lock()
	defer r.wmu.Unlock()
	if gen < r.wgen || bytes.Equal(b, r.written) {
		return // a newer update was written already, or nothing changed
	}
	r.wgen = gen
	// The temp file goes next to the state file: same file system, and no
	// probing of os.TempDir at every write.
	if err := renameio.WriteFile(r.path, b, 0o644, renameio.WithTempDir(filepath.Dir(r.path))); err != nil {
		r.Metrics.StatusWriteErrors.Add(1)
		r.log.Error("write status; the model keeps running", "path", r.path, "err", err)
		return
	}
	r.Metrics.StatusWrites.Add(1)
	r.written = b
}

// JSON returns the status document.
func (r *Recorder) JSON() ([]byte, error) {
	s := r.Get()
	slices.SortFunc(s.Conditions, func(a, b metav1.Condition) int {
		return order(a.Type) - order(b.Type)
	})
	b, err := json.MarshalIndent(s, "", "  ")
	return append(b, '\n'), err
}

func order(t string) int {
	switch t {
	case meta.ReadyCondition:
		return 0
	case meta.ReconcilingCondition:
		return 1
	}
	return 2
}
