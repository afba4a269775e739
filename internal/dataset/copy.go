package dataset

import (
	"fmt"
	"strings"

	"github.com/aerie-ml/aerie/internal/store"
)

// A repository declares the datasets its runs train on with committed
// copies of their manifests, so that checking a run needs no store access:
// <dir>/<name>/<digest>.json, where dir is apps/jobs/datasets in this
// repository. aerie dataset ingest writes the copy; aerie run check reads it through Check.

// CopyPath is the committed copy of dataset name's manifest with digest,
// relative to the repository's datasets directory.
func CopyPath(name, digest string) string { return name + "/" + digest + ".json" }

// Check verifies manifest bytes b against the declared digest and parses
// them: what a committed copy and a fetched dataset.json must pass.
func Check(b []byte, digest string) (*Manifest, error) {
	if got := Digest(b); got != digest {
		return nil, fmt.Errorf("%w: sha256 is %s, the run declares %s", ErrManifest, got, digest)
	}
	return Parse(b)
}

// Locate names the dataset a run declares with uri and digest: its name
// (the directory datasets/<name>/ of store.DatasetPrefix) and its root,
// the URI of datasets/<name>/<digest>/ that holds dataset.json. uri is
// either that root or the name's directory.
func Locate(uri, digest string) (name, root string, err error) {
	loc, err := store.ParseURI(uri)
	if err != nil {
		return "", "", err
	}
	p := loc.Prefix
	if loc.Scheme == "file" {
		p = loc.Path
	}
	elems := strings.Split(strings.Trim(p, "/"), "/")
	root = strings.TrimSuffix(uri, "/")
	if elems[len(elems)-1] != digest {
		root += "/" + digest
		elems = append(elems, digest)
	}
	if len(elems) < 2 || elems[len(elems)-2] == "" {
		return "", "", fmt.Errorf("dataset %s: want …/datasets/<name>/<digest>/ or …/datasets/<name>/, the layout ingest writes", uri)
	}
	return elems[len(elems)-2], root + "/", nil
}
