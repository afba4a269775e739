// Package status is the edge agent's record of what it runs and why:
// Flux-style conditions (Ready, Reconciling, Stalled), the last applied and
// attempted revisions, and counters. It is persisted to disk, served as
// JSON at /status and as Prometheus text at /metrics.
package status

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/google/renameio/v2"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/aerie-ml/aerie/internal/golden"
	"github.com/aerie-ml/aerie/internal/pins"
)

// Reasons of the agent's conditions, beyond meta's generic ones.
const (
	// Ready=False while the remote cannot be listed or fetched.
	GitOperationFailedReason = "GitOperationFailed"
	// Stalled: the pin file is missing, unparseable or for another fleet.
	InvalidPinsReason = "InvalidPins"
	// Stalled: the pin names no real version yet (placeholder digest).
	NoVersionPinnedReason = "NoVersionPinned"
	// Stalled: the pinned version is not in the store.
	ArtifactNotFoundReason = "ArtifactNotFound"
	// Ready=False: the store could not be reached; retried with backoff.
	ArtifactFailedReason = "ArtifactFailed"
	// Stalled: a digest, file hash or signature did not verify.
	VerificationFailedReason = "VerificationFailed"
	// Stalled: the weights did not load.
	LoadFailedReason = "LoadFailed"
	// Stalled: the version failed its self-test on the golden set.
	SelfTestFailedReason = "SelfTestFailed"
	// Ready=False: verified, activation deferred until the mission ends.
	MissionActiveReason = "MissionActive"
	// Ready=True: the active model is a rollback after a failed load.
	RolledBackReason = "RolledBack"
)

// Model is an installed version as the status reports it.
type Model struct {
	ManifestDigest string         `json:"manifestDigest"`
	URI            string         `json:"uri,omitempty"`
	Run            string         `json:"run,omitempty"`
	Version        string         `json:"version,omitempty"`
	Architecture   string         `json:"architecture,omitempty"`
	Canary         bool           `json:"canary,omitempty"`
	SignedBy       string         `json:"signedBy,omitempty"`
	SelfTest       *golden.Result `json:"selfTest,omitempty"`
	ActivatedAt    *metav1.Time   `json:"activatedAt,omitempty"`
}

// Status is the device's status document (status/devices/<id>.json).
type Status struct {
	DeviceID   string             `json:"deviceID"`
	Fleet      string             `json:"fleet"`
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// LastAppliedRevision is <branch>@sha1:<commit>/<manifest digest> of
	// the pin that the active model satisfies.
	LastAppliedRevision string `json:"lastAppliedRevision,omitempty"`
	// LastAttemptedRevision is the same for the last pin acted upon.
	LastAttemptedRevision string     `json:"lastAttemptedRevision,omitempty"`
	LastReconcileTime     *time.Time `json:"lastReconcileTime,omitempty"`
	Active                *Model     `json:"active,omitempty"`
	// Pending is a verified version waiting for the mission to end.
	Pending *Model `json:"pending,omitempty"`
	Mission bool   `json:"mission"`
	// SelfTests remembers each installed version's self-test, for rollback.
	SelfTests map[string]golden.Result `json:"selfTests,omitempty"`
	// Trust is the pins' signature policy and keys last fetched, applied
	// again at startup before the remote is reachable.
	Trust *Trust `json:"trust,omitempty"`
}

// Trust is a fleet's signature policy.
type Trust struct {
	RequireSignature bool         `json:"requireSignature"`
	TrustedKeys      []TrustedKey `json:"keys,omitempty"`
}

// TrustedKey is a public key from the repository's keys directory.
type TrustedKey struct {
	Name string `json:"name"`
	Key  []byte `json:"key"` // ed25519 public key (base64 in JSON)
}

// NewTrust records a policy.
func NewTrust(require bool, keys []pins.Key) *Trust {
	t := &Trust{RequireSignature: require}
	for _, k := range keys {
		t.TrustedKeys = append(t.TrustedKeys, TrustedKey{k.Name, k.Key})
	}
	return t
}

// Keys returns the trusted keys; ones of the wrong size are dropped.
func (t *Trust) Keys() []pins.Key {
	var keys []pins.Key
	for _, k := range t.TrustedKeys {
		if len(k.Key) == ed25519.PublicKeySize {
			keys = append(keys, pins.Key{Name: k.Name, Key: ed25519.PublicKey(k.Key)})
		}
	}
	return keys
}

// Revision joins a git revision and a manifest digest.
func Revision(gitRevision, manifestDigest string) string {
	return gitRevision + "/" + manifestDigest
}

// Condition returns the condition of type t, or nil.
func (s *Status) Condition(t string) *metav1.Condition {
	return apimeta.FindStatusCondition(s.Conditions, t)
}

// MarkReady sets Ready and clears Reconciling and Stalled.
func (s *Status) MarkReady(reason, format string, args ...any) {
	s.set(meta.ReadyCondition, metav1.ConditionTrue, reason, format, args...)
	apimeta.RemoveStatusCondition(&s.Conditions, meta.ReconcilingCondition)
	apimeta.RemoveStatusCondition(&s.Conditions, meta.StalledCondition)
}

// MarkReconciling sets Reconciling=True (progress is being made).
func (s *Status) MarkReconciling(reason, format string, args ...any) {
	s.set(meta.ReconcilingCondition, metav1.ConditionTrue, reason, format, args...)
}

// MarkNotReady sets Ready=False; the agent retries with backoff.
func (s *Status) MarkNotReady(reason, format string, args ...any) {
	s.set(meta.ReadyCondition, metav1.ConditionFalse, reason, format, args...)
	apimeta.RemoveStatusCondition(&s.Conditions, meta.StalledCondition)
}

// MarkStalled sets Stalled=True and Ready=False with the same reason:
// nothing changes until the pins do. Reconciling is cleared.
func (s *Status) MarkStalled(reason, format string, args ...any) {
	s.set(meta.StalledCondition, metav1.ConditionTrue, reason, format, args...)
	s.set(meta.ReadyCondition, metav1.ConditionFalse, reason, format, args...)
	apimeta.RemoveStatusCondition(&s.Conditions, meta.ReconcilingCondition)
}

// ClearReconciling removes Reconciling at the end of a reconcile.
func (s *Status) ClearReconciling() {
	apimeta.RemoveStatusCondition(&s.Conditions, meta.ReconcilingCondition)
}

func (s *Status) set(t string, st metav1.ConditionStatus, reason, format string, args ...any) {
	apimeta.SetStatusCondition(&s.Conditions, metav1.Condition{
		Type: t, Status: st, Reason: reason, Message: fmt.Sprintf(format, args...),
	})
}

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
	st  Status
	gen uint64 // incremented by every Update

	wmu     sync.Mutex // serializes writes of the state file
	wgen    uint64     // generation of the last write attempted
	written []byte     // content of the state file, nil if unknown

	Metrics Metrics
}

// NewRecorder loads the status persisted at path (if any). An unreadable
// or torn state file is logged and ignored: the versions on disk are the
// truth, and the agent must start without it.
func NewRecorder(path, deviceID, fleet string, log *slog.Logger) *Recorder {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Recorder{path: path, log: log}
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
				r.st = Status{}
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
func (r *Recorder) Get() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return clone(r.st)
}

func clone(s Status) Status {
	b, _ := json.Marshal(s)
	var c Status
	json.Unmarshal(b, &c)
	return c
}

// persisted is the content of the state file for s: s without what
// changes at every pass.
func (r *Recorder) persisted(s Status) []byte {
	s.LastReconcileTime = nil
	s.Conditions = slices.DeleteFunc(slices.Clone(s.Conditions), func(c metav1.Condition) bool {
		return c.Type == meta.ReconcilingCondition
	})
	b, _ := json.MarshalIndent(s, "", "  ")
	return append(b, '\n')
}

// Update applies f to the status and persists it if the state file's
// content changed.
func (r *Recorder) Update(f func(*Status)) {
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
