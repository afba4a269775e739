package dataset

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/opencontainers/go-digest"
)

// Schema is the manifest schema this package reads and writes.
const Schema = "aerie.dataset/v1"

// ManifestFile is the manifest's name under a dataset's prefix. It is
// written last, so its presence marks a complete dataset.
const ManifestFile = "dataset.json"

// Limits of what Parse accepts, so that a hostile manifest cannot make a
// reader allocate without bound.
const (
	MaxManifestBytes = 64 << 20
	MaxClasses       = 65536
	MaxClassName     = 256
	MaxSide          = 8192
	MaxSampleBytes   = 64 << 20 // H×W×C of one sample
	MaxSplits        = 16
	MaxShards        = 1 << 20     // per split
	MaxSamples       = 999_999_999 // per split: keys are 9 digits
)

// Manifest is a dataset's dataset.json. Its canonical encoding (Encode) is
// what the digest hashes.
type Manifest struct {
	Schema  string   `json:"schema"`
	Classes []string `json:"classes"`
	Shape   Shape    `json:"shape"`
	// Splits are sorted by name.
	Splits []Split `json:"splits"`
}

// Shape is the shape of every sample: Height×Width×Channels uint8 pixels,
// row-major, channels interleaved (grey, or R, G, B).
type Shape struct {
	Height   int `json:"height"`
	Width    int `json:"width"`
	Channels int `json:"channels"`
}

// Bytes is the size of one sample's pixels.
func (s Shape) Bytes() int { return s.Height * s.Width * s.Channels }

func (s Shape) String() string { return fmt.Sprintf("%dx%dx%d", s.Height, s.Width, s.Channels) }

// Split is a named part of the dataset (train, test, ...).
type Split struct {
	Name    string `json:"name"`
	Samples int64  `json:"samples"`
	// ClassCounts[c] is the number of samples of class c.
	ClassCounts []int64 `json:"classCounts"`
	Shards      []Shard `json:"shards"`
}

// Shard is one tar file of a split.
type Shard struct {
	File    string `json:"file"`
	Bytes   int64  `json:"bytes"`
	SHA256  string `json:"sha256"`
	Samples int    `json:"samples"`
}

// Split returns the split called name.
func (m *Manifest) Split(name string) (*Split, error) {
	for i := range m.Splits {
		if m.Splits[i].Name == name {
			return &m.Splits[i], nil
		}
	}
	names := make([]string, len(m.Splits))
	for i, s := range m.Splits {
		names[i] = s.Name
	}
	return nil, fmt.Errorf("no split %q (the dataset has %s)", name, strings.Join(names, ", "))
}

// Encode returns the canonical bytes of m: indented JSON with the fields in
// declaration order and a final newline. It checks m first.
func (m *Manifest) Encode() ([]byte, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	return m.encode()
}

func (m *Manifest) encode() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Digest is the hex sha256 of a manifest's bytes: the dataset digest.
func Digest(manifest []byte) string {
	sum := sha256.Sum256(manifest)
	return hex.EncodeToString(sum[:])
}

// ErrManifest is wrapped by every error Parse returns.
var ErrManifest = errors.New("bad dataset manifest")

// Parse reads a manifest strictly: at most MaxManifestBytes, the known
// schema, no unknown or duplicate fields, every limit and count consistent,
// and the bytes in canonical form, so that one dataset has one digest.
func Parse(b []byte) (*Manifest, error) {
	if len(b) > MaxManifestBytes {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrManifest, len(b), MaxManifestBytes)
	}
	// The schema first, so that a newer manifest says so rather than
	// failing on its new fields.
	var head struct {
		Schema string `json:"schema"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrManifest, err)
	}
	if head.Schema != Schema {
		return nil, fmt.Errorf("%w: schema %q, this reader knows %q (upgrade the reader or re-ingest)", ErrManifest, short(head.Schema), Schema)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrManifest, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the manifest object", ErrManifest)
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	canon, err := m.encode()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrManifest, err)
	}
	if !bytes.Equal(canon, b) {
		return nil, fmt.Errorf("%w: not in canonical form (re-encode it with dataset.Manifest.Encode; byte %d differs)", ErrManifest, firstDiff(canon, b))
	}
	return &m, nil
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func short(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

var (
	splitName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)
)

// ShardFile is the file name of split's shard i.
func ShardFile(split string, i int) string { return fmt.Sprintf("%s-%06d.tar", split, i) }

func (m *Manifest) check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrManifest, fmt.Sprintf(format, args...))
	}
	if m.Schema != Schema {
		return bad("schema %q, want %q", short(m.Schema), Schema)
	}
	if err := CheckClasses(m.Classes); err != nil {
		return bad("%v", err)
	}
	sh := m.Shape
	if sh.Height < 1 || sh.Height > MaxSide || sh.Width < 1 || sh.Width > MaxSide {
		return bad("shape %dx%d: sides must be 1 to %d", sh.Height, sh.Width, MaxSide)
	}
	if sh.Channels != 1 && sh.Channels != 3 {
		return bad("shape channels %d, want 1 or 3", sh.Channels)
	}
	if sh.Bytes() > MaxSampleBytes {
		return bad("shape %s: %d bytes a sample, more than %d", sh, sh.Bytes(), MaxSampleBytes)
	}
	if n := len(m.Splits); n < 1 || n > MaxSplits {
		return bad("%d splits, want 1 to %d", n, MaxSplits)
	}
	for i := range m.Splits {
		sp := &m.Splits[i]
		if !splitName.MatchString(sp.Name) {
			return bad("splits[%d] name %q: want [a-z][a-z0-9_]{0,31}", i, short(sp.Name))
		}
		if i > 0 && m.Splits[i-1].Name >= sp.Name {
			return bad("splits[%d] %q: splits must be sorted by name, without repeats", i, sp.Name)
		}
		if sp.Samples < 1 || sp.Samples > MaxSamples {
			return bad("split %s: %d samples, want 1 to %d", sp.Name, sp.Samples, int64(MaxSamples))
		}
		if len(sp.ClassCounts) != len(m.Classes) {
			return bad("split %s: %d class counts for %d classes", sp.Name, len(sp.ClassCounts), len(m.Classes))
		}
		var sum int64
		for c, n := range sp.ClassCounts {
			if n < 0 || n > sp.Samples {
				return bad("split %s: classCounts[%d] is %d", sp.Name, c, n)
			}
			sum += n
		}
		if sum != sp.Samples {
			return bad("split %s: class counts add up to %d, not its %d samples", sp.Name, sum, sp.Samples)
		}
		if n := len(sp.Shards); n < 1 || n > MaxShards {
			return bad("split %s: %d shards, want 1 to %d", sp.Name, n, MaxShards)
		}
		var total int64
		for j, s := range sp.Shards {
			where := fmt.Sprintf("split %s shard %d", sp.Name, j)
			if want := ShardFile(sp.Name, j); s.File != want {
				return bad("%s: file %q, want %q", where, short(s.File), want)
			}
			if digest.SHA256.Validate(s.SHA256) != nil {
				return bad("%s (%s): sha256 %q is not 64 lowercase hex digits", where, s.File, short(s.SHA256))
			}
			if s.Samples < 1 || int64(s.Samples) > sp.Samples-total {
				return bad("%s (%s): %d samples, want 1 to the %d left in the split", where, s.File, s.Samples, sp.Samples-total)
			}
			total += int64(s.Samples)
			if want := ShardBytes(sh, s.Samples); s.Bytes != want {
				return bad("%s (%s): %d bytes, but %d samples of %s take %d", where, s.File, s.Bytes, s.Samples, sh, want)
			}
		}
		if total != sp.Samples {
			return bad("split %s: shards hold %d samples, the split says %d", sp.Name, total, sp.Samples)
		}
	}
	return nil
}

func checkClassName(c string) error {
	switch {
	case c == "":
		return errors.New("empty")
	case len(c) > MaxClassName:
		return fmt.Errorf("%d bytes, more than %d", len(c), MaxClassName)
	case !utf8.ValidString(c):
		return errors.New("not valid UTF-8")
	case strings.ContainsFunc(c, unicode.IsControl):
		return errors.New("contains a control character")
	case strings.TrimSpace(c) != c:
		return errors.New("starts or ends with white space")
	}
	return nil
}
