package store

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Location is a parsed store URI.
type Location struct {
	Scheme string // "gs" or "file"
	Bucket string // gs: the bucket
	Prefix string // gs: "" or the object-name prefix, ending in "/"
	Path   string // file: the clean absolute directory
}

// String returns the canonical URI: gs://bucket/prefix/ or file:///path.
func (l Location) String() string {
	if l.Scheme == "gs" {
		return "gs://" + l.Bucket + "/" + l.Prefix
	}
	return (&url.URL{Scheme: "file", Path: l.Path}).String()
}

const uriHelp = "want gs://bucket[/prefix] or file:///absolute/path"

// URIError is a URI that ParseURI rejects. It matches ErrBadURI, and so
// ErrPermanent.
type URIError struct {
	URI string
	// Reason says what is wrong, e.g. `bucket "x": must be 3 to 222 characters`.
	Reason string
}

func (e *URIError) Error() string { return e.Reason + " (" + uriHelp + "): " + ErrBadURI.Error() }
func (e *URIError) Unwrap() error { return ErrBadURI }

// ParseURI parses a store URI: gs://bucket[/prefix] or file:///absolute/path
// (file:/absolute/path and file://localhost/absolute/path are accepted too).
// It is the one validator of store URIs: run declarations, pin files and the
// edge's configuration call it, so that what they accept the store opens.
// Errors are *URIError.
func ParseURI(uri string) (Location, error) {
	bad := func(format string, args ...any) (Location, error) {
		return Location{}, &URIError{URI: uri, Reason: fmt.Sprintf(format, args...)}
	}
	if !utf8.ValidString(uri) {
		return bad("not valid UTF-8")
	}
	if i := strings.IndexFunc(uri, isControl); i >= 0 {
		return bad("control character %q at byte %d", uri[i], i)
	}
	scheme, rest, ok := strings.Cut(uri, ":")
	if !ok {
		return bad("no scheme")
	}
	switch scheme {
	case "gs":
		rest, ok = strings.CutPrefix(rest, "//")
		if !ok {
			return bad("gs: must be followed by //bucket")
		}
		bucket, prefix, _ := strings.Cut(rest, "/")
		if err := checkBucket(bucket); err != nil {
			return bad("bucket %q: %v", bucket, err)
		}
		prefix = strings.TrimSuffix(prefix, "/")
		if prefix != "" {
			if err := checkKey(prefix); err != nil {
				return bad("prefix %q: %v", prefix, err)
			}
			prefix += "/"
		}
		return Location{Scheme: "gs", Bucket: bucket, Prefix: prefix}, nil
	case "file":
		u, err := url.Parse(uri)
		if err != nil {
			return bad("%v", errors.Unwrap(err))
		}
		switch {
		case u.Opaque != "":
			return bad("relative path %q", u.Opaque)
		case u.Host != "" && u.Host != "localhost":
			return bad("host %q: only local paths are supported", u.Host)
		case u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
			return bad("file URIs take no user, query or fragment")
		case !strings.HasPrefix(u.Path, "/"):
			return bad("path %q is not absolute", u.Path)
		case strings.ContainsFunc(u.Path, isControl) || strings.ContainsRune(u.Path, 0):
			return bad("control character in path %q", u.Path)
		}
		return Location{Scheme: "file", Path: filepath.Clean(u.Path)}, nil
	}
	return bad("unknown scheme %q", scheme)
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// checkBucket applies GCS's bucket naming rules.
func checkBucket(b string) error {
	switch {
	case b == "":
		return errors.New("empty bucket name")
	case len(b) < 3 || len(b) > 222:
		return errors.New("must be 3 to 222 characters")
	case !isAlnum(b[0]) || !isAlnum(b[len(b)-1]):
		return errors.New("must start and end with a letter or digit")
	case strings.HasPrefix(b, "goog") || strings.Contains(b, "google"):
		return errors.New(`may not start with "goog" or contain "google"`)
	}
	for _, c := range []byte(b) {
		if !isAlnum(c) && c != '-' && c != '_' && c != '.' {
			return fmt.Errorf("character %q: use lowercase letters, digits, '-', '_' and '.'", c)
		}
	}
	if len(b) > 63 && !strings.Contains(b, ".") {
		return errors.New("names without dots must be 3 to 63 characters")
	}
	for part := range strings.SplitSeq(b, ".") {
		if part == "" || len(part) > 63 {
			return errors.New("dot-separated parts must be 1 to 63 characters")
		}
	}
	return nil
}

func isAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// maxKeyBytes is GCS's object name limit; file:// stores keep it too, so a
// store can move between the two.
const maxKeyBytes = 1024

// tmpPrefix starts the names of file:// temporary files; keys may not use it.
const tmpPrefix = ".aerie-"

// CheckKey reports whether key can name an object: slash-separated, non-empty
// elements, none "." or "..", no leading slash, no control characters, at
// most 1024 bytes, no element starting with ".aerie-" (reserved).
func CheckKey(key string) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("key %q: %v: %w", key, err, ErrBadURI)
	}
	return nil
}

func checkKey(key string) error {
	switch {
	case key == "":
		return errors.New("empty")
	case len(key) > maxKeyBytes:
		return fmt.Errorf("%d bytes, more than %d", len(key), maxKeyBytes)
	case !utf8.ValidString(key):
		return errors.New("not valid UTF-8")
	case strings.ContainsFunc(key, isControl):
		return errors.New("contains a control character")
	case strings.HasPrefix(key, "/"):
		return errors.New("starts with a slash")
	}
	for elem := range strings.SplitSeq(key, "/") {
		switch {
		case elem == "":
			return errors.New("has an empty path element")
		case elem == "." || elem == "..":
			return fmt.Errorf("has a %q path element", elem)
		case strings.HasPrefix(elem, tmpPrefix):
			return fmt.Errorf("element %q uses the reserved %q prefix", elem, tmpPrefix)
		}
	}
	return nil
}

// checkPrefix validates a List prefix: "" or a key, optionally ending in "/".
func checkPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if err := checkKey(strings.TrimSuffix(prefix, "/")); err != nil {
		return fmt.Errorf("prefix %q: %v: %w", prefix, err, ErrBadURI)
	}
	return nil
}

// The layout (see the package doc). Arguments must be single, valid key
// elements: Put, Get and List reject keys with empty, "." or ".." elements.

// TeamRoot is the root of team's part of the store at root:
// "<root>/teams/<team>". A team's runs keep their checkpoints and models
// under it (CheckpointPrefix and ModelPrefix are relative to it), the
// prefix only the team's identity may write (infra/terraform/modules/team).
func TeamRoot(root, team string) string {
	return strings.TrimSuffix(root, "/") + "/teams/" + team
}

// DatasetPrefix is where dataset name with content digest sha256 lives:
// "datasets/<name>/<sha256>/".
func DatasetPrefix(name, sha256 string) string {
	return "datasets/" + name + "/" + sha256 + "/"
}

// CheckpointPrefix is where run's checkpoint at step lives:
// "checkpoints/<run>/<step>/", with step zero-padded to 12 digits so that
// listing a run's checkpoints sorts them by step.
func CheckpointPrefix(run string, step int64) string {
	return "checkpoints/" + run + "/" + fmt.Sprintf("%012d", step) + "/"
}

// CheckpointStep returns the step of a key under CheckpointPrefix(run, step).
func CheckpointStep(key string) (run string, step int64, ok bool) {
	rest, ok := strings.CutPrefix(key, "checkpoints/")
	if !ok {
		return "", 0, false
	}
	parts := strings.SplitN(rest, "/", 3)
	if len(parts) < 3 || parts[0] == "" {
		return "", 0, false
	}
	step, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || step < 0 {
		return "", 0, false
	}
	return parts[0], step, true
}

// RunPrefix is where the versions of run's model live: "models/<run>/".
func RunPrefix(run string) string { return "models/" + run + "/" }

// ModelPrefix is where version of run's model lives:
// "models/<run>/<version>/".
func ModelPrefix(run, version string) string { return RunPrefix(run) + version + "/" }

// DeviceStatusKey is the key of device id's status: "status/devices/<id>.json".
func DeviceStatusKey(id string) string {
	return "status/devices/" + id + ".json"
}
