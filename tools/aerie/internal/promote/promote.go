// Package promote turns a trained model version that passes its run's gates
// into a pin in fleets/<fleet>.yaml, ready to commit in a pull request.
package promote

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"path"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/aerie-ml/aerie/internal/manifest"
	"github.com/aerie-ml/aerie/internal/model"
	"github.com/aerie-ml/aerie/internal/pins"
	"github.com/aerie-ml/aerie/internal/repofile"
	"github.com/aerie-ml/aerie/internal/runspec"
	"github.com/aerie-ml/aerie/internal/selftest"
	"github.com/aerie-ml/aerie/internal/store"
	"github.com/aerie-ml/aerie/tools/aerie/internal/registry"
)

// SelfTestTolerance is how far below the run's minimum test accuracy the
// self-test accuracy may be. The self-test set is a few hundred test images,
// so its accuracy carries a sampling error of one to two points; a model
// that reaches its test gate clears this one unless its weights are broken.
const SelfTestTolerance = 0.05

// Options says what to promote where.
type Options struct {
	// RepoDir is the repository root (apps/jobs/runs/, fleets/).
	RepoDir string
	// Run names apps/jobs/runs/<Run>.yaml, whose output is searched for
	// versions. The gates that apply are those the version's manifest
	// records (the run's when it trained), not the file's now.
	Run string
	// Model is the store URI of the version directory to promote. When
	// empty, Version under Output is taken, or else the run's newest.
	Model string
	// Version is a version of the run (16 hex digits) under Output.
	Version string
	// Output overrides the run's spec.output.uri when looking up versions.
	Output string
	// Fleet names fleets/<Fleet>.yaml: a DNS label.
	Fleet string
	// LocalFleet says the fleet's devices are local (a demo on one
	// machine): they may pin file:// URIs and versions trained from flags,
	// without git commit, image or dataset digests.
	LocalFleet bool
	// CanaryPercent > 0 pins the version as the fleet's canary for that
	// share of devices; 0 pins it as stable.
	CanaryPercent int
	// SignKey, if set, signs the manifest (manifest.json.sig next to it).
	SignKey ed25519.PrivateKey
	// DryRun evaluates everything and computes the edited pin file, but
	// writes nothing: neither the pin file nor a signature.
	DryRun bool
	Logger *slog.Logger
}

// Result is a successful promotion.
type Result struct {
	PinFile  string // relative to RepoDir
	Pin      pins.Version
	Track    string
	Manifest *manifest.Manifest
	Previous *manifest.Manifest // nil if the fleet had no real pin before
	Gates    []manifest.GateResult
	SelfTest selftest.Result
	// PinBefore and PinAfter are the pin file's content before and after.
	PinBefore, PinAfter []byte
}

// GateError reports a version that failed one or more gates.
type GateError struct {
	Model string
	Gates []manifest.GateResult
}

func (e *GateError) Error() string {
	failed := manifest.Failed(e.Gates)
	names := make([]string, len(failed))
	for i, g := range failed {
		if g.Missing != "" {
			names[i] = fmt.Sprintf("%s (missing: %s)", g.Name, g.Missing)
			continue
		}
		names[i] = fmt.Sprintf("%s (%.4g %s %.4g, short by %.4g)", g.Name, g.Value, g.Comparison, g.Threshold, -g.Margin())
	}
	return fmt.Sprintf("%s failed %d of %d gates: %s", e.Model, len(failed), len(e.Gates), strings.Join(names, "; "))
}

// Promote evaluates the version's gates and, if they pass, writes the pin.
func Promote(ctx context.Context, opts Options) (*Result, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Both names become paths: only plain labels, so neither leaves its
	// directory.
	if len(validation.IsDNS1123Label(opts.Fleet)) > 0 {
		return nil, fmt.Errorf("fleet %q is not a DNS label (lowercase letters, digits and '-', at most 63): it names fleets/<fleet>.yaml", opts.Fleet)
	}
	if len(validation.IsDNS1123Label(opts.Run)) > 0 {
		return nil, fmt.Errorf("run %q is not a DNS label (lowercase letters, digits and '-', at most 63): it names apps/jobs/runs/<run>.yaml", opts.Run)
	}
	tree, err := repofile.Open(opts.RepoDir)
	if err != nil {
		return nil, err
	}
	defer tree.Close()
	runFile := path.Join("apps", "jobs", "runs", opts.Run+".yaml")
	data, err := tree.ReadFile(runFile, runspec.MaxBytes)
	if err != nil {
		return nil, fmt.Errorf("read run declaration: %w", err)
	}
	run, err := runspec.Parse(tree.Path(runFile), data)
	if err != nil {
		return nil, err
	}
	pinFile := pins.File(opts.Fleet)
	pinData, err := tree.ReadFile(pinFile, pins.MaxBytes)
	if err != nil {
		return nil, fmt.Errorf("read pin file: %w", err)
	}
	current, err := pins.Parse(pinFile, pinData)
	if err != nil {
		return nil, err
	}

	versionURI := opts.Model
	output := run.TeamStore(opts.Output)
	switch {
	case versionURI != "":
	case opts.Version != "":
		if versionURI, err = versionOf(ctx, output, opts.Run, opts.Version); err != nil {
			return nil, err
		}
	default:
		if versionURI, err = Newest(ctx, output, opts.Run); err != nil {
			return nil, err
		}
	}
	log.Info("evaluating model version", "model", versionURI)
	v, err := fetch(ctx, versionURI)
	if err != nil {
		return nil, err
	}
	defer v.close()
	if v.manifest.Run != opts.Run {
		return nil, fmt.Errorf("%s is a version of run %q, not %q", versionURI, v.manifest.Run, opts.Run)
	}

	if err := traced(v.manifest, versionURI, opts); err != nil {
		return nil, err
	}

	gates, declared := declaredGates(v.manifest)
	selfTestMin := math.Max(0.01, math.Round((declared.MinTestAccuracy-SelfTestTolerance)*1000)/1000)
	self, err := selfTest(ctx, v, selfTestMin)
	if err != nil {
		return nil, err
	}
	gates = append(gates, manifest.GateResult{
		Name: "selfTestAccuracy", Comparison: ">=", Threshold: selfTestMin, Value: self.Accuracy, Passed: self.Passed(),
	})
	if len(manifest.Failed(gates)) > 0 {
		return nil, &GateError{Model: versionURI, Gates: gates}
	}

	if opts.SignKey != nil && !opts.DryRun {
		if err := sign(ctx, v, opts.SignKey); err != nil {
			return nil, err
		}
	}
	track := "stable"
	if opts.CanaryPercent > 0 {
		track = "canary"
	}
	pin := pins.Version{URI: versionURI, ManifestDigest: v.digest, MinSelfTestAccuracy: selfTestMin}
	edited, err := setPin(pinFile, pinData, track, pin, opts.CanaryPercent)
	if err != nil {
		return nil, err
	}
	if !opts.DryRun {
		if err := tree.WriteFile(pinFile, edited); err != nil {
			return nil, err
		}
	}
	res := &Result{PinFile: pinFile, Pin: pin, Track: track, Manifest: v.manifest, Gates: gates, SelfTest: self, PinBefore: pinData, PinAfter: edited}
	if !current.Stable.Placeholder() {
		if res.Previous, err = fetchManifest(ctx, current.Stable.URI); err != nil {
			log.Warn("previous stable version unavailable for comparison", "model", current.Stable.URI, "err", err)
		}
	}
	if !opts.DryRun {
		log.Info("pinned", "file", pinFile, "track", track, "digest", v.digest)
	}
	return res, nil
}

// traced refuses a version that a fleet's devices could not trust or
// reach: one without complete lineage, or not in a gs:// store. A local
// fleet (opts.LocalFleet) takes any version.
func traced(m *manifest.Manifest, uri string, opts Options) error {
	if opts.LocalFleet {
		return nil
	}
	var problems []string
	var le *manifest.LineageError
	if err := m.CheckLineage(); errors.As(err, &le) {
		problems = append(problems, le.Problems...)
	}
	if loc, err := store.ParseURI(uri); err != nil || loc.Scheme != "gs" {
		problems = append(problems, fmt.Sprintf("%s is not in a gs:// store that devices can reach", uri))
	}
	if problems == nil {
		return nil
	}
	return fmt.Errorf("%s cannot be pinned to fleet %s: %s; promote a version that a rendered job trained into a gs:// store, "+
		"or pass --local-fleet if the fleet's devices are local to this machine", uri, opts.Fleet, strings.Join(problems, "; "))
}

// declaredGates evaluates the gates the version's manifest records: what
// its run declared when it trained. A manifest from before they were
// recorded, or a run that declared no test accuracy gate, fails closed.
func declaredGates(m *manifest.Manifest) ([]manifest.GateResult, manifest.Gates) {
	if m.DeclaredGates == nil {
		return []manifest.GateResult{{Name: "declaredGates",
			Missing: "manifest.json records no declaredGates: the version was trained before the trainer recorded its run's gates; train it again"}}, manifest.Gates{}
	}
	g := *m.DeclaredGates
	gates := manifest.Evaluate(m.Metrics, m.Model.Classes, g)
	if g.MinTestAccuracy <= 0 {
		gates = append(gates, manifest.GateResult{Name: "testAccuracy",
			Missing: "the run declared no spec.gates.minTestAccuracy, which promotion and the devices' self-test need"})
	}
	return gates, g
}

// Newest returns the URI of the newest complete version of run under the
// store root output: the one registry.List puts first.
func Newest(ctx context.Context, output, run string) (string, error) {
	s, err := store.Open(ctx, output)
	if err != nil {
		return "", err
	}
	defer s.Close()
	versions, err := registry.List(ctx, s, run)
	if err != nil {
		return "", err
	}
	if len(versions) == 0 {
		return "", fmt.Errorf("no model version of run %q under %s: train it first", run, s.URI(store.RunPrefix(run)))
	}
	return versions[0].URI, nil
}

func versionOf(ctx context.Context, output, run, version string) (string, error) {
	s, err := store.Open(ctx, output)
	if err != nil {
		return "", err
	}
	defer s.Close()
	prefix := store.ModelPrefix(run, version)
	if err := store.CheckKey(prefix + manifest.FileName); err != nil {
		return "", fmt.Errorf("version %q: %w", version, err)
	}
	return s.URI(prefix), nil
}

type version struct {
	store    store.Store
	raw      []byte
	digest   string
	manifest *manifest.Manifest
	// files holds the content of every file the manifest lists, verified.
	files map[string][]byte
}

func (v *version) close() { v.store.Close() }

// fetch reads a version's manifest and verifies every file it lists.
func fetch(ctx context.Context, uri string) (*version, error) {
	s, err := store.Open(ctx, uri)
	if err != nil {
		return nil, err
	}
	v := &version{store: s, files: map[string][]byte{}}
	if v.raw, err = get(ctx, s, manifest.FileName, manifest.MaxBytes); err != nil {
		s.Close()
		return nil, err
	}
	if v.manifest, err = manifest.Parse(v.raw); err != nil {
		s.Close()
		return nil, fmt.Errorf("%s: %w", s.URI(manifest.FileName), err)
	}
	v.digest = manifest.Digest(v.raw)
	for _, f := range v.manifest.Files {
		b, err := get(ctx, s, f.Name, f.Size)
		if err != nil {
			s.Close()
			return nil, err
		}
		got, _ := manifest.Describe(f.Name, bytes.NewReader(b))
		if got != f {
			s.Close()
			return nil, fmt.Errorf("%s: %w", s.URI(""), &manifest.MismatchError{File: f.Name, Want: f, Got: got})
		}
		v.files[f.Name] = b
	}
	return v, nil
}

func fetchManifest(ctx context.Context, uri string) (*manifest.Manifest, error) {
	s, err := store.Open(ctx, uri)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	b, err := get(ctx, s, manifest.FileName, manifest.MaxBytes)
	if err != nil {
		return nil, err
	}
	return manifest.Parse(b)
}

// get reads key, refusing more than limit bytes.
func get(ctx context.Context, s store.Store, key string, limit int64) ([]byte, error) {
	r, err := s.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", s.URI(key), err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: more than %d bytes", s.URI(key), limit)
	}
	return b, nil
}

// selfTest classifies the self-test set the version ships with, with its
// weights loaded by the same inference-only package the edge agent uses.
func selfTest(ctx context.Context, v *version, minAccuracy float64) (selftest.Result, error) {
	p, err := model.VersionPlan(v.manifest.Model)
	if err != nil {
		return selftest.Result{}, fmt.Errorf("model of %s: %w", v.store.URI(manifest.FileName), err)
	}
	c, err := model.Load(ctx, p, bytes.NewReader(v.files[v.manifest.Model.Weights]))
	if err != nil {
		return selftest.Result{}, fmt.Errorf("load %s: %w", v.store.URI(v.manifest.Model.Weights), err)
	}
	defer c.Close()
	set := v.files[v.manifest.SelfTest.File]
	res, err := selftest.Run(ctx, v.manifest, bytes.NewReader(set), func(ctx context.Context, images [][]byte) ([]int, error) {
		preds, err := c.Classify(ctx, images)
		if err != nil {
			return nil, err
		}
		labels := make([]int, len(preds))
		for i, p := range preds {
			labels[i] = p.Class
		}
		return labels, nil
	}, minAccuracy)
	if err != nil && !errors.Is(err, selftest.ErrBelowMinimum) {
		return selftest.Result{}, fmt.Errorf("%s: %w", v.store.URI(v.manifest.SelfTest.File), err)
	}
	return res, nil
}

func sign(ctx context.Context, v *version, key ed25519.PrivateKey) error {
	sig := pins.Sign(key, v.raw)
	err := v.store.Put(ctx, pins.SignatureFile, bytes.NewReader(sig), store.PutOptions{IfNotExists: true})
	if errors.Is(err, store.ErrExists) {
		// ed25519 signatures are deterministic: the same key gives the same bytes.
		old, gerr := get(ctx, v.store, pins.SignatureFile, int64(len(sig)))
		if gerr == nil && bytes.Equal(old, sig) {
			return nil
		}
		return fmt.Errorf("%s already holds a different signature: %w", v.store.URI(pins.SignatureFile), err)
	}
	return err
}
