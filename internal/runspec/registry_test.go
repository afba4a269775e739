package runspec_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/aerie-ml/aerie/internal/model"
	"github.com/aerie-ml/aerie/internal/runspec"
)

// TestArchitecturesMatchModel keeps runspec's registry, which jobgen uses
// without importing gomlx, in step with the trainer's.
func TestArchitecturesMatchModel(t *testing.T) {
	if diff := cmp.Diff(model.Names(), runspec.ArchitectureNames()); diff != "" {
		t.Fatalf("architecture names (-model +runspec):\n%s", diff)
	}
	for _, name := range model.Names() {
		a, err := model.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := runspec.Architectures[name].Params, int64(a.NumParams()); got != want {
			t.Errorf("runspec.Architectures[%q].Params = %d, want %d (internal/model)", name, got, want)
		}
	}
}
