// Package pins defines a fleet's pin file, fleets/<fleet>.yaml: which
// model version the devices of a fleet run (stable) and, optionally, which
// version a stable hash-selected share of them tries first (canary).
// Promotion writes these files; the edge agent reads them.
package pins

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"strings"

	"github.com/opencontainers/go-digest"
	"gopkg.in/yaml.v3"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/aerie-ml/aerie/internal/store"
	"github.com/aerie-ml/aerie/internal/strictyaml"
)

// Dir is the repository's desired-state folder for device fleets, next to
// apps/ and clusters/: the pin files Dir/<fleet>.yaml and the trusted keys
// in KeysDir. Devices read it; no image build watches it.
const Dir = "fleets"

// KeysDir is where the repository keeps the public keys devices trust.
const KeysDir = Dir + "/keys"

// File is the repository path of fleet's pin file.
func File(fleet string) string { return Dir + "/" + fleet + ".yaml" }

// APIVersion and Kind identify a pin file.
const (
	APIVersion = "aerie.dev/v1alpha1"
	Kind       = "FleetPins"
)

// PlaceholderDigest is the manifest digest of a pin that names no real
// version yet (a fleet declared before its first promotion). It parses, and
// agents report such a pin as Stalled instead of fetching it.
const PlaceholderDigest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"

// Pins is one fleet's pin file.
type Pins struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Fleet      string `yaml:"fleet"`
	// RequireSignature makes devices reject a version whose manifest.json
	// has no valid ed25519 signature (manifest.json.sig) by a key in
	// fleets/keys/.
	RequireSignature bool    `yaml:"requireSignature"`
	Stable           Version `yaml:"stable"`
	Canary           *Canary `yaml:"canary,omitempty"`
}

// Version pins one model version.
type Version struct {
	// URI is the store URI of the model version directory
	// (gs://bucket/models/<run>/<version>/ or file:///…/models/<run>/<version>/).
	URI string `yaml:"uri"`
	// ManifestDigest is "sha256:<hex>" of the version's manifest.json bytes.
	ManifestDigest string `yaml:"manifestDigest"`
	// MinSelfTestAccuracy is the accuracy, in [0,1], the version must reach
	// on its self-test set on the device before it is activated.
	MinSelfTestAccuracy float64 `yaml:"minSelfTestAccuracy"`
}

// Placeholder reports whether v names no real version yet.
func (v Version) Placeholder() bool { return v.ManifestDigest == PlaceholderDigest }

// Canary is a version a share of the fleet runs before it becomes stable.
type Canary struct {
	Version `yaml:",inline"`
	// Percent of the fleet's devices, 0–100, chosen by InCanary.
	Percent int `yaml:"percent"`
}

// Error is a problem in the pin file, located by file, line and field.
type Error = strictyaml.Error

// MaxBytes bounds a pin file. Real ones are under 1 KiB; the bound keeps a
// hostile commit from making every device decode megabytes of YAML.
const MaxBytes = 64 << 10

// ErrTooLarge is wrapped by Parse for a pin file over MaxBytes.
var ErrTooLarge = errors.New("pin file too large")

// Parse decodes and validates the pin file filename, which must be named
// <fleet>.yaml after the fleet it declares. Unknown fields, duplicate keys,
// several documents, a file over MaxBytes and invalid values are errors
// that name filename, the line and the field.
func Parse(filename string, data []byte) (*Pins, error) {
	if len(data) > MaxBytes {
		return nil, fmt.Errorf("%s: %d bytes, more than %d: %w", filename, len(data), MaxBytes, ErrTooLarge)
	}
	var p Pins
	root, err := strictyaml.Decode(filename, data, &p)
	if err != nil {
		return nil, err
	}
	v := validator{strictyaml.Validator{File: filename, Root: root}}
	v.check(&p)
	if v.Err != nil {
		return nil, v.Err
	}
	return &p, nil
}

// validator checks values after decoding.
type validator struct{ strictyaml.Validator }

func (v *validator) check(p *Pins) {
	if p.APIVersion != APIVersion {
		v.Fail("apiVersion", "%q, want %q", p.APIVersion, APIVersion)
	}
	if p.Kind != Kind {
		v.Fail("kind", "%q, want %q", p.Kind, Kind)
	}
	if len(validation.IsDNS1123Label(p.Fleet)) > 0 {
		v.Fail("fleet", "%q is not a DNS label (at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit)", p.Fleet)
	} else if name, ok := strings.CutSuffix(path.Base(filepath.ToSlash(v.File)), ".yaml"); !ok || name != p.Fleet {
		v.Fail("fleet", "%q, but the file is %s: name a fleet's pin file <fleet>.yaml", p.Fleet, path.Base(filepath.ToSlash(v.File)))
	}
	v.version("stable", p.Stable)
	if p.Canary != nil {
		v.version("canary", p.Canary.Version)
		if p.Canary.Percent < 0 || p.Canary.Percent > 100 {
			v.Fail("canary.percent", "%d is outside 0–100", p.Canary.Percent)
		}
		if p.Canary.ManifestDigest == p.Stable.ManifestDigest {
			v.Fail("canary.manifestDigest", "equals stable.manifestDigest; drop the canary instead")
		}
	}
}

func (v *validator) version(field string, ver Version) {
	// The store's parser is the only one: a pin that parses here opens on
	// the device.
	if ver.URI == "" {
		v.Fail(field+".uri", "is required")
	} else if _, err := store.ParseURI(ver.URI); err != nil {
		v.Fail(field+".uri", "%q: %v", ver.URI, err)
	}
	if DigestHex(ver.ManifestDigest) == "" {
		v.Fail(field+".manifestDigest", "%q is not sha256:<64 lowercase hex>", ver.ManifestDigest)
	}
	if !(ver.MinSelfTestAccuracy > 0 && ver.MinSelfTestAccuracy <= 1) {
		v.Fail(field+".minSelfTestAccuracy", "%v is outside (0, 1]", ver.MinSelfTestAccuracy)
	}
}

// Bucket returns the device's rollout bucket in [0,100) for a fleet: the
// first 8 bytes of sha256(fleet + "/" + deviceID) mod 100. It is stable
// across restarts, releases and architectures.
func Bucket(fleet, deviceID string) int {
	sum := sha256.Sum256([]byte(fleet + "/" + deviceID))
	return int(binary.BigEndian.Uint64(sum[:8]) % 100)
}

// InCanary reports whether deviceID takes the fleet's canary.
func (p *Pins) InCanary(deviceID string) bool {
	return p.Canary != nil && Bucket(p.Fleet, deviceID) < p.Canary.Percent
}

// Desired returns the version deviceID should run, and whether it is the
// canary.
func (p *Pins) Desired(deviceID string) (Version, bool) {
	if p.InCanary(deviceID) {
		return p.Canary.Version, true
	}
	return p.Stable, false
}

// DigestHex returns the hex part of a "sha256:<64 lowercase hex>" digest
// (go-digest's grammar, sha256 only), or "" if d is not one.
func DigestHex(d string) string {
	h, ok := strings.CutPrefix(d, string(digest.SHA256)+":")
	if !ok || digest.SHA256.Validate(h) != nil {
		return ""
	}
	return h
}

// Marshal encodes p as YAML.
func (p *Pins) Marshal() ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(p); err != nil {
		return nil, err
	}
	return b.Bytes(), enc.Close()
}
