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
)

// SchemaVersion identifies this manifest format.
const SchemaVersion = "aerie.dev/model-manifest/v1"

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
}

// Model says how to load the weights.
type Model struct {
	Architecture string `json:"architecture"`
	Parameters   int    `json:"parameters"`
	// Weights names the weights file among Files.
	Weights string `json:"weights"`
	// Input is the shape of one input image: height, width, channels.
	Input   []int    `json:"input"`
	Classes []string `json:"classes"`
}

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
	Epochs          int     `json:"epochs"`
	BatchSize       int     `json:"batchSize"`
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
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("decode %s: %w", FileName, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("decode %s: trailing data after the manifest", FileName)
	}
	if m.SchemaVersion != SchemaVersion {
		return nil, fmt.Errorf("%s: schemaVersion %q, want %q", FileName, m.SchemaVersion, SchemaVersion)
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
	return nil
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
