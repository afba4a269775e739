// Package modeltest makes real model versions for the edge agent's tests:
// synthetic labelled images, safetensors weights of the "small"
// architecture that classify them by nearest class centroid (no training
// needed), a self-test set packed from them, a manifest listing every file,
// and an optional ed25519 signature, written into a store the way the
// trainer writes them.
package modeltest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"image"
	"image/png"
	"io"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"testing"
	"time"

	"github.com/aerie-ml/aerie/internal/arch"
	"github.com/aerie-ml/aerie/internal/dataset"
	"github.com/aerie-ml/aerie/internal/manifest"
	"github.com/aerie-ml/aerie/internal/model"
	"github.com/aerie-ml/aerie/internal/pins"
	"github.com/aerie-ml/aerie/internal/selftest"
	"github.com/aerie-ml/aerie/internal/store"
)

// Classes are the classes of the versions Write makes: the reference
// dataset's (Fashion-MNIST's) names, which the tests' GPIO configurations
// use.
var Classes = []string{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"}

// Side is the side of the images, grey: the reference dataset's shape.
const Side = 28

// Images returns n synthetic 28×28 grey images and their labels, drawn
// from seed: class c lights 4×4 cells c, c+10, c+20 and c+30 of the 7×7
// grid over dim noise, so a nearest-centroid classifier gets them right.
func Images(n int, seed uint64) (images [][]byte, labels []int) {
	rng := rand.New(rand.NewPCG(seed, 0x1ae5))
	for i := range n {
		c := i % len(Classes)
		img := make([]byte, Side*Side)
		for p := range img {
			img[p] = byte(rng.IntN(48))
		}
		for k := range 4 {
			cell := c + 10*k
			cy, cx := cell/7, cell%7
			for y := cy * 4; y < cy*4+4; y++ {
				for x := cx * 4; x < cx*4+4; x++ {
					img[y*Side+x] = byte(190 + rng.IntN(66))
				}
			}
		}
		images, labels = append(images, img), append(labels, c)
	}
	return images, labels
}

// PNGDir writes images (Side×Side grey) into a new directory as PNG files
// in their order: a frames source of them.
func PNGDir(t testing.TB, images [][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for i, img := range images {
		var b bytes.Buffer
		if err := png.Encode(&b, &image.Gray{Pix: img, Stride: Side, Rect: image.Rect(0, 0, Side, Side)}); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%06d.png", i)), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Dataset ingests images (Side×Side grey) with labels as the test split of
// a dataset in a file:// store under a new directory, and returns the
// dataset's root URI: what a "dataset" frames source reads.
func Dataset(t testing.TB, images [][]byte, labels []int) string {
	t.Helper()
	return DatasetOf(t, "synthetic", Classes, Input.Shape(), images, labels)
}

// DatasetOf is Dataset for images of any shape and classes.
func DatasetOf(t testing.TB, name string, classes []string, shape dataset.Shape, images [][]byte, labels []int) string {
	t.Helper()
	ctx := context.Background()
	stage := t.TempDir()
	w, err := dataset.NewWriter(stage, classes, shape, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, img := range images {
		if err := w.Add("test", labels[i], img); err != nil {
			t.Fatal(err)
		}
	}
	_, b, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, "file://"+t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	prefix, _, err := dataset.Upload(ctx, st, name, stage, b)
	if err != nil {
		t.Fatal(err)
	}
	return st.URI(prefix)
}

// SelfTestSet packs perClass images of each class (from a seed of their
// own) as a trainer packs a version's self-test set.
func SelfTestSet(t testing.TB, perClass int) *selftest.Packed {
	t.Helper()
	images, labels := Images(perClass*len(Classes), 2)
	var b bytes.Buffer
	w := dataset.NewShardWriter(&b, dataset.Shape{Height: Side, Width: Side, Channels: 1})
	counts := make([]int, len(Classes))
	for i, img := range images {
		if err := w.Add(labels[i], img); err != nil {
			t.Fatal(err)
		}
		counts[labels[i]]++
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return &selftest.Packed{Data: b.Bytes(), Entry: manifest.SelfTest{
		File: selftest.FileName, Split: selftest.Split, Seed: 2, PerClass: perClass, ClassCounts: counts}}
}

// CentroidWeights returns "small" weights that act as a nearest-centroid
// classifier on 4×4 max-pooled images, the centroids of Images. With scale
// 0 every image gets class 0 (a model that fails its self-test).
func CentroidWeights(t testing.TB, scale float32) []byte {
	t.Helper()
	images, labels := Images(20*len(Classes), 1)
	const cells = 7 * 7
	n := len(Classes)
	centroids := make([][cells]float32, n)
	count := make([]float32, n)
	for i, img := range images {
		c := labels[i]
		count[c]++
		for cell := range cells {
			centroids[c][cell] += pooled(img, cell)
		}
	}
	kernel := make([]float32, 3*3*1*4)
	kernel[(1*3+1)*4+0] = 1 // centre tap, channel 0: the pixel itself
	bias := []float32{1, 0, 0, 0}
	fcw := make([]float32, cells*4*n)
	fcb := make([]float32, n)
	for c := range n {
		var norm float32
		for cell := range cells {
			m := centroids[c][cell] / count[c]
			fcw[(cell*4+0)*n+c] = m * scale
			norm += m * m
		}
		fcb[c] = -norm / 2 * scale
	}
	var b bytes.Buffer
	err := model.Encode(&b, []model.Tensor{
		model.FromFloat32s("conv1.weight", []int{3, 3, 1, 4}, kernel),
		model.FromFloat32s("conv1.bias", []int{4}, bias),
		model.FromFloat32s("fc1.weight", []int{cells * 4, n}, fcw),
		model.FromFloat32s("fc1.bias", []int{n}, fcb),
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
			m = max(m, img[y*Side+x])
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

// Write stores a model version of the built-in architecture arch with
// weights under models/<run>/<version>/ in st: model.safetensors, a report
// file, the self-test set (SelfTestSet(t, 10)), manifest.json last and,
// with key, manifest.json.sig.
func Write(t testing.TB, st Putter, run, arch string, weights []byte, key ed25519.PrivateKey) Version {
	return WriteClasses(t, st, run, arch, weights, key, Classes)
}

// Input is the input spec of Images: 28×28 grey, normalized as
// model.Classify does.
var Input = manifest.Input{Height: Side, Width: Side, Channels: 1, Mean: []float64{0.5}, Std: []float64{0.5}}

// Model is the manifest's model section for the built-in architecture
// archName on input in with classes: what a version declares.
func Model(t testing.TB, archName string, in manifest.Input, classes []string) manifest.Model {
	t.Helper()
	spec, err := arch.Builtin(archName)
	if err != nil {
		t.Fatal(err)
	}
	// A normalization other than the default is declared in the spec, as
	// an architecture file declares it.
	if n := in.Normalization(); !n.Equal(arch.DefaultNormalization(in.Channels)) {
		spec.Normalization = n
	}
	enc, err := arch.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	m := manifest.Model{Architecture: spec.Name, Spec: string(enc), Weights: "model.safetensors", Input: in, Classes: classes}
	plan, err := m.Plan()
	if err != nil {
		t.Fatal(err)
	}
	m.Parameters = int(plan.NumParams)
	return m
}

// InitWeights returns freshly initialised weights (from seed) of m's
// architecture on its input: a model of any shape, untrained.
func InitWeights(t testing.TB, m manifest.Model, seed uint64) []byte {
	t.Helper()
	plan, err := m.Plan()
	if err != nil {
		t.Fatal(err)
	}
	net := model.New(plan)
	var b bytes.Buffer
	if err := model.Encode(&b, net.Tensors(net.Init(seed), net.InitState()), model.Metadata(plan)); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// WriteClasses is Write for a model whose outputs are named classes (as
// many as Classes).
func WriteClasses(t testing.TB, st Putter, run, archName string, weights []byte, key ed25519.PrivateKey, classes []string) Version {
	t.Helper()
	ctx := context.Background()
	set := SelfTestSet(t, 10)
	files := map[string][]byte{
		"model.safetensors": weights,
		"report.html":       []byte("<!doctype html><title>report</title>\n"),
		selftest.FileName:   set.Data,
	}
	names := []string{"model.safetensors", "report.html", selftest.FileName}
	m := &manifest.Manifest{
		SchemaVersion: manifest.SchemaVersion,
		Run:           run,
		CreatedAt:     time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		Model:         Model(t, archName, Input, classes),
		Dataset:       manifest.Dataset{URI: "file:///synthetic", Digest: fmt.Sprintf("%064x", 1)},
		SelfTest:      set.Entry,
	}
	for _, name := range names {
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
	if _, err := manifest.Parse(mb); err != nil {
		t.Fatalf("modeltest wrote a manifest that does not parse: %v", err)
	}
	prefix := path.Join("models", run, m.Version) + "/"
	for _, name := range names {
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
