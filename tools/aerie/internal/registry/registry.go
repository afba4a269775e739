// Package registry reads the model versions a store holds: the
// models/<run>/<version>/manifest.json objects the trainer writes last, so
// a listed version is complete.
package registry

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/aerie-ml/aerie/internal/manifest"
	"github.com/aerie-ml/aerie/internal/store"
)

// Version is one stored model version.
type Version struct {
	// URI is the version directory's store URI, ending in "/".
	URI string `json:"uri"`
	// Digest is the sha256 of manifest.json, which pins pin.
	Digest   string             `json:"manifestDigest"`
	Manifest *manifest.Manifest `json:"manifest"`
}

// List returns run's versions in s, newest first.
func List(ctx context.Context, s store.Store, run string) ([]Version, error) {
	prefix := store.RunPrefix(run)
	if err := store.CheckKey(prefix + manifest.FileName); err != nil {
		return nil, fmt.Errorf("run %q: %w", run, err)
	}
	objects, err := s.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	var out []Version
	for _, o := range objects {
		rest := strings.TrimPrefix(o.Key, prefix)
		if !strings.HasSuffix(rest, "/"+manifest.FileName) || strings.Count(rest, "/") != 1 {
			continue
		}
		v, err := read(ctx, s, strings.TrimSuffix(o.Key, manifest.FileName))
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b Version) int {
		return cmp.Or(b.Manifest.CreatedAt.Compare(a.Manifest.CreatedAt), strings.Compare(b.Manifest.Version, a.Manifest.Version))
	})
	return out, nil
}

// Get returns version of run in s.
func Get(ctx context.Context, s store.Store, run, version string) (Version, error) {
	prefix := store.ModelPrefix(run, version)
	if err := store.CheckKey(prefix + manifest.FileName); err != nil {
		return Version{}, fmt.Errorf("version %q: %w", version, err)
	}
	v, err := read(ctx, s, prefix)
	if err != nil {
		return Version{}, err
	}
	if v.Manifest.Run != run || v.Manifest.Version != version {
		return Version{}, fmt.Errorf("%s holds version %s/%s, not %s/%s", v.URI, v.Manifest.Run, v.Manifest.Version, run, version)
	}
	return v, nil
}

// Open returns the version at uri, a version directory in any store.
func Open(ctx context.Context, uri string) (Version, error) {
	s, err := store.Open(ctx, uri)
	if err != nil {
		return Version{}, err
	}
	defer s.Close()
	return read(ctx, s, "")
}

func read(ctx context.Context, s store.Store, dir string) (Version, error) {
	key := dir + manifest.FileName
	r, err := s.Get(ctx, key)
	if err != nil {
		return Version{}, err
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, manifest.MaxBytes+1))
	if err != nil {
		return Version{}, fmt.Errorf("read %s: %w", s.URI(key), err)
	}
	m, err := manifest.Parse(b)
	if err != nil {
		return Version{}, fmt.Errorf("%s: %w", s.URI(key), err)
	}
	return Version{URI: s.URI(dir), Digest: manifest.Digest(b), Manifest: m}, nil
}

// ClassDelta is one class's test accuracy in two versions.
type ClassDelta struct {
	Class string  `json:"class"`
	A     float64 `json:"a"`
	B     float64 `json:"b"`
	Delta float64 `json:"delta"`
}

// Compare lines up a's and b's per-class test accuracy by class name;
// Delta is b minus a. A class only one version has is 0 in the other.
func Compare(a, b *manifest.Manifest) []ClassDelta {
	index := map[string]int{}
	var out []ClassDelta
	for i, c := range a.Model.Classes {
		index[c] = len(out)
		out = append(out, ClassDelta{Class: c, A: at(a.Metrics.ClassAccuracy, i)})
	}
	for i, c := range b.Model.Classes {
		j, ok := index[c]
		if !ok {
			j = len(out)
			out = append(out, ClassDelta{Class: c})
		}
		out[j].B = at(b.Metrics.ClassAccuracy, i)
	}
	for i := range out {
		out[i].Delta = out[i].B - out[i].A
	}
	return out
}

func at(v []float64, i int) float64 {
	if i < len(v) {
		return v[i]
	}
	return 0
}
