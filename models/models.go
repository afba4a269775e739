// Package models embeds the architecture files of this directory, so that
// binaries that run outside a checkout (the trainer's image, promote, the
// edge agent) can build the architecture a run or a model version names.
// internal/arch.Builtin reads them.
package models

import "embed"

// Files holds <name>.yaml for every architecture here.
//
//go:embed *.yaml
var Files embed.FS
