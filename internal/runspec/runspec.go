// Package runspec is the TrainingRun declaration (apiVersion
// aerie.dev/v1alpha1, kind TrainingRun): one YAML file per run under
// apps/jobs/runs/, rendered by aerie run render into a PyTorchJob and read back by the
// trainer from the ConfigMap aerie run render mounts at /etc/aerie/run/run.yaml.
//
// Parse is strict: unknown fields are errors, every field is validated, and
// each error names the file, the line and the field and says what is
// allowed. Defaults are applied explicitly, so a parsed run is complete;
// Marshal writes it back with every field spelled out, and Parse(Marshal(r))
// gives r again. apps/jobs/README.md documents every field.
package runspec

import (
	"strconv"
	"strings"
	"time"

	"github.com/aerie-ml/aerie/internal/arch"
	"github.com/aerie-ml/aerie/internal/store"
)

// APIVersion and Kind identify a run declaration.
const (
	APIVersion = "aerie.dev/v1alpha1"
	Kind       = "TrainingRun"
)

// TrainingRun is one declared training run.
type TrainingRun struct {
	APIVersion string   `yaml:"apiVersion"`
	Kind       string   `yaml:"kind"`
	Metadata   Metadata `yaml:"metadata"`
	Spec       Spec     `yaml:"spec"`
}

// Metadata names the run.
type Metadata struct {
	// Name is the run's name: the PyTorchJob's name, the label value and the
	// store prefix (models/<name>/). aerie run render requires the file to be
	// runs/<name>.yaml.
	Name string `yaml:"name"`
}

// Spec is what to train, on what, with which resources, and when it is good
// enough.
type Spec struct {
	// Team owns the run: its Kueue LocalQueue (the PyTorchJob's
	// kueue.x-k8s.io/queue-name), its share of the cluster's capacity and
	// its store prefix. apps/teams/<team>/ declares each team.
	Team       string     `yaml:"team"`
	Model      Model      `yaml:"model"`
	Dataset    Dataset    `yaml:"dataset"`
	Workers    Workers    `yaml:"workers"`
	Resources  Resources  `yaml:"resources"`
	Output     Output     `yaml:"output"`
	Checkpoint Checkpoint `yaml:"checkpoint"`
	Gates      Gates      `yaml:"gates"`
	// Image is the trainer image, pinned by digest: <repo>@sha256:<64 hex>.
	// A declaration may omit it: aerie run render then pins the run, when
	// first rendered, to the newest release (apps/jobs/images.yaml).
	Image string `yaml:"image,omitempty"`
	// Deadline bounds the job's running time (runPolicy.activeDeadlineSeconds).
	Deadline Duration `yaml:"deadline"`
	// MaxRestarts bounds restarts after retryable failures (runPolicy.backoffLimit).
	MaxRestarts int `yaml:"maxRestarts"`
}

// Model is the architecture and its training hyperparameters.
type Model struct {
	// Architecture is the network: a models/<name>.yaml file, or given
	// inline. Resolve reads a named one and keeps it inline.
	Architecture Architecture `yaml:"architecture"`
	Epochs       int          `yaml:"epochs"`
	// BatchSize is the GLOBAL batch across all workers; each of the
	// Workers.Count replicas takes BatchSize/Count images per step.
	BatchSize    int     `yaml:"batchSize"`
	LearningRate float64 `yaml:"learningRate"`
	// Optimizer is the optimizer's name; only "adam" exists today.
	Optimizer string `yaml:"optimizer"`
	// Schedule is the learning-rate schedule: constant, cosine or step.
	Schedule string `yaml:"schedule"`
	Seed     int64  `yaml:"seed"`
	Dropout  bool   `yaml:"dropout"`
	// GhostBatch is how many images batch norm computes its statistics
	// over; the global batch splits across workers in whole ghost batches,
	// so any world size trains the same model. Models without batch norm
	// ignore it.
	GhostBatch int `yaml:"ghostBatch"`
	// EarlyStoppingPatience is the number of epochs without a better
	// validation loss before training stops; 0 turns early stopping off.
	EarlyStoppingPatience int          `yaml:"earlyStoppingPatience"`
	Augmentation          Augmentation `yaml:"augmentation"`
}

// Augmentation is the random augmentation applied to training images, in
// this order: rotation and crop (one bilinear resampling), horizontal flip,
// brightness and contrast, random erasing. Every draw is a function of the
// seed, the epoch and the sample's index, so it does not depend on the world
// size. The zero value (the default) turns all of it off.
type Augmentation struct {
	// RotationDegrees rotates each image by a uniform angle in ±RotationDegrees.
	RotationDegrees float64 `yaml:"rotationDegrees"`
	// CropPadding pads each image by this many pixels (black) and crops a
	// random window of the image's size back out of it; at most half the
	// image's shorter side.
	CropPadding int `yaml:"cropPadding"`
	// HorizontalFlip mirrors each image left to right with probability 1/2.
	HorizontalFlip bool `yaml:"horizontalFlip"`
	// Brightness adds a uniform shift in ±Brightness of the full range to
	// every pixel.
	Brightness float64 `yaml:"brightness"`
	// Contrast scales each image's deviation from its mean by a uniform
	// factor in [1-Contrast, 1+Contrast].
	Contrast float64 `yaml:"contrast"`
	// Erasing is the probability of blanking a random rectangle (2–33% of
	// the area, aspect ratio 0.3–3.3) to the middle of the range.
	Erasing float64 `yaml:"erasing"`
}

// Dataset is where the training data is and what it must hash to.
type Dataset struct {
	URI string `yaml:"uri"`
	// SHA256 is the dataset digest (internal/dataset: the sha256 of dataset.json) the trainer verifies.
	SHA256 string `yaml:"sha256"`
	// ValidationFraction of the training split is held out for validation.
	ValidationFraction float64 `yaml:"validationFraction"`
}

// Workers is the number of replicas.
type Workers struct {
	// Count is WORLD_SIZE: one Master plus Count-1 Workers.
	Count int `yaml:"count"`
	// Min and Max bound an elastic run; both equal Count for a fixed one.
	Min int `yaml:"min"`
	Max int `yaml:"max"`
}

// Elastic reports whether the run may change its number of workers.
func (w Workers) Elastic() bool { return w.Min != w.Max }

// Resources are one replica's requests, which are also its limits.
type Resources struct {
	// CPU is in whole cores; it is also the replica's GOMAXPROCS.
	CPU int `yaml:"cpu"`
	// Memory in bytes; declared as a Kubernetes quantity or "auto". Zero
	// is auto until Resolve sizes it from the architecture's plan.
	Memory Bytes `yaml:"memory"`
}

// Output is where the trainer writes checkpoints and models.
type Output struct {
	// URI is the store root: gs://bucket[/prefix] or file:///path. The run
	// writes under its team's part of it (TeamStore).
	URI string `yaml:"uri"`
}

// TeamStore is the store root the run's checkpoints and models live under:
// its team's part of root (store.TeamRoot), where root is the
// spec.output.uri when empty.
func (r *TrainingRun) TeamStore(root string) string {
	if root == "" {
		root = r.Spec.Output.URI
	}
	return store.TeamRoot(root, r.Spec.Team)
}

// TeamNamespacePrefix starts the name of every team's namespace.
const TeamNamespacePrefix = "team-"

// TeamNamespace names team's own namespace, for its runs, LocalQueue,
// service account, quota and policies (issue #14; today the runs still share
// the namespace training). validTeam accepts only teams whose namespace is a
// DNS-1123 label.
func TeamNamespace(team string) string { return TeamNamespacePrefix + team }

// Checkpoint says how often the trainer checkpoints.
type Checkpoint struct {
	// EverySteps checkpoints every this many steps as well as after every
	// epoch; 0 checkpoints after every epoch only.
	EverySteps int `yaml:"everySteps"`
}

// Gates are the thresholds a model must pass to be promoted.
type Gates struct {
	MinTestAccuracy  float64 `yaml:"minTestAccuracy"`
	MinClassAccuracy float64 `yaml:"minClassAccuracy"`
	MaxModelBytes    int64   `yaml:"maxModelBytes"`
}

// Architecture is spec.model.architecture: the name of an architecture
// file (models/<name>.yaml at the repository root), or the architecture
// itself.
type Architecture struct {
	// Name is the file's name, or the inline architecture's metadata.name.
	Name string
	// Spec is the architecture given inline, or the named file once
	// Resolve has read it; nil for a name not yet read.
	Spec *arch.Spec
}

// MarshalYAML writes the architecture inline, in arch's canonical form,
// when it is known, else its name.
func (a Architecture) MarshalYAML() (any, error) {
	if a.Spec != nil {
		return a.Spec.Node(), nil
	}
	return a.Name, nil
}

// Duration is a time.Duration written as "6h" or "90m".
type Duration time.Duration

// MarshalYAML writes the duration without zero trailing units.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// Bytes is a memory size written as a Kubernetes quantity ("1Gi").
type Bytes int64

// MarshalYAML writes the size as a binary-suffixed quantity, and zero as
// auto.
func (b Bytes) MarshalYAML() (any, error) {
	if b == 0 {
		return Auto, nil
	}
	return b.String(), nil
}

func (b Bytes) String() string {
	n := int64(b)
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"Gi", 1 << 30}, {"Mi", 1 << 20}, {"Ki", 1 << 10}} {
		if n != 0 && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}
