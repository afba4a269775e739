package model

import (
	"github.com/aerie-ml/aerie/internal/arch"
	"github.com/aerie-ml/aerie/internal/manifest"
)

// VersionPlan plans the architecture a model version's manifest records
// (model.spec), on the version's input shape and classes: what a device
// and promote build.
func VersionPlan(m manifest.Model) (*arch.Plan, error) { return m.Plan() }
