// Package pins defines a fleet's pin file, edge/fleets/<fleet>.yaml: which
// model version the devices of a fleet run (stable) and, optionally, which
// version a stable hash-selected share of them tries first (canary).
// Promotion writes these files; the edge agent reads them.
package pins

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

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
	// edge/keys/.
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
	// on the golden set on the device before it is activated.
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

// Error is a problem in a pin file, located by file, line and field.
type Error struct {
	File  string
	Line  int
	Field string
	Msg   string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Field != "" {
		b.WriteString(": " + e.Field)
	}
	b.WriteString(": " + e.Msg)
	return b.String()
}

var (
	digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	fleetRE  = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	// yaml.v3 type errors read "line N: message".
	yamlLineRE = regexp.MustCompile(`line (\d+): (.*)`)
)

// Parse decodes and validates a pin file strictly: unknown fields,
// duplicate keys, several documents, and invalid values are errors that
// name filename, the line and the field.
func Parse(filename string, data []byte) (*Pins, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{File: filename, Msg: "empty file"}
		}
		return nil, yamlError(filename, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		line := extra.Line
		if err != nil {
			return nil, yamlError(filename, err)
		}
		return nil, &Error{File: filename, Line: line, Msg: "more than one YAML document"}
	}
	var p Pins
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	if err := strict.Decode(&p); err != nil {
		return nil, yamlError(filename, err)
	}
	v := validator{file: filename, root: &root}
	v.check(&p)
	if v.err != nil {
		return nil, v.err
	}
	return &p, nil
}

func yamlError(filename string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		err = errors.New(te.Errors[0])
	}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		var line int
		fmt.Sscan(m[1], &line)
		return &Error{File: filename, Line: line, Msg: m[2]}
	}
	return &Error{File: filename, Msg: msg}
}

type validator struct {
	file string
	root *yaml.Node
	err  error
}

// fail records the first problem, at the line of field's value (or of the
// closest ancestor present in the document).
func (v *validator) fail(field, format string, args ...any) {
	if v.err != nil {
		return
	}
	v.err = &Error{File: v.file, Line: v.line(field), Field: field, Msg: fmt.Sprintf(format, args...)}
}

func (v *validator) line(field string) int {
	n := v.root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, key := range strings.Split(field, ".") {
		if n.Kind != yaml.MappingNode {
			return line
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				next = n.Content[i+1]
				break
			}
		}
		if next == nil {
			return line
		}
		n, line = next, next.Line
	}
	return line
}

func (v *validator) check(p *Pins) {
	if p.APIVersion != APIVersion {
		v.fail("apiVersion", "%q, want %q", p.APIVersion, APIVersion)
	}
	if p.Kind != Kind {
		v.fail("kind", "%q, want %q", p.Kind, Kind)
	}
	if !fleetRE.MatchString(p.Fleet) {
		v.fail("fleet", "%q is not a DNS label (lowercase letters, digits, '-', at most 63)", p.Fleet)
	}
	v.version("stable", p.Stable)
	if p.Canary != nil {
		v.version("canary", p.Canary.Version)
		if p.Canary.Percent < 0 || p.Canary.Percent > 100 {
			v.fail("canary.percent", "%d is outside 0–100", p.Canary.Percent)
		}
		if p.Canary.ManifestDigest == p.Stable.ManifestDigest {
			v.fail("canary.manifestDigest", "equals stable.manifestDigest; drop the canary instead")
		}
	}
}

func (v *validator) version(field string, ver Version) {
	u, err := url.Parse(ver.URI)
	switch {
	case ver.URI == "":
		v.fail(field+".uri", "is required")
	case err != nil:
		v.fail(field+".uri", "%v", err)
	case u.Scheme != "gs" && u.Scheme != "file":
		v.fail(field+".uri", "%q: scheme must be gs or file", ver.URI)
	case u.Scheme == "gs" && u.Host == "":
		v.fail(field+".uri", "%q has no bucket", ver.URI)
	case u.Scheme == "file" && (u.Host != "" || !strings.HasPrefix(u.Path, "/")):
		v.fail(field+".uri", "%q: want file:///absolute/path", ver.URI)
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		v.fail(field+".uri", "%q: no user, query or fragment allowed", ver.URI)
	}
	if !digestRE.MatchString(ver.ManifestDigest) {
		v.fail(field+".manifestDigest", "%q is not sha256:<64 lowercase hex>", ver.ManifestDigest)
	}
	if !(ver.MinSelfTestAccuracy > 0 && ver.MinSelfTestAccuracy <= 1) {
		v.fail(field+".minSelfTestAccuracy", "%v is outside (0, 1]", ver.MinSelfTestAccuracy)
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

// DigestHex returns the hex part of a "sha256:<hex>" digest.
func DigestHex(digest string) string {
	h := strings.TrimPrefix(digest, "sha256:")
	if _, err := hex.DecodeString(h); err != nil || len(h) != 64 {
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
