package runspec

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	"gopkg.in/yaml.v3"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/aerie-ml/aerie/internal/arch"
	"github.com/aerie-ml/aerie/internal/store"
	"github.com/aerie-ml/aerie/internal/strictyaml"
)

// MaxBytes is the largest declaration Parse reads: a real one is about
// 1 KiB, and the cap bounds what parsing a hostile file costs. Readers
// (aerie run) refuse a larger file before reading it.
const MaxBytes = 256 << 10

// MaxErrors is the most problems reported for one declaration; the rest
// are counted in a last line.
const MaxErrors = strictyaml.MaxErrors

// Limits of the fields; apps/jobs/README.md lists them with the defaults.
const (
	MaxNameLength   = 40
	MaxTeamLength   = 30
	MaxWorkers      = 64
	MaxEpochs       = 1000
	MaxBatchSize    = 8192
	MaxCPU          = 16
	MaxPatience     = 100
	MaxRotation     = 180
	MaxCropPadding  = 64
	MaxValidation   = 0.5
	MaxEverySteps   = 1_000_000
	MaxModelBytes   = 1 << 30
	MaxRestartLimit = 100
	MinDeadline     = Duration(time.Minute)
	MaxDeadline     = Duration(7 * 24 * time.Hour)
)

// Defaults of the optional fields.
const (
	DefaultEpochs             = 10
	DefaultBatchPerWorker     = 64 // batchSize defaults to this × workers.count
	DefaultLearningRate       = 1e-3
	DefaultOptimizer          = "adam"
	DefaultSchedule           = "constant"
	DefaultSeed               = 1
	DefaultDropout            = true
	DefaultGhostBatch         = 32
	DefaultValidationFraction = 0.1
	DefaultMinTestAccuracy    = 0.80
	DefaultMinClassAccuracy   = 0.50
	DefaultMaxModelBytes      = 16 << 20
	DefaultDeadline           = Duration(6 * time.Hour)
	DefaultMaxRestarts        = 3
	// DefaultTeam owns the runs that name no team (apps/teams/platform).
	DefaultTeam = "platform"
	Auto        = "auto"
)

var (
	// Optimizers and Schedules are the allowed values, in the order error
	// messages list them.
	Optimizers = []string{"adam"}
	Schedules  = []string{"constant", "cosine", "step"}
)

// Error is one problem in a declaration, at a line and field.
type Error = strictyaml.Error

// Errors is every problem found in one declaration, in line order.
type Errors = strictyaml.Errors

// format is what strictyaml checks of a declaration before it is decoded.
var format = strictyaml.Format{Kind: Kind, Noun: "a declaration", MaxBytes: MaxBytes}

// Parse decodes, defaults and validates the declaration data read from
// filename (used in errors only). Problems are reported as Errors, in line
// order, at most MaxErrors of them; values are quoted shortened to
// strictyaml.MaxQuote bytes. A named architecture stays a name and memory:
// auto stays auto (zero): Resolve reads what they need.
func Parse(filename string, data []byte) (*TrainingRun, error) {
	r, _, err := parse(filename, data)
	return r, err
}

// parse is Parse, returning the decoder too: its lines locate the fields
// Resolve reports on.
func parse(filename string, data []byte) (*TrainingRun, *decoder, error) {
	root, errs := format.Document(filename, data)
	if root == nil {
		return nil, nil, errs
	}
	d := &decoder{file: filename, lines: map[string]int{"": 1}, errs: errs}
	var r *TrainingRun
	if len(d.errs) == 0 {
		r = d.run(root)
	}
	if err := d.err(); err != nil {
		return nil, nil, err
	}
	return r, d, nil
}

// err returns the problems recorded, sorted, with the count of those past
// MaxErrors; nil if there are none.
func (d *decoder) err() error {
	if len(d.errs) == 0 {
		return nil
	}
	slices.SortStableFunc(d.errs, func(a, b *Error) int { return cmp.Or(a.Line-b.Line, a.Column-b.Column) })
	if d.dropped > 0 {
		d.errs = append(d.errs, &Error{File: d.file, Msg: fmt.Sprintf("and %d more problems not shown", d.dropped)})
	}
	return d.errs
}

// Marshal writes r with every field, in the canonical layout Parse reads.
func Marshal(r *TrainingRun) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(r); err != nil {
		return nil, fmt.Errorf("encode run %s: %w", r.Metadata.Name, err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode run %s: %w", r.Metadata.Name, err)
	}
	return buf.Bytes(), nil
}

type decoder struct {
	file    string
	errs    Errors
	dropped int // problems past MaxErrors
	// lines maps a field path to the line of its key, for errors that
	// concern a field after decoding, and records which fields were set.
	lines map[string]int
}

// errorAt records a problem. Messages quote values with got or
// strictyaml.Quote, never whole.
func (d *decoder) errorAt(line int, path, format string, args ...any) {
	if len(d.errs) >= MaxErrors {
		d.dropped++
		return
	}
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Field: path, Msg: fmt.Sprintf(format, args...)})
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	d.errorAt(n.Line, path, format, args...)
}

func (d *decoder) set(path string) bool { _, ok := d.lines[path]; return ok }

// line is the line of path's key, or of its nearest set parent.
func (d *decoder) line(path string) int {
	for {
		if l, ok := d.lines[path]; ok {
			return l
		}
		i := strings.LastIndexByte(path, '.')
		if i < 0 {
			return 1
		}
		path = path[:i]
	}
}

// field is one key of a mapping and how to decode its value.
type field struct {
	name   string
	decode func(n *yaml.Node, path string)
}

// mapping decodes the mapping n at path: every key must be one of fields.
func (d *decoder) mapping(n *yaml.Node, path string, fields ...field) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "must be a mapping with fields %s, got %s", names(fields), strictyaml.Describe(n))
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag != "!!str" {
			d.errorf(k, path, "keys must be field names (%s), got %s", names(fields), strictyaml.Describe(k))
			continue
		}
		p := strictyaml.Join(path, k.Value)
		j := slices.IndexFunc(fields, func(f field) bool { return f.name == k.Value })
		if j < 0 {
			if strictyaml.IsFieldName(k.Value) {
				d.errorf(k, p, "unknown field; allowed fields: %s", names(fields))
			} else {
				d.errorf(k, path, "unknown field %s; allowed fields: %s", strictyaml.Describe(k), names(fields))
			}
			continue
		}
		if d.set(p) {
			d.errorf(k, p, "duplicate field, first set on line %d", d.lines[p])
			continue
		}
		d.lines[p] = k.Line
		fields[j].decode(v, p)
	}
}

func names(fields []field) string {
	ns := make([]string, len(fields))
	for i, f := range fields {
		ns[i] = f.name
	}
	return strings.Join(ns, ", ")
}

// integer decodes an integer in [lo, hi].
func (d *decoder) integer(n *yaml.Node, path string, r IntRange, dst *int64) {
	var v int64
	if !strictyaml.IsScalar(n, "!!int") || n.Decode(&v) != nil || !r.Contains(v) {
		d.errorf(n, path, "must be %s, got %s", r, strictyaml.Describe(n))
		return
	}
	*dst = v
}

func (d *decoder) intField(r IntRange, dst *int) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		v := int64(*dst)
		d.integer(n, path, r, &v)
		*dst = int(v)
	}
}

func (d *decoder) int64Field(r IntRange, dst *int64) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) { d.integer(n, path, r, dst) }
}

// number decodes a finite number in r.
func (d *decoder) number(r NumberRange, dst *float64) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		var v float64
		if !strictyaml.IsScalar(n, "!!int", "!!float") || n.Decode(&v) != nil || !r.Contains(v) {
			d.errorf(n, path, "must be %s, got %s", r, strictyaml.Describe(n))
			return
		}
		*dst = v
	}
}

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func (d *decoder) boolean(dst *bool) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		if !strictyaml.IsScalar(n, "!!bool") || n.Decode(dst) != nil {
			d.errorf(n, path, "must be true or false, got %s", strictyaml.Describe(n))
		}
	}
}

// str decodes a string and checks it with valid, which returns what is
// allowed when the value is not.
func (d *decoder) str(dst *string, valid func(string) string) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		if !strictyaml.IsScalar(n, "!!str") {
			d.errorf(n, path, "%s, got %s", valid(""), strictyaml.Describe(n))
			return
		}
		if want := valid(n.Value); want != "" {
			d.errorf(n, path, "%s, got %s", want, strictyaml.Describe(n))
			return
		}
		*dst = n.Value
	}
}

func oneOf(allowed ...string) func(string) string {
	return func(s string) string {
		if s != "" && slices.Contains(allowed, s) {
			return ""
		}
		if len(allowed) == 1 {
			return fmt.Sprintf("must be %q", allowed[0])
		}
		return "must be one of " + strings.Join(allowed, ", ")
	}
}

func validName(s string) string {
	if len(s) <= MaxNameLength && len(validation.IsDNS1035Label(s)) == 0 {
		return ""
	}
	return fmt.Sprintf("must be 1 to %d lowercase letters, digits and '-', starting with a letter and not ending with '-'", MaxNameLength)
}

// validTeam accepts a name that can prefix the team's namespace
// (TeamNamespace), queue and service account names.
func validTeam(s string) string {
	if len(s) <= MaxTeamLength && len(validation.IsDNS1035Label(s)) == 0 && len(validation.IsDNS1123Label(TeamNamespace(s))) == 0 {
		return ""
	}
	return fmt.Sprintf("must be a team of apps/teams/: 1 to %d lowercase letters, digits and '-', starting with a letter and not ending with '-'", MaxTeamLength)
}

func validSHA256(s string) string {
	if digest.SHA256.Validate(s) == nil {
		return ""
	}
	return "must be 64 lowercase hex digits (the dataset digest that aerie dataset ingest prints)"
}

// validURI accepts what the store opens (store.ParseURI):
// gs://<bucket>[/<path>] and file:///<absolute path>.
func validURI(s string) string {
	const want = "must be gs://<bucket>[/<path>] or file:///<absolute path>"
	_, err := store.ParseURI(s)
	if ue, ok := errors.AsType[*store.URIError](err); ok && s != "" {
		return want + " (" + ue.Reason + ")"
	} else if err != nil {
		return want
	}
	return ""
}

// ValidImage accepts a reference to a registry's repository pinned by a
// sha256 digest, with or without a tag (distribution/reference's grammar):
// it returns "" or what is wrong.
func ValidImage(s string) string {
	if ref, err := reference.Parse(s); err == nil {
		named, isNamed := ref.(reference.Named)
		digested, isDigested := ref.(reference.Digested)
		if isNamed && isDigested && reference.Domain(named) != "" && reference.Path(named) != "" &&
			digested.Digest().Algorithm() == "sha256" {
			return ""
		}
	}
	if !strings.Contains(s, "@") {
		return "must be pinned by digest: <registry>/<repository>@sha256:<64 hex digits>"
	}
	return "must be <registry>/<repository>[:<tag>]@sha256:<64 lowercase hex digits>"
}

func (d *decoder) duration(lo, hi Duration, dst *Duration) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		var v time.Duration
		var err error
		if strictyaml.IsScalar(n, "!!str") {
			v, err = time.ParseDuration(n.Value)
		}
		if !strictyaml.IsScalar(n, "!!str") || err != nil || Duration(v) < lo || Duration(v) > hi {
			d.errorf(n, path, "must be a duration such as 6h or 90m between %s and %s, got %s", lo, hi, strictyaml.Describe(n))
			return
		}
		*dst = Duration(v)
	}
}

// quantity fields keep their raw node until the other fields are known.
type quantity struct {
	node *yaml.Node
	path string
}

func (q *quantity) field(n *yaml.Node, path string) { q.node, q.path = n, path }

func (q *quantity) auto() bool {
	return q.node == nil || strictyaml.IsScalar(q.node, "!!str") && q.node.Value == Auto
}

// Default returns the run every declaration starts from; Parse overwrites
// the fields a declaration sets and then derives the defaults that depend
// on other fields (batchSize, workers.min and max, resources).
func Default() TrainingRun {
	return TrainingRun{
		Spec: Spec{
			Team: DefaultTeam,
			Model: Model{
				Epochs:       DefaultEpochs,
				LearningRate: DefaultLearningRate,
				Optimizer:    DefaultOptimizer,
				Schedule:     DefaultSchedule,
				Seed:         DefaultSeed,
				Dropout:      DefaultDropout,
				GhostBatch:   DefaultGhostBatch,
			},
			Dataset: Dataset{ValidationFraction: DefaultValidationFraction},
			Workers: Workers{Count: 1},
			Gates: Gates{
				MinTestAccuracy:  DefaultMinTestAccuracy,
				MinClassAccuracy: DefaultMinClassAccuracy,
				MaxModelBytes:    DefaultMaxModelBytes,
			},
			Deadline:    DefaultDeadline,
			MaxRestarts: DefaultMaxRestarts,
		},
	}
}

func (d *decoder) run(root *yaml.Node) *TrainingRun {
	r := Default()
	s := &r.Spec
	var cpu, memory quantity
	d.mapping(root, "",
		field{"apiVersion", d.str(&r.APIVersion, oneOf(APIVersion))},
		field{"kind", d.str(&r.Kind, oneOf(Kind))},
		field{"metadata", func(n *yaml.Node, p string) {
			d.mapping(n, p, field{"name", d.str(&r.Metadata.Name, validName)})
		}},
		field{"spec", func(n *yaml.Node, p string) {
			d.mapping(n, p,
				field{"team", d.str(&s.Team, validTeam)},
				field{"model", func(n *yaml.Node, p string) {
					m := &s.Model
					d.mapping(n, p,
						field{"architecture", d.architecture(&m.Architecture)},
						field{"epochs", d.intField(Ranges.Epochs, &m.Epochs)},
						field{"batchSize", d.intField(Ranges.BatchSize, &m.BatchSize)},
						field{"learningRate", d.number(Ranges.LearningRate, &m.LearningRate)},
						field{"optimizer", d.str(&m.Optimizer, oneOf(Optimizers...))},
						field{"schedule", d.str(&m.Schedule, oneOf(Schedules...))},
						field{"seed", d.int64Field(IntRange{0, math.MaxInt64}, &m.Seed)},
						field{"dropout", d.boolean(&m.Dropout)},
						field{"ghostBatch", d.intField(Ranges.GhostBatch, &m.GhostBatch)},
						field{"earlyStoppingPatience", d.intField(Ranges.Patience, &m.EarlyStoppingPatience)},
						field{"augmentation", func(n *yaml.Node, p string) {
							a := &m.Augmentation
							d.mapping(n, p,
								field{"rotationDegrees", d.number(Ranges.Rotation, &a.RotationDegrees)},
								field{"cropPadding", d.intField(Ranges.CropPadding, &a.CropPadding)},
								field{"horizontalFlip", d.boolean(&a.HorizontalFlip)},
								field{"brightness", d.number(Ranges.Jitter, &a.Brightness)},
								field{"contrast", d.number(Ranges.Jitter, &a.Contrast)},
								field{"erasing", d.number(Ranges.Jitter, &a.Erasing)},
							)
						}},
					)
				}},
				field{"dataset", func(n *yaml.Node, p string) {
					d.mapping(n, p,
						field{"uri", d.str(&s.Dataset.URI, validURI)},
						field{"sha256", d.str(&s.Dataset.SHA256, validSHA256)},
						field{"validationFraction", d.number(Ranges.Validation, &s.Dataset.ValidationFraction)},
					)
				}},
				field{"workers", func(n *yaml.Node, p string) {
					d.mapping(n, p,
						field{"count", d.intField(IntRange{1, MaxWorkers}, &s.Workers.Count)},
						field{"min", d.intField(IntRange{1, MaxWorkers}, &s.Workers.Min)},
						field{"max", d.intField(IntRange{1, MaxWorkers}, &s.Workers.Max)},
					)
				}},
				field{"resources", func(n *yaml.Node, p string) {
					d.mapping(n, p, field{"cpu", cpu.field}, field{"memory", memory.field})
				}},
				field{"output", func(n *yaml.Node, p string) {
					d.mapping(n, p, field{"uri", d.str(&s.Output.URI, validURI)})
				}},
				field{"checkpoint", func(n *yaml.Node, p string) {
					d.mapping(n, p, field{"everySteps", d.intField(Ranges.EverySteps, &s.Checkpoint.EverySteps)})
				}},
				field{"gates", func(n *yaml.Node, p string) {
					g := &s.Gates
					d.mapping(n, p,
						field{"minTestAccuracy", d.number(NumberRange{Lo: 0, Hi: 1}, &g.MinTestAccuracy)},
						field{"minClassAccuracy", d.number(NumberRange{Lo: 0, Hi: 1}, &g.MinClassAccuracy)},
						field{"maxModelBytes", d.int64Field(IntRange{1, MaxModelBytes}, &g.MaxModelBytes)},
					)
				}},
				field{"image", d.str(&s.Image, ValidImage)},
				field{"deadline", d.duration(MinDeadline, MaxDeadline, &s.Deadline)},
				field{"maxRestarts", d.intField(IntRange{0, MaxRestartLimit}, &s.MaxRestarts)},
			)
		}},
	)
	d.required(map[string]string{
		"apiVersion":              fmt.Sprintf("%q", APIVersion),
		"kind":                    fmt.Sprintf("%q", Kind),
		"metadata.name":           "the run's name",
		"spec.model.architecture": "the name of a file " + arch.Dir + "/<name>.yaml, or the architecture inline",
		"spec.dataset.uri":        "gs://<bucket>/<path> or file:///<path>",
		"spec.dataset.sha256":     "the dataset digest",
		"spec.output.uri":         "the store root, gs://<bucket>[/<prefix>] or file:///<path>",
		"spec.dataset":            "",
		"spec.output":             "",
		"spec.model":              "",
		"spec":                    "",
		"metadata":                "",
	})
	d.derive(s, &cpu, &memory)
	return &r
}

// required reports each missing field once: a missing parent hides its
// children.
func (d *decoder) required(fields map[string]string) {
	paths := make([]string, 0, len(fields))
	for p := range fields {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		if d.set(p) {
			continue
		}
		parent := ""
		if i := strings.LastIndexByte(p, '.'); i >= 0 {
			parent = p[:i]
		}
		if parent != "" && !d.set(parent) {
			continue // the parent's own error covers it
		}
		if fields[p] == "" {
			d.errorAt(d.line(p), p, "is required")
		} else {
			d.errorAt(d.line(p), p, "is required: %s", fields[p])
		}
	}
}

// derive applies the defaults that depend on other fields and checks the
// constraints between fields.
func (d *decoder) derive(s *Spec, cpu, memory *quantity) {
	w := &s.Workers
	if !d.set("spec.workers.min") {
		w.Min = w.Count
	} else if w.Min > w.Count {
		d.errorAt(d.line("spec.workers.min"), "spec.workers.min", "must be between 1 and spec.workers.count (%d), got %d", w.Count, w.Min)
	}
	if !d.set("spec.workers.max") {
		w.Max = w.Count
	} else if w.Max < w.Count {
		d.errorAt(d.line("spec.workers.max"), "spec.workers.max", "must be between spec.workers.count (%d) and %d, got %d", w.Count, MaxWorkers, w.Max)
	}
	m := &s.Model
	if !d.set("spec.model.batchSize") {
		m.BatchSize = DefaultBatchPerWorker * w.Count
	} else if m.BatchSize%w.Count != 0 {
		d.errorAt(d.line("spec.model.batchSize"), "spec.model.batchSize", "must be a multiple of spec.workers.count (%d): it is the global batch, split evenly, got %d", w.Count, m.BatchSize)
	}
	if m.EarlyStoppingPatience > 0 && s.Dataset.ValidationFraction == 0 {
		d.errorAt(d.line("spec.model.earlyStoppingPatience"), "spec.model.earlyStoppingPatience",
			"must be 0 when spec.dataset.validationFraction is 0 (there is no validation set to watch), got %d", m.EarlyStoppingPatience)
	}

	const cpuWant = "must be auto or whole cores between 1 and %d, got %s"
	switch {
	case cpu.auto():
		s.Resources.CPU = s.autoCPU()
	case strictyaml.IsScalar(cpu.node, "!!int", "!!str"):
		v, err := strconv.Atoi(cpu.node.Value)
		if err != nil || v < 1 || v > MaxCPU {
			d.errorf(cpu.node, cpu.path, cpuWant, MaxCPU, strictyaml.Describe(cpu.node))
			return
		}
		s.Resources.CPU = v
	default:
		d.errorf(cpu.node, cpu.path, cpuWant, MaxCPU, strictyaml.Describe(cpu.node))
		return
	}
	if memory.auto() {
		return // Resolve sizes it
	}
	// Resolve checks the quantity against the architecture's working set.
	lo, hi := int64(s.Resources.CPU)*MinBytesPerCPU, int64(s.Resources.CPU)*MaxBytesPerCPU
	n := memory.node
	q, err := resource.ParseQuantity(n.Value)
	if !strictyaml.IsScalar(n, "!!str", "!!int") || err != nil || q.Sign() <= 0 || q.Value() < lo || q.Value() > hi || q.MilliValue()%1000 != 0 {
		d.errorf(n, memory.path, "must be auto or a quantity between %s and %s for %d cpu and this model and batch (see apps/jobs/README.md), got %s",
			Bytes(lo), Bytes(hi), s.Resources.CPU, strictyaml.Describe(n))
		return
	}
	s.Resources.Memory = Bytes(q.Value())
}

// architecture decodes spec.model.architecture: a name, or the
// architecture inline, which internal/arch parses.
func (d *decoder) architecture(dst *Architecture) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		if n.Kind == yaml.MappingNode {
			spec, err := arch.ParseNode(d.file, n, path)
			if errs, ok := err.(arch.Errors); ok {
				for _, e := range errs {
					if len(d.errs) >= MaxErrors {
						d.dropped++
						continue
					}
					d.errs = append(d.errs, e)
				}
				return
			} else if err != nil {
				d.errorf(n, path, "%v", err)
				return
			}
			*dst = Architecture{Name: spec.Name, Spec: spec}
			return
		}
		d.str(&dst.Name, func(v string) string {
			if validName(v) == "" {
				return ""
			}
			return fmt.Sprintf("must be the name of a file %s/<name>.yaml (a DNS label of at most %d characters) or the architecture inline, a mapping", arch.Dir, MaxNameLength)
		})(n, path)
	}
}
