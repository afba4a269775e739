package runspec_test

import (
	"testing"

	"github.com/aerie-ml/aerie/internal/arch"
	"github.com/aerie-ml/aerie/internal/runspec"
)

// TestArchitecturesMatchModel keeps runspec's registry, which jobgen uses
// without importing gomlx, in step with the architecture files the trainer
// builds (models/, as built in).
func TestArchitecturesMatchModel(t *testing.T) {
	for _, name := range runspec.ArchitectureNames() {
		spec, err := arch.Builtin(name)
		if err != nil {
			t.Fatal(err)
		}
		p, err := spec.Plan(arch.Input{H: 28, W: 28, C: 1}, 10)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := runspec.Architectures[name].Params, p.NumParams; got != want {
			t.Errorf("runspec.Architectures[%q].Params = %d, want %d (models/%s.yaml)", name, got, want, name)
		}
	}
}
