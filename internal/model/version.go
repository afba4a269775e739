package model

import (
	"fmt"

	"github.com/aerie-ml/aerie/internal/arch"
	"github.com/aerie-ml/aerie/internal/manifest"
)

// VersionPlan plans the architecture a model version's manifest records,
// on the version's input shape and classes: what a device and promote
// build. A manifest names its architecture, one of the models/ files
// built into this binary (arch.Builtin).
func VersionPlan(m manifest.Model) (*arch.Plan, error) {
	spec, err := arch.Builtin(m.Architecture)
	if err != nil {
		return nil, err
	}
	if len(m.Input) != 3 {
		return nil, fmt.Errorf("model input %v: want [height, width, channels]", m.Input)
	}
	return spec.Plan(arch.Input{H: m.Input[0], W: m.Input[1], C: m.Input[2]}, len(m.Classes))
}
