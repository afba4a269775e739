// Package modeltest makes real model versions for the edge agent's tests:
// safetensors weights of the "small" architecture that classify
// Fashion-MNIST by nearest class centroid (no training needed, about 60%
// on the golden set), a manifest listing every file, and an optional
// ed25519 signature, written into a store the way the trainer writes them.
package modeltest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"testing"
	"time"

	"github.com/aerie-ml/aerie/internal/arch"
	"github.com/aerie-ml/aerie/internal/fmnist"
	"github.com/aerie-ml/aerie/internal/golden"
	"github.com/aerie-ml/aerie/internal/manifest"
	"github.com/aerie-ml/aerie/internal/model"
	"github.com/aerie-ml/aerie/internal/pins"
)

// SmallPlan is the plan CentroidWeights are for: models/small.yaml on
// Fashion-MNIST, as a version's manifest records it.
func SmallPlan(t testing.TB) *arch.Plan {
	t.Helper()
	p, err := model.VersionPlan(manifest.Model{Architecture: "small", Input: []int{28, 28, 1}, Classes: fmnist.Classes[:]})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// CentroidWeights returns "small" weights that act as a nearest-centroid
// classifier on 4×4 max-pooled images. The centroids come from the golden
// set itself: good enough to pass a self-test, which is all tests need.
// With scale 0 every image gets class 0 (a model that fails its self-test).
func CentroidWeights(t testing.TB, scale float32) []byte {
	t.Helper()
	set, err := golden.Set()
	if err != nil {
		t.Fatal(err)
	}
	const cells = 7 * 7
	var centroids [fmnist.NumClasses][cells]float32
	var count [fmnist.NumClasses]float32
	for i := range set.Len() {
		img, c := set.Image(i), set.Labels[i]
		count[c]++
		for cell := range cells {
			centroids[c][cell] += pooled(img, cell)
		}
	}
	kernel := make([]float32, 3*3*1*4)
	kernel[(1*3+1)*4+0] = 1 // centre tap, channel 0: the pixel itself
	bias := []float32{1, 0, 0, 0}
	fcw := make([]float32, cells*4*fmnist.NumClasses)
	fcb := make([]float32, fmnist.NumClasses)
	for c := range fmnist.NumClasses {
		var norm float32
		for cell := range cells {
			m := centroids[c][cell] / count[c]
			fcw[(cell*4+0)*fmnist.NumClasses+c] = m * scale
			norm += m * m
		}
		fcb[c] = -norm / 2 * scale
	}
	var b bytes.Buffer
	err = model.Encode(&b, []model.Tensor{
		model.FromFloat32s("conv1.weight", []int{3, 3, 1, 4}, kernel),
		model.FromFloat32s("conv1.bias", []int{4}, bias),
		model.FromFloat32s("fc1.weight", []int{cells * 4, fmnist.NumClasses}, fcw),
		model.FromFloat32s("fc1.bias", []int{fmnist.NumClasses}, fcb),
	}, map[string]string{model.MetadataArchitecture: "small"})
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// pooled is what the small model's conv (identity + 1) and two max-pools
// compute for one 4×4 cell: max of p/127.5 over the cell.
func pooled(img []byte, cell int) float32 {
	cy, cx := cell/7, cell%7
	var m byte
	for y := cy * 4; y < cy*4+4; y++ {
		for x := cx * 4; x < cx*4+4; x++ {
			m = max(m, img[y*28+x])
		}
	}
	return float32(m) / 127.5
}

// Putter is the part of a store a version is written through.
type Putter interface {
	Put(ctx context.Context, key string, r io.Reader) error
}

// Version describes a written version.
type Version struct {
	Key      string // models/<run>/<version>/
	Manifest []byte
	Digest   string
	Weights  []byte
}

// Write stores a model version of arch with weights under
// models/<run>/<version>/ in st: model.safetensors, a report file,
// manifest.json last and, with key, manifest.json.sig.
func Write(t testing.TB, st Putter, run, arch string, weights []byte, key ed25519.PrivateKey) Version {
	t.Helper()
	ctx := context.Background()
	files := map[string][]byte{
		"model.safetensors": weights,
		"report.html":       []byte("<!doctype html><title>report</title>\n"),
	}
	m := &manifest.Manifest{
		SchemaVersion: manifest.SchemaVersion,
		Run:           run,
		CreatedAt:     time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		Model:         manifest.Model{Architecture: arch, Weights: "model.safetensors", Input: []int{28, 28, 1}, Classes: fmnist.Classes[:]},
	}
	for _, name := range []string{"model.safetensors", "report.html"} {
		f, err := manifest.Describe(name, bytes.NewReader(files[name]))
		if err != nil {
			t.Fatal(err)
		}
		m.Files = append(m.Files, f)
	}
	m.Version = m.Files[0].SHA256[:16]
	mb, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	prefix := path.Join("models", run, m.Version) + "/"
	for _, name := range []string{"model.safetensors", "report.html"} {
		if err := st.Put(ctx, prefix+name, bytes.NewReader(files[name])); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Put(ctx, prefix+manifest.FileName, bytes.NewReader(mb)); err != nil {
		t.Fatal(err)
	}
	if key != nil {
		if err := st.Put(ctx, prefix+pins.SignatureFile, bytes.NewReader(pins.Sign(key, mb))); err != nil {
			t.Fatal(err)
		}
	}
	return Version{Key: prefix, Manifest: mb, Digest: manifest.Digest(mb), Weights: weights}
}

// Dir is a plain-directory store for tests of code that only needs Get and
// Put (internal/store's file:// backend is the real one).
type Dir string

// Put writes key.
func (d Dir) Put(ctx context.Context, key string, r io.Reader) error {
	p := filepath.Join(string(d), filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	return os.WriteFile(p, b, 0o644)
}

// Get opens key.
func (d Dir) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	f, err := os.Open(filepath.Join(string(d), filepath.FromSlash(key)))
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	return f, nil
}

// Sub returns the store rooted at prefix.
func (d Dir) Sub(prefix string) Dir { return Dir(filepath.Join(string(d), filepath.FromSlash(prefix))) }
