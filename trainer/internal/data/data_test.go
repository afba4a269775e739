package data

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aerie-ml/aerie/internal/exitcode"
	"github.com/aerie-ml/aerie/internal/fmnist"
	"github.com/google/go-cmp/cmp"
)

func TestLoadSplit(t *testing.T) {
	dir := t.TempDir()
	digest, err := WriteSynthetic(dir, 100, 20, 1)
	if err != nil {
		t.Fatal(err)
	}
	fsys, where, err := Open(context.Background(), "file://"+dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := Load(fsys, where, digest, 0.1, 7)
	if err != nil {
		t.Fatal(err)
	}
	if got := []int{a.Train.Len(), a.Val.Len(), a.Test.Len()}; !slices.Equal(got, []int{90, 10, 20}) {
		t.Errorf("sizes = %v, want [90 10 20]", got)
	}
	b, _ := Load(fsys, where, "", 0.1, 7)
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("same seed, different split (-a +b):\n%s", diff)
	}
	c, _ := Load(fsys, where, "", 0.1, 8)
	if cmp.Equal(a.Val, c.Val) {
		t.Error("different seeds gave the same validation set")
	}
	if len(a.Files) != 4 || a.Digest != digest {
		t.Errorf("Files = %v, Digest = %s, want 4 files and %s", a.Files, a.Digest, digest)
	}
}

func TestLoadBadData(t *testing.T) {
	files := Synthetic(50, 10, 1)
	digest := fmnist.Digest(files)
	for _, tc := range []struct {
		name    string
		edit    func(dir string)
		digest  string
		wantErr string
	}{
		{"wrong digest", func(string) {}, strings.Repeat("0", 64), "digest mismatch"},
		{"truncated images", func(dir string) {
			p := filepath.Join(dir, fmnist.TrainImages+".gz")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)/2], 0o644)
		}, "", fmnist.TrainImages},
		{"label count", func(dir string) {
			other := Synthetic(49, 10, 1)
			name := fmnist.TrainLabels + ".gz"
			os.WriteFile(filepath.Join(dir, name), other[name], 0o644)
		}, "", fmnist.TrainLabels},
		{"missing file", func(dir string) { os.Remove(filepath.Join(dir, fmnist.TestLabels+".gz")) }, "", fmnist.TestLabels},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, b := range files {
				os.WriteFile(filepath.Join(dir, name), b, 0o644)
			}
			tc.edit(dir)
			_, err := Load(os.DirFS(dir), dir, tc.digest, 0.1, 1)
			if err == nil {
				t.Fatal("Load succeeded")
			}
			if !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), dir) {
				t.Errorf("error %q does not name %q and the dataset", err, tc.wantErr)
			}
			if got := exitcode.Of(err); got != exitcode.Data {
				t.Errorf("exit code %d, want %d", got, exitcode.Data)
			}
		})
	}
	_ = digest
}

func TestShard(t *testing.T) {
	for _, tc := range []struct{ batch, world int }{{64, 1}, {64, 3}, {10, 4}, {3, 3}} {
		next := 0
		for r := range tc.world {
			lo, hi := Shard(tc.batch, r, tc.world)
			if lo != next || hi-lo < tc.batch/tc.world || hi-lo > tc.batch/tc.world+1 {
				t.Errorf("Shard(%d, %d, %d) = [%d, %d)", tc.batch, r, tc.world, lo, hi)
			}
			next = hi
		}
		if next != tc.batch {
			t.Errorf("shards of %d over %d cover %d", tc.batch, tc.world, next)
		}
	}
}

func TestOrderDeterministic(t *testing.T) {
	if !slices.Equal(Order(100, 1, 3), Order(100, 1, 3)) {
		t.Error("Order differs for equal arguments")
	}
	if slices.Equal(Order(100, 1, 3), Order(100, 1, 4)) {
		t.Error("Order is the same for two epochs")
	}
}

func TestAugment(t *testing.T) {
	img := make([]byte, ImageSize)
	for i := range img {
		img[i] = byte(i)
	}
	plain := make([]float32, ImageSize)
	Augment{}.Apply(plain, img, 1, 0, 0)
	if plain[0] != -1 || plain[255] != 1 {
		t.Errorf("normalization: %v, %v, want -1, 1", plain[0], plain[255])
	}
	// No rotation, no shift: identity.
	id := make([]float32, ImageSize)
	Augment{RotationDegrees: 1e-12}.Apply(id, img, 1, 0, 0)
	if diff := cmp.Diff(plain, id, cmp.Comparer(func(a, b float32) bool { return a-b < 1e-4 && b-a < 1e-4 })); diff != "" {
		t.Errorf("tiny rotation is not the identity:\n%s", diff)
	}
	a := Augment{RotationDegrees: 10, CropPadding: 4}
	x, y := make([]float32, ImageSize), make([]float32, ImageSize)
	a.Apply(x, img, 1, 2, 3)
	a.Apply(y, img, 1, 2, 3)
	if !slices.Equal(x, y) {
		t.Error("augmentation is not deterministic")
	}
	a.Apply(y, img, 1, 3, 3)
	if slices.Equal(x, y) {
		t.Error("augmentation is the same in two epochs")
	}
	for _, v := range x {
		if v < -1 || v > 1 {
			t.Fatalf("augmented pixel %v outside [-1, 1]", v)
		}
	}
	// Without rotation the crop is a whole-pixel shift, exactly what the
	// bilinear path samples there.
	crop := Augment{CropPadding: 4}
	for index := range 20 {
		crop.Apply(x, img, 1, 2, index)
		rng := rand.New(rand.NewPCG(uint64(1)^augmentStream, uint64(2)<<32|uint64(index)))
		rng.Float64()
		dx, dy := rng.IntN(9)-4, rng.IntN(9)-4
		for py := range 28 {
			for px := range 28 {
				want := float32(bilinear(img, float64(px+dx), float64(py+dy)))/127.5 - 1
				if got := x[py*28+px]; got != want {
					t.Fatalf("crop of example %d, pixel (%d, %d) = %v, bilinear %v", index, px, py, got, want)
				}
			}
		}
	}
}
