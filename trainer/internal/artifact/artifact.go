// Package artifact writes a trained model version to the output store:
//
//	models/<run>/<version>/model.safetensors  the weights; version = first 16 hex of their sha256
//	models/<run>/<version>/metrics.jsonl      one manifest.Epoch per line
//	models/<run>/<version>/report.html        the model card, with the curves and confusion matrix inline
//	models/<run>/<version>/selftest.tar       the self-test set (internal/selftest)
//	models/<run>/<version>/manifest.json      written last: a version without it is incomplete
//
// Every file is created with IfNotExists, so a version is never overwritten.
package artifact

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/aerie-ml/aerie/internal/arch"
	"github.com/aerie-ml/aerie/internal/exitcode"
	"github.com/aerie-ml/aerie/internal/manifest"
	"github.com/aerie-ml/aerie/internal/selftest"
	"github.com/aerie-ml/aerie/internal/store"
	"github.com/aerie-ml/aerie/trainer/internal/report"
)

// The files of a version besides manifest.json.
const (
	WeightsFile = "model.safetensors"
	MetricsFile = "metrics.jsonl"
	ReportFile  = "report.html"
)

// Store is what writing a version needs of a store.Store.
type Store interface {
	Put(ctx context.Context, key string, r io.Reader, opts store.PutOptions) error
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	URI(key string) string
}

var _ Store = store.Store(nil)

// Model is a trained model and everything the manifest records about it.
type Model struct {
	Run string
	// Spec is the architecture the weights are of, in its canonical form
	// (arch.Marshal).
	Spec       string
	Parameters int
	// Weights is the content of model.safetensors.
	Weights []byte
	// Metrics are the run's figures; ModelBytes and Parameters are filled
	// in from Weights and Parameters.
	Metrics         manifest.Metrics
	Dataset         manifest.Dataset
	Lineage         manifest.Lineage
	Hyperparameters manifest.Hyperparameters
	// Gates are evaluated against Metrics; the results go into the
	// manifest whether they pass or not (promotion reads them).
	Gates manifest.Gates
	// Classes names the labels, the dataset's classes.
	Classes []string
	// Input is what the model takes: the dataset's shape and the
	// normalization training applied.
	Input manifest.Input
	// SelfTest is the self-test set packed from the test split.
	SelfTest *selftest.Packed
	// CreatedAt defaults to now.
	CreatedAt time.Time
}

// Version is a model version in the store.
type Version struct {
	Manifest *manifest.Manifest
	// ManifestDigest is "sha256:<hex>" of manifest.json: what a pin names.
	ManifestDigest string
	// Prefix is the version's key prefix, models/<run>/<version>/.
	Prefix string
	// URI is the version's directory URI.
	URI string
	// Existed reports that the version was complete already, written by an
	// earlier attempt with the same weights: nothing was written, and
	// Manifest is the stored one.
	Existed bool
}

// VersionOf returns the version name of weights: the first 16 hex digits of
// their sha256.
func VersionOf(weights []byte) string {
	sum := sha256.Sum256(weights)
	return hex.EncodeToString(sum[:])[:16]
}

// LineageFromEnv reads the lineage aerie run render puts into the trainer's
// environment (AERIE_GIT_COMMIT, AERIE_IMAGE_DIGEST); pass os.Getenv.
func LineageFromEnv(getenv func(string) string, worldSize int, resumedFrom string) manifest.Lineage {
	return manifest.Lineage{
		GitCommit:   getenv("AERIE_GIT_COMMIT"),
		ImageDigest: getenv("AERIE_IMAGE_DIGEST"),
		WorldSize:   worldSize,
		ResumedFrom: resumedFrom,
	}
}

// ConflictError reports a file of an incomplete version (no manifest.json)
// whose stored content differs from what this write would put there. It is
// left alone: the version cannot be completed until someone looks at it.
type ConflictError struct {
	URI string
	// Stored and Want are the sha256 of the stored and the new content.
	Stored, Want string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("%s exists with sha256 %s, want %s: an earlier, incomplete write of this version (it has no %s) left different content; "+
		"check it and delete the version's directory to write it again", e.URI, e.Stored, e.Want, manifest.FileName)
}

// Write writes m as a new version. If the version is complete already (an
// earlier attempt got as far as manifest.json), it writes nothing and
// returns the stored version with Existed set. Files that an earlier,
// interrupted attempt left with the same content are kept; a file with
// different content is a *ConflictError and the manifest is not written.
func Write(ctx context.Context, st Store, m Model) (*Version, error) {
	if len(m.Weights) == 0 {
		return nil, exitcode.Errorf(exitcode.Internal, "write model version of run %q: no weights", m.Run)
	}
	version := VersionOf(m.Weights)
	prefix := store.ModelPrefix(m.Run, version)
	v := &Version{Prefix: prefix, URI: st.URI(prefix)}

	if stored, digest, err := readManifest(ctx, st, prefix); err == nil {
		v.Manifest, v.ManifestDigest, v.Existed = stored, digest, true
		return v, nil
	} else if !errors.Is(err, store.ErrNotExist) {
		return nil, err
	}

	man, files, err := build(m, version)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		if err := create(ctx, st, prefix+f.name, f.data); err != nil {
			return nil, err
		}
		d, _ := manifest.Describe(f.name, bytes.NewReader(f.data))
		man.Files = append(man.Files, d)
	}
	mb, err := man.Marshal()
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", st.URI(prefix+manifest.FileName), err)
	}
	if _, err := manifest.Parse(mb); err != nil {
		return nil, exitcode.Wrap(exitcode.Internal, fmt.Errorf("model version %s: the manifest would not parse: %w", v.URI, err))
	}
	err = st.Put(ctx, prefix+manifest.FileName, bytes.NewReader(mb), store.PutOptions{IfNotExists: true})
	if errors.Is(err, store.ErrExists) {
		// Another writer completed the same version in between.
		stored, digest, err := readManifest(ctx, st, prefix)
		if err != nil {
			return nil, err
		}
		v.Manifest, v.ManifestDigest, v.Existed = stored, digest, true
		return v, nil
	}
	if err != nil {
		return nil, err
	}
	v.Manifest, v.ManifestDigest = man, manifest.Digest(mb)
	return v, nil
}

type file struct {
	name string
	data []byte
}

// build returns the manifest without its file list, and the files in the
// order they are written: weights first, so that an interrupted write
// leaves the most valuable part.
func build(m Model, version string) (*manifest.Manifest, []file, error) {
	if m.SelfTest == nil {
		return nil, nil, exitcode.Errorf(exitcode.Internal, "model version of run %q: no self-test set", m.Run)
	}
	spec, err := arch.Parse("spec", []byte(m.Spec))
	if err != nil {
		return nil, nil, exitcode.Wrap(exitcode.Internal, fmt.Errorf("model version of run %q: %w", m.Run, err))
	}
	classes := m.Classes
	if err := checkConfusion(m.Metrics.Confusion, len(classes)); err != nil {
		return nil, nil, exitcode.Wrap(exitcode.Internal, fmt.Errorf("model version of run %q: %w", m.Run, err))
	}
	created := m.CreatedAt
	if created.IsZero() {
		created = time.Now()
	}
	metrics := m.Metrics
	metrics.ModelBytes = int64(len(m.Weights))
	metrics.Parameters = m.Parameters
	declared := m.Gates
	man := &manifest.Manifest{
		SchemaVersion: manifest.SchemaVersion,
		Run:           m.Run,
		Version:       version,
		CreatedAt:     created.UTC(),
		Model: manifest.Model{
			Architecture: spec.Name, Spec: m.Spec, Parameters: m.Parameters, Weights: WeightsFile,
			Input: m.Input, Classes: classes,
		},
		Dataset:         m.Dataset,
		Lineage:         m.Lineage,
		Hyperparameters: m.Hyperparameters,
		Metrics:         metrics,
		// Promotion checks the gates declared here, not the run file at
		// the time of promotion.
		DeclaredGates: &declared,
		Gates:         manifest.Evaluate(metrics, classes, m.Gates),
		SelfTest:      m.SelfTest.Entry,
	}

	var jsonl bytes.Buffer
	enc := json.NewEncoder(&jsonl)
	for _, e := range metrics.Epochs {
		if err := enc.Encode(e); err != nil {
			return nil, nil, fmt.Errorf("encode %s: %w", MetricsFile, err)
		}
	}
	// The card shows the weights' digest, so it sees them among the files.
	weights, _ := manifest.Describe(WeightsFile, bytes.NewReader(m.Weights))
	set, _ := manifest.Describe(m.SelfTest.Entry.File, bytes.NewReader(m.SelfTest.Data))
	card := *man
	card.Files = []manifest.File{weights, set}
	html, err := report.HTML(&card)
	if err != nil {
		return nil, nil, exitcode.Wrap(exitcode.Internal, err)
	}
	return man, []file{
		{WeightsFile, m.Weights},
		{MetricsFile, jsonl.Bytes()},
		{ReportFile, html},
		{m.SelfTest.Entry.File, m.SelfTest.Data},
	}, nil
}

// checkConfusion: the card draws an n×n confusion matrix, one row and
// column per class.
func checkConfusion(confusion [][]float64, n int) error {
	if len(confusion) != n {
		return fmt.Errorf("confusion matrix has %d rows, want one per class (%d)", len(confusion), n)
	}
	for i, row := range confusion {
		if len(row) != n {
			return fmt.Errorf("confusion matrix row %d has %d columns, want %d", i, len(row), n)
		}
	}
	return nil
}

// create stores data under key unless it is there already with the same
// content.
func create(ctx context.Context, st Store, key string, data []byte) error {
	err := st.Put(ctx, key, bytes.NewReader(data), store.PutOptions{IfNotExists: true})
	if !errors.Is(err, store.ErrExists) {
		return err
	}
	rc, err := st.Get(ctx, key)
	if err != nil {
		return err
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		return err
	}
	stored := hex.EncodeToString(h.Sum(nil))
	want := sha256.Sum256(data)
	if stored != hex.EncodeToString(want[:]) {
		return exitcode.Wrap(exitcode.Config, &ConflictError{URI: st.URI(key), Stored: stored, Want: hex.EncodeToString(want[:])})
	}
	return nil
}

// readManifest reads and parses a version's manifest.json.
func readManifest(ctx context.Context, st Store, prefix string) (*manifest.Manifest, string, error) {
	key := prefix + manifest.FileName
	rc, err := st.Get(ctx, key)
	if err != nil {
		return nil, "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, "", err
	}
	m, err := manifest.Parse(b)
	if err != nil {
		return nil, "", exitcode.Wrap(exitcode.Data, fmt.Errorf("%s: %w", st.URI(key), err))
	}
	return m, manifest.Digest(b), nil
}
