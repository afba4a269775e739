// Package manifest defines manifest.json, the record of a trained model
// version: what it is, what it was made from, how good it is, and the
// digest of every file it consists of. The trainer writes it; promotion and
// the edge agent read it.
package manifest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/aerie-ml/aerie/internal/arch"
	"github.com/aerie-ml/aerie/internal/dataset"
)

// SchemaVersion identifies this manifest format. v2 added what a device
// needs to run any architecture: model.spec, the input's normalization and
// the self-test set.
const SchemaVersion = "aerie.dev/model-manifest/v2"

// SchemaV1 is the previous format. Parse refuses it with ErrOldSchema: a v1
// version names its architecture only (the Go table it pointed into is
// gone) and carries no self-test set (the devices' embedded Fashion-MNIST
// images are gone), so no device or promotion could check it.
const SchemaV1 = "aerie.dev/model-manifest/v1"

// ErrOldSchema is wrapped by Parse for a SchemaV1 manifest.
var ErrOldSchema = errors.New("model version written by an older trainer")

// FileName is the manifest's name inside a model version directory.
const FileName = "manifest.json"

// Manifest describes one immutable model version.
type Manifest struct {
	SchemaVersion string    `json:"schemaVersion"`
	Run           string    `json:"run"`
	Version       string    `json:"version"`
	CreatedAt     time.Time `json:"createdAt"`
	Model         Model     `json:"model"`
	// Files lists every other file of the version with its digest.
	Files           []File          `json:"files"`
	Dataset         Dataset         `json:"dataset"`
	Lineage         Lineage         `json:"lineage"`
	Hyperparameters Hyperparameters `json:"hyperparameters"`
	Metrics         Metrics         `json:"metrics"`
	// DeclaredGates are the run's spec.gates when it trained: what
	// promotion checks the version against. Versions written before they
	// were recorded have none, and cannot be promoted.
	DeclaredGates *Gates `json:"declaredGates,omitempty"`
	// Gates are DeclaredGates evaluated when the version was written.
	Gates []GateResult `json:"gates"`
	// SelfTest is the set of test images a device and promotion classify
	// before they trust the version.
	SelfTest SelfTest `json:"selfTest"`
}

// Model says how to build the model, load its weights and feed it.
type Model struct {
	// Architecture is the name of Spec (its metadata.name).
	Architecture string `json:"architecture"`
	// Spec is the architecture file the trainer built the model from, in
	// internal/arch's canonical form (arch.Marshal: every field and default
	// spelled out), which arch.Parse reads back.
	Spec       string `json:"spec"`
	Parameters int    `json:"parameters"`
	// Weights names the weights file among Files.
	Weights string `json:"weights"`
	Input   Input  `json:"input"`
	// Classes names the model's outputs, in order: the dataset's classes.
	Classes []string `json:"classes"`
}

// Input is what the model takes: images of Height×Width×Channels uint8
// pixels (grey, or R, G, B), resized as ingest resizes (shorter side to
// the target, then the centre crop), each channel c normalized to
// (p/255 - Mean[c]) / Std[c].
type Input struct {
	Height   int       `json:"height"`
	Width    int       `json:"width"`
	Channels int       `json:"channels"`
	Mean     []float64 `json:"mean"`
	Std      []float64 `json:"std"`
}

func (in Input) String() string {
	return fmt.Sprintf("%d×%d×%d, mean %v std %v", in.Height, in.Width, in.Channels, in.Mean, in.Std)
}

// Shape is the input's shape as internal/dataset describes samples.
func (in Input) Shape() dataset.Shape {
	return dataset.Shape{Height: in.Height, Width: in.Width, Channels: in.Channels}
}

// SelfTest describes the version's self-test set: PerClass test images of
// each class (fewer when the split has fewer), chosen by Seed from the
// dataset's Split, stored in File (among Files) as one internal/dataset
// shard of Input's shape, with their labels.
type SelfTest struct {
	File     string `json:"file"`
	Split    string `json:"split"`
	Seed     int64  `json:"seed"`
	PerClass int    `json:"perClass"`
	// ClassCounts[c] is the number of images of class c in the set.
	ClassCounts []int `json:"classCounts"`
}

// Samples is the number of images in the set.
func (s SelfTest) Samples() int {
	n := 0
	for _, c := range s.ClassCounts {
		n += c
	}
	return n
}

// MaxSelfTestBytes bounds the self-test file, which devices read.
const MaxSelfTestBytes = 64 << 20

// File is one file of the version.
type File struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Dataset is what the model was trained and tested on.
type Dataset struct {
	URI    string `json:"uri"`
	Digest string `json:"digest"`
	// Files maps each dataset file to its sha256.
	Files map[string]string `json:"files,omitempty"`
}

// Lineage ties the version to the code and run that made it.
type Lineage struct {
	GitCommit   string `json:"gitCommit,omitempty"`
	ImageDigest string `json:"imageDigest,omitempty"`
	WorldSize   int    `json:"worldSize"`
	// ResumedFrom is the checkpoint training resumed from, if any.
	ResumedFrom string `json:"resumedFrom,omitempty"`
}

// Hyperparameters are the training settings that produced the weights.
type Hyperparameters struct {
	Epochs    int `json:"epochs"`
	BatchSize int `json:"batchSize"`
	// GhostBatch is how many images batch norm took its statistics over
	// (0 in versions written before it was recorded).
	GhostBatch      int     `json:"ghostBatch,omitempty"`
	LearningRate    float64 `json:"learningRate"`
	Schedule        string  `json:"schedule"`
	Optimizer       string  `json:"optimizer"`
	Seed            int64   `json:"seed"`
	RotationDegrees float64 `json:"rotationDegrees"`
	CropPadding     int     `json:"cropPadding"`
	HorizontalFlip  bool    `json:"horizontalFlip,omitempty"`
	Brightness      float64 `json:"brightness,omitempty"`
	Contrast        float64 `json:"contrast,omitempty"`
	Erasing         float64 `json:"erasing,omitempty"`
	Dropout         bool    `json:"dropout"`
	// LabelSmoothing of the training loss (0: none).
	LabelSmoothing float64 `json:"labelSmoothing,omitempty"`
	// EarlyStoppingPatience in epochs (0: off).
	EarlyStoppingPatience int `json:"earlyStoppingPatience,omitempty"`
	// ValidationFraction of the train split held out.
	ValidationFraction float64 `json:"validationFraction,omitempty"`
}

// Metrics are the model's measured quality and cost. Test figures are on
// the official test set, never on training images.
type Metrics struct {
	Epochs       []Epoch `json:"epochs"`
	TestLoss     float64 `json:"testLoss"`
	TestAccuracy float64 `json:"testAccuracy"`
	// ClassAccuracy is the test accuracy of each class, in label order.
	ClassAccuracy []float64 `json:"classAccuracy"`
	// Confusion is the row-normalized confusion matrix: Confusion[true][predicted].
	Confusion       [][]float64 `json:"confusion"`
	ModelBytes      int64       `json:"modelBytes"`
	Parameters      int         `json:"parameters"`
	ImagesPerSecond float64     `json:"imagesPerSecond"`
	// CPUUtilization is CPU seconds / wall seconds / GOMAXPROCS.
	CPUUtilization float64 `json:"cpuUtilization"`
	PeakRSSBytes   int64   `json:"peakRSSBytes"`
	WallSeconds    float64 `json:"wallSeconds"`
}

// Epoch is one line of metrics.jsonl.
type Epoch struct {
	Epoch           int     `json:"epoch"`
	Step            int64   `json:"step"`
	LearningRate    float64 `json:"learningRate"`
	TrainLoss       float64 `json:"trainLoss"`
	TrainAccuracy   float64 `json:"trainAccuracy"`
	ValLoss         float64 `json:"valLoss"`
	ValAccuracy     float64 `json:"valAccuracy"`
	ImagesPerSecond float64 `json:"imagesPerSecond"`
	Seconds         float64 `json:"seconds"`
}

// MaxBytes bounds manifest.json. Real ones are a few KiB (the dataset's
// file list, one line per epoch); readers stop at MaxBytes+1.
const MaxBytes = 1 << 20

// ErrTooLarge is wrapped by Parse for a manifest over MaxBytes.
var ErrTooLarge = errors.New("manifest too large")

// Parse decodes a manifest strictly: unknown fields, trailing data, more
// than MaxBytes and a foreign schema version are errors.
func Parse(data []byte) (*Manifest, error) {
	if len(data) > MaxBytes {
		return nil, fmt.Errorf("%s: more than %d bytes: %w", FileName, MaxBytes, ErrTooLarge)
	}
	// The schema first, so that an older or newer manifest says so rather
	// than failing on its fields.
	var head struct {
		SchemaVersion string `json:"schemaVersion"`
	}
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(&head); err != nil {
		return nil, fmt.Errorf("decode %s: %w", FileName, err)
	}
	switch head.SchemaVersion {
	case SchemaVersion:
	case SchemaV1:
		return nil, fmt.Errorf("%s: schemaVersion %q: %w: it records no architecture spec and no self-test set, "+
			"so no device or promotion can check it; train the run again to write a %s version", FileName, SchemaV1, ErrOldSchema, SchemaVersion)
	default:
		return nil, fmt.Errorf("%s: schemaVersion %q, want %q", FileName, shorten(head.SchemaVersion), SchemaVersion)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("decode %s: %w", FileName, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("decode %s: trailing data after the manifest", FileName)
	}
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", FileName, err)
	}
	return &m, nil
}

func (m *Manifest) validate() error {
	if m.Run == "" || m.Version == "" {
		return errors.New("run and version are required")
	}
	seen := make(map[string]bool, len(m.Files))
	for i, f := range m.Files {
		if !fs.ValidPath(f.Name) || f.Name == "." || f.Name == FileName || strings.Contains(f.Name, "\\") {
			return fmt.Errorf("files[%d].name %q is not a plain relative path", i, f.Name)
		}
		if seen[f.Name] {
			return fmt.Errorf("files[%d].name %q is listed twice", i, f.Name)
		}
		seen[f.Name] = true
		if b, err := hex.DecodeString(f.SHA256); err != nil || len(b) != sha256.Size {
			return fmt.Errorf("files[%d].sha256 %q is not a hex sha256", i, f.SHA256)
		}
		if f.Size < 0 {
			return fmt.Errorf("files[%d].size is negative", i)
		}
	}
	if !seen[m.Model.Weights] {
		return fmt.Errorf("model.weights %q is not among files", m.Model.Weights)
	}
	if digest.SHA256.Validate(m.Dataset.Digest) != nil {
		return fmt.Errorf("dataset.digest %q is not 64 hex digits", shorten(m.Dataset.Digest))
	}
	if err := m.Model.Input.check(); err != nil {
		return fmt.Errorf("model.input: %w", err)
	}
	if err := dataset.CheckClasses(m.Model.Classes); err != nil {
		return fmt.Errorf("model.classes: %w", err)
	}
	plan, err := m.Model.Plan()
	if err != nil {
		return err
	}
	if m.Model.Architecture != plan.Name {
		return fmt.Errorf("model.architecture %q, but model.spec is %q", shorten(m.Model.Architecture), plan.Name)
	}
	if int64(m.Model.Parameters) != plan.NumParams {
		return fmt.Errorf("model.parameters %d, but model.spec has %d for this input and these classes", m.Model.Parameters, plan.NumParams)
	}
	return m.checkSelfTest()
}

func (in Input) check() error {
	sh := in.Shape()
	if sh.Height < 1 || sh.Height > dataset.MaxSide || sh.Width < 1 || sh.Width > dataset.MaxSide {
		return fmt.Errorf("%dx%d: sides must be 1 to %d", sh.Height, sh.Width, dataset.MaxSide)
	}
	if sh.Channels != 1 && sh.Channels != 3 {
		return fmt.Errorf("channels %d, want 1 or 3", sh.Channels)
	}
	if sh.Bytes() > dataset.MaxSampleBytes {
		return fmt.Errorf("%s: %d bytes an image, more than %d", sh, sh.Bytes(), dataset.MaxSampleBytes)
	}
	// Check names the fields as this struct's JSON does: mean, std[2].
	return in.Normalization().Check(sh.Channels)
}

// Normalization is the input's mean and deviation per channel.
func (in Input) Normalization() arch.Normalization {
	return arch.Normalization{Mean: in.Mean, Std: in.Std}
}

// ParseSpec parses Spec.
func (m *Model) ParseSpec() (*arch.Spec, error) {
	if len(m.Spec) == 0 {
		return nil, errors.New("model.spec is missing")
	}
	s, err := arch.Parse(FileName+" model.spec", []byte(m.Spec))
	if err != nil {
		return nil, fmt.Errorf("model.spec: %w", err)
	}
	return s, nil
}

// Plan is Spec applied to Input and Classes: the model a device builds.
func (m *Model) Plan() (*arch.Plan, error) {
	s, err := m.ParseSpec()
	if err != nil {
		return nil, err
	}
	p, err := s.Plan(arch.Input{H: m.Input.Height, W: m.Input.Width, C: m.Input.Channels}, len(m.Classes))
	if err != nil {
		return nil, fmt.Errorf("model.spec on %s images of %d classes: %w", m.Input.Shape(), len(m.Classes), err)
	}
	// The device normalizes by the plan (model.Classify): what the spec
	// declares must be what the manifest says training applied.
	if got := m.Input.Normalization(); !got.Equal(p.Normalization) {
		return nil, fmt.Errorf("model.input normalizes by %s, but model.spec by %s: the version was not written by a trainer", got, p.Normalization)
	}
	return p, nil
}

func (m *Manifest) checkSelfTest() error {
	st := m.SelfTest
	var file *File
	for i := range m.Files {
		if m.Files[i].Name == st.File {
			file = &m.Files[i]
		}
	}
	switch {
	case file == nil:
		return fmt.Errorf("selfTest.file %q is not among files", shorten(st.File))
	case st.File == m.Model.Weights:
		return fmt.Errorf("selfTest.file %q is the weights", st.File)
	case st.Split == "" || len(st.Split) > 32:
		return fmt.Errorf("selfTest.split %q: want the name of the dataset's split", shorten(st.Split))
	case st.PerClass < 1:
		return fmt.Errorf("selfTest.perClass %d, want at least 1", st.PerClass)
	case len(st.ClassCounts) != len(m.Model.Classes):
		return fmt.Errorf("selfTest.classCounts has %d entries for %d classes", len(st.ClassCounts), len(m.Model.Classes))
	}
	for c, n := range st.ClassCounts {
		if n < 0 || n > st.PerClass {
			return fmt.Errorf("selfTest.classCounts[%d] is %d, want 0 to perClass (%d)", c, n, st.PerClass)
		}
	}
	n := st.Samples()
	if n < 1 {
		return errors.New("selfTest.classCounts: the set is empty")
	}
	if want := dataset.ShardBytes(m.Model.Input.Shape(), n); file.Size != want {
		return fmt.Errorf("selfTest.file %s is %d bytes, but %d images of %s take %d", st.File, file.Size, n, m.Model.Input.Shape(), want)
	}
	if file.Size > MaxSelfTestBytes {
		return fmt.Errorf("selfTest.file %s is %d bytes, more than %d", st.File, file.Size, MaxSelfTestBytes)
	}
	return nil
}

func shorten(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// Marshal encodes m as indented JSON with a trailing newline.
func (m *Manifest) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Digest returns "sha256:<hex>" of a manifest's bytes: the identity a pin
// refers to.
func Digest(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Describe returns the File entry for content stored under name.
func Describe(name string, r io.Reader) (File, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return File{}, fmt.Errorf("hash %s: %w", name, err)
	}
	return File{Name: name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// MismatchError reports a file whose content does not match the manifest.
type MismatchError struct {
	File string
	Want File
	Got  File
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("%s: sha256 %s (%d bytes), manifest says %s (%d bytes)",
		e.File, e.Got.SHA256, e.Got.Size, e.Want.SHA256, e.Want.Size)
}

// Verify checks that every file the manifest lists is in fsys with the
// listed size and sha256.
func (m *Manifest) Verify(fsys fs.FS) error {
	for _, want := range m.Files {
		f, err := fsys.Open(want.Name)
		if err != nil {
			return fmt.Errorf("verify %s: %w", want.Name, err)
		}
		got, err := Describe(want.Name, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		if got != want {
			return &MismatchError{File: path.Clean(want.Name), Want: want, Got: got}
		}
	}
	return nil
}
