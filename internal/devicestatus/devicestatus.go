// Package devicestatus is an edge device's status document, the JSON the
// agent serves at /status and uploads to status/devices/<id>.json: Flux-style
// conditions (Ready, Reconciling, Stalled), the last applied and attempted
// revisions and the installed versions. The edge agent writes it; aerie
// and the demo read it.
package devicestatus

import (
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/aerie-ml/aerie/internal/pins"
	"github.com/aerie-ml/aerie/internal/selftest"
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
	// Stalled: the version failed its self-test on the set it ships with.
	SelfTestFailedReason = "SelfTestFailed"
	// Stalled: the version's classes lack a class a GPIO output names.
	ClassesMissingReason = "ClassesMissing"
	// Ready=False: verified, activation deferred until the mission ends.
	MissionActiveReason = "MissionActive"
	// Ready=True: the active model is a rollback after a failed load.
	RolledBackReason = "RolledBack"
)

// Model is an installed version as the status reports it.
type Model struct {
	ManifestDigest string `json:"manifestDigest"`
	URI            string `json:"uri,omitempty"`
	Run            string `json:"run,omitempty"`
	Version        string `json:"version,omitempty"`
	Architecture   string `json:"architecture,omitempty"`
	// Classes are the model's class names, in output order.
	Classes     []string         `json:"classes,omitempty"`
	Canary      bool             `json:"canary,omitempty"`
	SignedBy    string           `json:"signedBy,omitempty"`
	SelfTest    *selftest.Result `json:"selfTest,omitempty"`
	ActivatedAt *metav1.Time     `json:"activatedAt,omitempty"`
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
	SelfTests map[string]selftest.Result `json:"selfTests,omitempty"`
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
