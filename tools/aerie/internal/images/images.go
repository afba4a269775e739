// Package images is the record of the newest released trainer and edge
// agent images, apps/jobs/images.yaml. The images workflow rewrites it in a
// pull request after it builds and signs them; aerie run render pins a run
// that is rendered for the first time to its trainer image.
package images

import (
	"errors"
	"fmt"

	"github.com/aerie-ml/aerie/internal/runspec"
	"github.com/aerie-ml/aerie/internal/strictyaml"
)

// File is the record's name in the jobs directory (apps/jobs).
const File = "images.yaml"

// APIVersion and Kind identify the record.
const (
	APIVersion = "aerie.dev/v1alpha1"
	Kind       = "ImageRelease"
)

// MaxBytes bounds the file; the real one is a few hundred bytes.
const MaxBytes = 16 << 10

// ErrTooLarge is wrapped by Parse for a file over MaxBytes.
var ErrTooLarge = errors.New("image release file too large")

// Release is the newest released image of each component, pinned by
// digest: <registry>/<repository>[:<tag>]@sha256:<64 hex>.
type Release struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	// Trainer is the image new runs train with.
	Trainer string `yaml:"trainer"`
	// Edge is the edge agent's image; empty until its first release.
	Edge string `yaml:"edge,omitempty"`
}

// Parse decodes and validates the record read from filename. Unknown
// fields, duplicate keys, several documents and references not pinned by
// digest are errors naming filename, the line and the field.
func Parse(filename string, data []byte) (*Release, error) {
	if len(data) > MaxBytes {
		return nil, fmt.Errorf("%s: %d bytes, more than %d: %w", filename, len(data), MaxBytes, ErrTooLarge)
	}
	var r Release
	root, err := strictyaml.Decode(filename, data, &r)
	if err != nil {
		return nil, err
	}
	v := strictyaml.Validator{File: filename, Root: root}
	if r.APIVersion != APIVersion {
		v.Fail("apiVersion", "%q, want %q", r.APIVersion, APIVersion)
	}
	if r.Kind != Kind {
		v.Fail("kind", "%q, want %q", r.Kind, Kind)
	}
	if r.Trainer == "" {
		v.Fail("trainer", "is required: the trainer image, <registry>/<repository>@sha256:<64 hex digits>")
	} else if msg := runspec.ValidImage(r.Trainer); msg != "" {
		v.Fail("trainer", "%s, got %q", msg, r.Trainer)
	}
	if r.Edge != "" {
		if msg := runspec.ValidImage(r.Edge); msg != "" {
			v.Fail("edge", "%s, got %q", msg, r.Edge)
		}
	}
	if v.Err != nil {
		return nil, v.Err
	}
	return &r, nil
}
