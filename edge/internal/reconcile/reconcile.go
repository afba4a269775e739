// Package reconcile is the edge agent's reconciler, modelled on Flux's
// source-controller: observe the Git head (skip when unchanged), fetch the
// pins shallowly, choose this device's version (stable or canary by a
// stable hash), download and verify it into staging, check that it has the
// classes the GPIO outputs name, self-test it on the set it ships with,
// and only then activate it, unless a mission holds the lock.
// Status is written from a defer on every pass.
package reconcile

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fluxcd/pkg/apis/meta"

	"github.com/aerie-ml/aerie/edge/internal/gitsync"
	"github.com/aerie-ml/aerie/edge/internal/infer"
	"github.com/aerie-ml/aerie/edge/internal/install"
	"github.com/aerie-ml/aerie/edge/internal/status"
	"github.com/aerie-ml/aerie/internal/devicestatus"
	"github.com/aerie-ml/aerie/internal/pins"
	"github.com/aerie-ml/aerie/internal/selftest"
	"github.com/aerie-ml/aerie/internal/store"
)

// Git is the part of gitsync.Source the reconciler uses.
type Git interface {
	Head(ctx context.Context) (string, error)
	Fetch(ctx context.Context, paths ...string) (*gitsync.Snapshot, error)
	Revision(commit string) string
}

// Store is a model version directory in the store.
type Store interface {
	install.Store
	Close() error
}

// OpenStore opens the store at a pin's URI (the version directory).
type OpenStore func(ctx context.Context, uri string) (Store, error)

// Mission tells whether activation must wait.
type Mission interface{ Active() bool }

// Reconciler turns the fleet's pins into the active model.
type Reconciler struct {
	DeviceID, Fleet string
	Git             Git
	// PinPath and KeysDir are paths in the repository.
	PinPath, KeysDir string
	// RequireSignature is the device's floor; pins can only raise it.
	RequireSignature bool
	OpenStore        OpenStore
	// GitTimeout bounds each Head and Fetch (DefaultGitTimeout when 0), and
	// StoreTimeout the download of one version (DefaultStoreTimeout): a
	// peer that accepts and never answers must not freeze the reconciler.
	GitTimeout, StoreTimeout time.Duration
	Installer                *install.Installer
	Keep                     int
	// Load loads an installed version; infer.Load of its weights by default.
	Load func(ctx context.Context, v *install.Version) (*infer.Model, error)
	Slot *infer.Slot
	// Outputs maps each GPIO output to the classes it names; a version
	// whose classes lack one of them is refused.
	Outputs map[string][]string
	Mission Mission
	Status  *status.Recorder
	Log     *slog.Logger
	Now     func() time.Time

	commit  string           // head the cached pins were read at
	pins    *pins.Pins       // nil when the pin file was bad
	keys    []pins.Key       // trusted keys at commit
	pinErr  error            // why pins is nil
	stalled map[string]stall // attempted revision → permanent failure
	applied string           // policyKey of the signature policy last enforced
}

type stall struct{ reason, msg string }

// Defaults of Reconciler.GitTimeout and StoreTimeout.
const (
	DefaultGitTimeout   = time.Minute
	DefaultStoreTimeout = 5 * time.Minute
)

// bounded calls f with a deadline d (def when d is 0) and names the
// deadline in the error when it is what stopped f.
func bounded[T any](ctx context.Context, d, def time.Duration, what string, f func(context.Context) (T, error)) (T, error) {
	if d <= 0 {
		d = def
	}
	cctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	v, err := f(cctx)
	if err != nil && ctx.Err() == nil && cctx.Err() != nil {
		err = fmt.Errorf("%s: no answer within %v: %w", what, d, err)
	}
	return v, err
}

func (r *Reconciler) now() time.Time {
	if r.Now == nil {
		return time.Now()
	}
	return r.Now()
}

func (r *Reconciler) log() *slog.Logger {
	if r.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Log
}

// Restore activates what the disk says is current, at startup. When the
// current version no longer verifies, loads or meets the signature policy
// (the device's, and the pins' last seen, with their keys), it activates
// the most recently activated version that does; when none does, no model
// runs and the status says why.
func (r *Reconciler) Restore(ctx context.Context) error {
	if err := r.Installer.Init(); err != nil {
		return err
	}
	st := r.Status.Get()
	pol := install.Policy{RequireSignature: r.RequireSignature}
	if t := st.Trust; t != nil {
		pol.RequireSignature = pol.RequireSignature || t.RequireSignature
		pol.Keys = t.Keys()
	}
	return r.enforce(ctx, pol, "at startup")
}

// policyKey identifies a signature policy, to apply it again when it changes.
func policyKey(pol install.Policy) string {
	k := fmt.Sprint(pol.RequireSignature)
	for _, key := range pol.Keys {
		k += "," + key.Name + "=" + base64.StdEncoding.EncodeToString(key.Key)
	}
	return k
}

// enforce keeps the active version if it verifies, loads and meets pol;
// otherwise it activates the most recently activated installed version
// that does, or none.
func (r *Reconciler) enforce(ctx context.Context, pol install.Policy, when string) error {
	r.applied = policyKey(pol)
	cur, err := r.Installer.Current()
	if err != nil {
		return err
	}
	all, err := r.Installer.Installed()
	if err != nil {
		return err
	}
	if cur != "" && r.Slot.Load() != nil && r.Slot.Load().ManifestDigest == "sha256:"+cur {
		// Running already: only the policy can have changed.
		if _, err := r.Installer.Open(cur, pol); err == nil {
			return nil
		}
	}
	candidates := all
	if cur != "" {
		candidates = append([]string{cur}, without(all, cur)...)
	}
	st := r.Status.Get()
	var refused []string
	for _, h := range candidates {
		v, err := r.Installer.Open(h, pol)
		if err == nil {
			var m *infer.Model
			if err = r.checkClasses(v); err == nil {
				m, err = r.load(ctx, v)
			}
			if err == nil {
				if res, ok := st.SelfTests[h]; ok {
					_, err = r.selfTest(ctx, v, m, res.MinAccuracy)
				}
				if err == nil {
					if h != cur {
						if err := r.Installer.Activate(h); err != nil {
							return err
						}
						r.Status.Metrics.Rollbacks.Add(1)
						r.log().Warn("rolled back to a previous model version", "from", cur, "to", h, "when", when)
					}
					r.Slot.Swap(m)
					r.Status.Update(func(s *devicestatus.Status) {
						s.Active = describe(v, m, st.SelfTests[h])
						if h != cur {
							s.MarkReady(devicestatus.RolledBackReason, "version %s is unusable %s (%s); rolled back to %s", cur, when, strings.Join(refused, "; "), h)
						}
					})
					return nil
				}
			}
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			r.log().Error("installed model version is unusable", "version", h, "when", when, "err", err)
			refused = append(refused, err.Error())
			// A version refused by the policy stays: a later policy may take it.
			if h != cur && !errors.Is(err, pins.ErrNoSignature) && !errors.Is(err, pins.ErrBadSignature) {
				r.Installer.Remove(h)
			}
		}
	}
	if cur != "" {
		r.Installer.Deactivate()
	}
	r.Slot.Swap(nil)
	r.Status.Update(func(s *devicestatus.Status) {
		s.Active = nil
		if len(refused) > 0 {
			s.MarkStalled(devicestatus.VerificationFailedReason, "no installed version is usable %s, no model runs: %s", when, strings.Join(refused, "; "))
		}
	})
	return nil
}

// keeping says what runs while a pass fails.
func (r *Reconciler) keeping() string {
	if r.Slot.Load() == nil {
		return "no model runs"
	}
	return "keeping the active model"
}

func without(s []string, x string) []string {
	var out []string
	for _, v := range s {
		if v != x {
			out = append(out, v)
		}
	}
	return out
}

func (r *Reconciler) load(ctx context.Context, v *install.Version) (*infer.Model, error) {
	if r.Load != nil {
		return r.Load(ctx, v)
	}
	f, err := v.Weights()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return infer.Load(ctx, v.Manifest.Model, f, v.ManifestDigest)
}

// ErrClassesMissing is wrapped by checkClasses's error.
var ErrClassesMissing = errors.New("the model lacks classes the GPIO outputs name")

// checkClasses refuses a version without a class that a GPIO output names:
// the output could never switch, silently.
func (r *Reconciler) checkClasses(v *install.Version) error {
	have := v.Manifest.Model.Classes
	var missing []string
	for _, out := range slices.Sorted(maps.Keys(r.Outputs)) {
		for _, c := range r.Outputs[out] {
			if !slices.Contains(have, c) {
				missing = append(missing, fmt.Sprintf("%q (gpio output %s)", c, out))
			}
		}
	}
	if missing == nil {
		return nil
	}
	return fmt.Errorf("version %s: %w: it has no class %s; its classes are %s: fix gpio.outputs in the device configuration or pin a model with these classes",
		v.ManifestDigest, ErrClassesMissing, strings.Join(missing, ", "), quoteAll(have))
}

func quoteAll(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = fmt.Sprintf("%q", v)
	}
	return strings.Join(q, ", ")
}

// selfTest classifies the self-test set the version ships with, checking
// the set's bytes against the manifest as it reads them.
func (r *Reconciler) selfTest(ctx context.Context, v *install.Version, m *infer.Model, minAccuracy float64) (selftest.Result, error) {
	f, err := v.SelfTestSet()
	if err != nil {
		return selftest.Result{}, fmt.Errorf("self-test: %w: %w", selftest.ErrBadSet, err)
	}
	defer f.Close()
	return selftest.Run(ctx, v.Manifest, bufio.NewReaderSize(f, 64<<10), m.Labels, minAccuracy)
}

func describe(v *install.Version, m *infer.Model, res selftest.Result) *devicestatus.Model {
	sm := &devicestatus.Model{
		ManifestDigest: v.ManifestDigest, Run: v.Manifest.Run, Version: v.Manifest.Version,
		Architecture: v.Manifest.Model.Architecture, Classes: v.Manifest.Model.Classes, SignedBy: v.SignedBy,
	}
	if res.Total > 0 {
		sm.SelfTest = &res
	}
	return sm
}

// Reconcile runs one pass. It returns an error when the pass should be
// retried with backoff (the remote or the store is unreachable); a stalled
// pass returns nil, since only a new commit can change its outcome.
func (r *Reconciler) Reconcile(ctx context.Context) (retErr error) {
	var st devicestatus.Status
	r.Status.Update(func(s *devicestatus.Status) {
		s.MarkReconciling(meta.ProgressingReason, "reconciliation in progress")
	})
	// Record status on every path out, as Flux's reconcilers do.
	defer func() {
		now := r.now()
		if retErr != nil {
			r.Status.Metrics.ReconcileFailed.Add(1)
		} else {
			r.Status.Metrics.ReconcileOK.Add(1)
		}
		r.Status.Update(func(s *devicestatus.Status) {
			s.Conditions = st.Conditions
			if st.LastAttemptedRevision != "" {
				s.LastAttemptedRevision = st.LastAttemptedRevision
			}
			if st.LastAppliedRevision != "" {
				s.LastAppliedRevision = st.LastAppliedRevision
			}
			if st.Active != nil {
				s.Active = st.Active
			}
			s.Pending = st.Pending
			s.Mission = st.Mission
			s.LastReconcileTime = &now
			if st.SelfTests != nil {
				s.SelfTests = st.SelfTests
			}
			// Remember self-tests only of versions still on disk.
			if installed, err := r.Installer.Installed(); err == nil {
				for h := range s.SelfTests {
					if !slices.Contains(installed, h) {
						delete(s.SelfTests, h)
					}
				}
			}
			s.ClearReconciling()
		})
	}()
	st = r.Status.Get()
	st.Active = nil
	st.SelfTests = nil
	cur, _ := r.Installer.Current()
	st.Mission = r.Mission != nil && r.Mission.Active()

	head, err := bounded(ctx, r.GitTimeout, DefaultGitTimeout, "git ls-remote", r.Git.Head)
	if err != nil {
		st.MarkNotReady(devicestatus.GitOperationFailedReason, "%v; keeping the active model", err)
		return err
	}
	if head != r.commit {
		snap, err := bounded(ctx, r.GitTimeout, DefaultGitTimeout, "git fetch", func(ctx context.Context) (*gitsync.Snapshot, error) {
			return r.Git.Fetch(ctx, r.PinPath, r.KeysDir)
		})
		switch {
		case errors.Is(err, gitsync.ErrTooLarge):
			// The commit is bad, not the network: stall until the head moves,
			// without cloning again at every backoff.
			r.commit, r.pins, r.keys, r.pinErr = head, nil, nil, err
		case err != nil:
			st.MarkNotReady(devicestatus.GitOperationFailedReason, "%v; keeping the active model", err)
			return err
		default:
			r.commit, r.pins, r.keys, r.pinErr = head, nil, nil, nil
			r.pins, r.keys, r.pinErr = r.readPins(snap)
		}
		r.log().Info("fetched pins", "revision", r.Git.Revision(head), "err", r.pinErr)
	}
	gitRev := r.Git.Revision(head)
	if r.pinErr != nil {
		st.LastAttemptedRevision = gitRev
		st.MarkStalled(devicestatus.InvalidPinsReason, "%v; %s", r.pinErr, r.keeping())
		return nil
	}
	pol := install.Policy{RequireSignature: r.RequireSignature || r.pins.RequireSignature, Keys: r.keys}
	if policyKey(pol) != r.applied {
		r.Status.Update(func(s *devicestatus.Status) { s.Trust = devicestatus.NewTrust(r.pins.RequireSignature, r.keys) })
		if err := r.enforce(ctx, pol, "under the signature policy at "+gitRev); err != nil {
			return err
		}
		cur, _ = r.Installer.Current()
	}
	want, canary := r.pins.Desired(r.DeviceID)
	attempted := devicestatus.Revision(gitRev, want.ManifestDigest)
	st.LastAttemptedRevision = attempted
	if want.Placeholder() {
		st.MarkStalled(devicestatus.NoVersionPinnedReason, "%s pins the placeholder digest: no version promoted to fleet %s yet", r.PinPath, r.Fleet)
		return nil
	}
	wantHex := pins.DigestHex(want.ManifestDigest)
	if cur == wantHex {
		st.Pending = nil
		st.LastAppliedRevision = attempted
		st.MarkReady(meta.SucceededReason, "applied revision %s", attempted)
		if err := r.Installer.Prune(r.Keep); err != nil {
			r.log().Warn("prune", "err", err)
		}
		return nil
	}
	if s, ok := r.stalled[attempted]; ok {
		st.MarkStalled(s.reason, "%s; %s", s.msg, r.keeping())
		return nil
	}
	v, res, err := r.prepare(ctx, want)
	if err != nil {
		var se *stallError
		if errors.As(err, &se) {
			if se.permanent {
				if r.stalled == nil {
					r.stalled = map[string]stall{}
				}
				r.stalled[attempted] = stall{se.reason, se.Error()}
			}
			st.MarkStalled(se.reason, "%v; %s", err, r.keeping())
			return nil
		}
		st.MarkNotReady(devicestatus.ArtifactFailedReason, "%v; %s, will retry", err, r.keeping())
		return err
	}
	st.SelfTests = r.Status.Get().SelfTests
	if st.SelfTests == nil {
		st.SelfTests = map[string]selftest.Result{}
	}
	st.SelfTests[wantHex] = res.result
	sm := describe(v, res.model, res.result)
	sm.URI, sm.Canary = want.URI, canary
	if r.Mission != nil && r.Mission.Active() {
		st.Pending = sm
		st.MarkNotReady(devicestatus.MissionActiveReason, "version %s verified (self-test %.3f); activation deferred until the mission ends", want.ManifestDigest, res.result.Accuracy)
		if err := r.Installer.Prune(r.Keep, wantHex); err != nil {
			r.log().Warn("prune", "err", err)
		}
		return nil
	}
	if err := r.Installer.Activate(wantHex); err != nil {
		st.MarkNotReady(meta.FailedReason, "activate %s: %v", want.ManifestDigest, err)
		return err
	}
	r.Slot.Swap(res.model)
	r.Status.Metrics.Activations.Add(1)
	t := metav1.NewTime(r.now())
	sm.ActivatedAt = &t
	st.Active, st.Pending = sm, nil
	st.LastAppliedRevision = attempted
	st.MarkReady(meta.SucceededReason, "applied revision %s", attempted)
	r.log().Info("activated model", "revision", attempted, "canary", canary, "selfTest", res.result.Accuracy)
	if err := r.Installer.Prune(r.Keep); err != nil {
		r.log().Warn("prune", "err", err)
	}
	return nil
}

// stallError is a failure that retrying cannot fix.
type stallError struct {
	reason    string
	permanent bool // do not retry this revision at all
	err       error
}

func (e *stallError) Error() string { return e.err.Error() }
func (e *stallError) Unwrap() error { return e.err }

func (r *Reconciler) readPins(snap *gitsync.Snapshot) (*pins.Pins, []pins.Key, error) {
	b, err := fs.ReadFile(snap.FS, r.PinPath)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: not in the repository at %s", r.PinPath, snap.Commit)
	}
	p, err := pins.Parse(r.PinPath, b)
	if err != nil {
		return nil, nil, err
	}
	if p.Fleet != r.Fleet {
		return nil, nil, fmt.Errorf("%s: fleet: %q, this device is in fleet %q", r.PinPath, p.Fleet, r.Fleet)
	}
	keys, err := pins.LoadKeys(snap.FS, r.KeysDir)
	if err != nil {
		return nil, nil, err
	}
	return p, keys, nil
}

type prepared struct {
	model  *infer.Model
	result selftest.Result
}

// prepare installs, verifies, loads and self-tests a version.
func (r *Reconciler) prepare(ctx context.Context, want pins.Version) (*install.Version, prepared, error) {
	pol := install.Policy{RequireSignature: r.RequireSignature || r.pins.RequireSignature, Keys: r.keys}
	var opened bool
	v, err := bounded(ctx, r.StoreTimeout, DefaultStoreTimeout, "store "+want.URI, func(ctx context.Context) (*install.Version, error) {
		st, err := r.OpenStore(ctx, want.URI)
		if err != nil {
			return nil, err
		}
		defer st.Close()
		opened = true
		return r.Installer.Install(ctx, st, want, pol)
	})
	if err != nil && !opened {
		err = fmt.Errorf("open %s: %w", want.URI, err)
		if errors.Is(err, store.ErrPermanent) {
			// Only a new pin can change a bad URI; access is re-checked each poll.
			return nil, prepared{}, &stallError{devicestatus.ArtifactFailedReason, errors.Is(err, store.ErrBadURI), err}
		}
		return nil, prepared{}, err
	}
	switch {
	case errors.Is(err, store.ErrPermanent):
		return nil, prepared{}, &stallError{devicestatus.ArtifactFailedReason, errors.Is(err, store.ErrBadURI), err}
	case errors.Is(err, install.ErrNotFound):
		return nil, prepared{}, &stallError{devicestatus.ArtifactNotFoundReason, false, err}
	case errors.Is(err, install.ErrDigestMismatch), errors.Is(err, install.ErrFileMismatch),
		errors.Is(err, pins.ErrNoSignature), errors.Is(err, pins.ErrBadSignature):
		return nil, prepared{}, &stallError{devicestatus.VerificationFailedReason, true, err}
	case err != nil:
		return nil, prepared{}, err
	}
	if err := r.checkClasses(v); err != nil {
		// Kept on disk: a new device configuration may take it.
		return nil, prepared{}, &stallError{devicestatus.ClassesMissingReason, true, err}
	}
	m, err := r.load(ctx, v)
	if err != nil {
		r.Installer.Remove(v.Hex)
		return nil, prepared{}, &stallError{devicestatus.LoadFailedReason, true, err}
	}
	res, err := r.selfTest(ctx, v, m, want.MinSelfTestAccuracy)
	if err != nil {
		if ctx.Err() != nil {
			return nil, prepared{}, ctx.Err()
		}
		r.Installer.Remove(v.Hex)
		reason := devicestatus.SelfTestFailedReason
		if errors.Is(err, selftest.ErrBadSet) {
			reason = devicestatus.VerificationFailedReason
		}
		return nil, prepared{}, &stallError{reason, true, fmt.Errorf("version %s: %w", want.ManifestDigest, err)}
	}
	return v, prepared{m, res}, nil
}
