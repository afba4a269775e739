package runspec

import (
	"context"
	"fmt"

	"github.com/aerie-ml/aerie/internal/arch"
	"github.com/aerie-ml/aerie/internal/dataset"
)

// Sources are where Resolve reads what a declaration names but does not
// hold. aerie run render reads both from the repository (and the dataset from the
// store when the repository lacks its manifest).
type Sources struct {
	// Architecture reads the architecture file called name
	// (models/<name>.yaml), its metadata.name checked.
	Architecture func(name string) (*arch.Spec, error)
	// Dataset reads the manifest of the dataset d declares and checks it
	// against d.SHA256.
	Dataset func(ctx context.Context, d Dataset) (*dataset.Manifest, error)
}

// Resolved is a declaration completed by Resolve.
type Resolved struct {
	// Run has its architecture inline (Architecture.Spec set) and its
	// memory sized: what is rendered and what the trainer reads.
	Run *TrainingRun
	// Plan is the architecture applied to the dataset's image shape and
	// classes.
	Plan *arch.Plan
}

// Resolve parses the declaration data read from filename, then reads its
// named architecture and its dataset's manifest through src, plans the
// architecture on the dataset's shape and class count, sizes memory: auto
// from the plan (WorkingSet) and checks a declared memory against it.
// A layer that does not fit is an error at its line: in the architecture
// file, or in filename for one given inline.
func Resolve(ctx context.Context, filename string, data []byte, src Sources) (*Resolved, error) {
	r, d, err := parse(filename, data)
	if err != nil {
		return nil, err
	}
	m := &r.Spec.Model
	if m.Architecture.Spec == nil {
		spec, err := src.Architecture(m.Architecture.Name)
		if err != nil {
			if _, ok := err.(arch.Errors); ok {
				return nil, err // they name the file and its lines
			}
			return nil, &Error{File: filename, Line: d.line("spec.model.architecture"), Field: "spec.model.architecture", Msg: err.Error()}
		}
		m.Architecture.Spec = spec
	}
	man, err := src.Dataset(ctx, r.Spec.Dataset)
	if err != nil {
		return nil, fmt.Errorf("%s:%d: spec.dataset: %w", filename, d.line("spec.dataset"), err)
	}
	shape := man.Shape
	plan, err := m.Architecture.Spec.Plan(arch.Input{H: shape.Height, W: shape.Width, C: shape.Channels}, len(man.Classes))
	if e, ok := err.(*arch.Error); ok {
		e.Msg += fmt.Sprintf(" (on the dataset's %s images and %d classes)", shape, len(man.Classes))
		return nil, e
	} else if err != nil {
		return nil, fmt.Errorf("%s: spec.model.architecture: %w", filename, err)
	}
	s := &r.Spec
	if hasBatchNorm(plan) {
		d.checkGhostBatch(s)
	}
	cpu := int64(s.Resources.CPU)
	hi := cpu * MaxBytesPerCPU
	if s.Resources.Memory == 0 {
		s.Resources.Memory = s.autoMemory(s.Resources.CPU, plan)
		if int64(s.Resources.Memory) > hi {
			d.errorAt(d.line("spec.resources"), "spec.resources.memory", "auto needs %s for this model and per-worker batch, above %s for %d cpu (GKE Autopilot's 6.5Gi per core): lower spec.model.batchSize, or raise spec.workers.count or spec.resources.cpu",
				s.Resources.Memory, Bytes(hi), s.Resources.CPU)
		}
	} else if lo := max(s.WorkingSet(plan), cpu*MinBytesPerCPU); int64(s.Resources.Memory) < lo {
		lo = (lo + 1<<20 - 1) >> 20 << 20
		d.errorAt(d.line("spec.resources.memory"), "spec.resources.memory", "must be auto or a quantity between %s and %s for %d cpu and this model and batch (see apps/jobs/README.md), got %q",
			Bytes(lo), Bytes(hi), s.Resources.CPU, s.Resources.Memory.String())
	}
	if err := d.err(); err != nil {
		return nil, err
	}
	return &Resolved{Run: r, Plan: plan}, nil
}

func hasBatchNorm(p *arch.Plan) bool {
	for _, r := range p.Rows {
		if r.Layer.Op == arch.BatchNorm {
			return true
		}
	}
	return false
}

// checkGhostBatch checks what the trainer requires of a model with batch
// norm: the global batch is whole ghost batches, at least one for each of
// the most workers the run may have.
func (d *decoder) checkGhostBatch(s *Spec) {
	m, field := &s.Model, "spec.model.ghostBatch"
	line := d.line(field) // spec.model's when the default applies
	switch {
	case m.BatchSize%m.GhostBatch != 0:
		d.errorAt(line, field, "must divide spec.model.batchSize (%d): batch norm computes its statistics over whole ghost batches, got %d", m.BatchSize, m.GhostBatch)
	case m.BatchSize/m.GhostBatch < s.Workers.Max:
		d.errorAt(line, field, "must leave spec.model.batchSize (%d) at least one ghost batch per worker (up to spec.workers.max = %d), got %d", m.BatchSize, s.Workers.Max, m.GhostBatch)
	}
}
