package data

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/aerie-ml/aerie/internal/arch"
	"github.com/aerie-ml/aerie/internal/dataset"
	"github.com/aerie-ml/aerie/internal/runspec"
)

// testImage is an asymmetric h×w×c image: pixel (x, y) channel k holds
// 3x + 11y + 50k (mod 256).
func testImage(sh dataset.Shape) []byte {
	img := make([]byte, sh.Bytes())
	for y := range sh.Height {
		for x := range sh.Width {
			for k := range sh.Channels {
				img[(y*sh.Width+x)*sh.Channels+k] = byte(3*x + 11*y + 50*k)
			}
		}
	}
	return img
}

// at is the reference: the normalized value of pixel (x, y) channel k, or
// -1 (black) outside the image.
func at(img []byte, sh dataset.Shape, x, y, k int) float32 {
	if x < 0 || x >= sh.Width || y < 0 || y >= sh.Height {
		return -1
	}
	return float32(img[(y*sh.Width+x)*sh.Channels+k])/127.5 - 1
}

// reference builds the expected output pixel by pixel from f(x, y, k).
func reference(sh dataset.Shape, f func(x, y, k int) float32) []float32 {
	out := make([]float32, sh.Bytes())
	for y := range sh.Height {
		for x := range sh.Width {
			for k := range sh.Channels {
				out[(y*sh.Width+x)*sh.Channels+k] = f(x, y, k)
			}
		}
	}
	return out
}

var close4 = cmpopts.EquateApprox(0, 1e-4)

// TestAugmentReference checks each augmentation, with fixed draws, against
// a direct computation of what it should give.
func TestAugmentReference(t *testing.T) {
	rgb := dataset.Shape{Height: 6, Width: 6, Channels: 3}
	wide := dataset.Shape{Height: 4, Width: 7, Channels: 1}
	for _, tc := range []struct {
		name string
		sh   dataset.Shape
		d    draw
		want func(img []byte, sh dataset.Shape) []float32
	}{
		{"nothing", wide, draw{contrast: 1}, func(img []byte, sh dataset.Shape) []float32 {
			return reference(sh, func(x, y, k int) float32 { return at(img, sh, x, y, k) })
		}},
		{"shift", wide, draw{dx: 2, dy: -1, contrast: 1}, func(img []byte, sh dataset.Shape) []float32 {
			return reference(sh, func(x, y, k int) float32 { return at(img, sh, x+2, y-1, k) })
		}},
		{"flip", rgb, draw{flip: true, contrast: 1}, func(img []byte, sh dataset.Shape) []float32 {
			return reference(sh, func(x, y, k int) float32 { return at(img, sh, sh.Width-1-x, y, k) })
		}},
		{"flip and shift", wide, draw{flip: true, dx: 1, contrast: 1}, func(img []byte, sh dataset.Shape) []float32 {
			return reference(sh, func(x, y, k int) float32 { return at(img, sh, sh.Width-1-x+1, y, k) })
		}},
		// A quarter turn about the centre of a square image: output (x, y)
		// is source (y, W-1-x).
		{"rotate 90°", rgb, draw{theta: math.Pi / 2, contrast: 1}, func(img []byte, sh dataset.Shape) []float32 {
			return reference(sh, func(x, y, k int) float32 { return at(img, sh, y, sh.Width-1-x, k) })
		}},
		{"rotate 180° and flip", rgb, draw{theta: math.Pi, flip: true, contrast: 1}, func(img []byte, sh dataset.Shape) []float32 {
			return reference(sh, func(x, y, k int) float32 { return at(img, sh, x, sh.Height-1-y, k) })
		}},
		{"contrast and brightness", rgb, draw{contrast: 1.5, brightness: 20}, func(img []byte, sh dataset.Shape) []float32 {
			var mean float64
			for _, p := range img {
				mean += float64(p)
			}
			mean /= float64(len(img))
			return reference(sh, func(x, y, k int) float32 {
				p := float64(img[(y*sh.Width+x)*sh.Channels+k])
				v := math.Min(255, math.Max(0, (p-mean)*1.5+mean+20))
				return float32(v/127.5 - 1)
			})
		}},
		{"erase", rgb, draw{contrast: 1, erase: true, ex: 1, ey: 2, ew: 3, eh: 2}, func(img []byte, sh dataset.Shape) []float32 {
			return reference(sh, func(x, y, k int) float32 {
				if x >= 1 && x < 4 && y >= 2 && y < 4 {
					return 0
				}
				return at(img, sh, x, y, k)
			})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := testImage(tc.sh)
			d := tc.d
			d.finish()
			got := make([]float32, tc.sh.Bytes())
			Augment{Shape: tc.sh}.apply(got, img, arch.DefaultNormalization(tc.sh.Channels), d)
			if diff := cmp.Diff(tc.want(img, tc.sh), got, close4); diff != "" {
				t.Errorf("(-reference +got):\n%s", diff)
			}
		})
	}
}

// TestAugmentDraws: the draws are a function of (seed, epoch, index) only,
// stay in their declared ranges, and come at their declared rates; and the
// rotation and crop of 28×28 grey images draw what the trainer always drew
// for them (so a seed trains as it did).
func TestAugmentDraws(t *testing.T) {
	sh := dataset.Shape{Height: 20, Width: 16, Channels: 3}
	a := Augment{Shape: sh, Augmentation: runspec.Augmentation{RotationDegrees: 15, CropPadding: 3, HorizontalFlip: true,
		Brightness: 0.2, Contrast: 0.3, Erasing: 0.5}}
	img, norm := testImage(sh), arch.DefaultNormalization(sh.Channels)
	x, y := make([]float32, sh.Bytes()), make([]float32, sh.Bytes())
	a.Apply(x, img, norm, 1, 2, 3)
	a.Apply(y, img, norm, 1, 2, 3)
	if !slices.Equal(x, y) {
		t.Error("one (seed, epoch, index) gave two results")
	}
	for _, other := range [][3]int64{{2, 2, 3}, {1, 3, 3}, {1, 2, 4}} {
		a.Apply(y, img, norm, other[0], int(other[1]), other[2])
		if slices.Equal(x, y) {
			t.Errorf("(seed, epoch, index) %v gave the result of (1, 2, 3)", other)
		}
	}
	const n = 4000
	var flips, erases int
	for i := range int64(n) {
		d := a.draw(9, 0, i)
		if math.Abs(d.theta) > 15*math.Pi/180 || abs(d.dx) > 3 || abs(d.dy) > 3 ||
			math.Abs(d.contrast-1) > 0.3 || math.Abs(d.brightness) > 0.2*255 {
			t.Fatalf("draw %d out of range: %+v", i, d)
		}
		if d.flip {
			flips++
		}
		if d.erase {
			erases++
			area := float64(d.ew*d.eh) / float64(sh.Height*sh.Width)
			if d.ex < 0 || d.ey < 0 || d.ex+d.ew > sh.Width || d.ey+d.eh > sh.Height || area < 0.01 || area > 0.4 {
				t.Fatalf("erased rectangle %+v of a %s image", d, sh)
			}
		}
	}
	// Each is Binomial(4000, 1/2): 2000 ± 5 standard deviations (32).
	for name, k := range map[string]int{"flips": flips, "erases": erases} {
		if k < 1840 || k > 2160 {
			t.Errorf("%d %s in %d draws at probability 1/2", k, name, n)
		}
	}
	if a := (Augment{Shape: sh}); a.Enabled() || a.draw(1, 2, 3) != (draw{}) {
		t.Error("the zero augmentation draws")
	}

	// The 28×28 crop as the trainer drew it before it took any shape: an
	// angle first, then dx and dy.
	grey := dataset.Shape{Height: 28, Width: 28, Channels: 1}
	crop := Augment{Shape: grey, Augmentation: runspec.Augmentation{CropPadding: 4}}
	img = testImage(grey)
	got := make([]float32, grey.Bytes())
	for index := range int64(20) {
		crop.Apply(got, img, arch.DefaultNormalization(1), 1, 2, index)
		rng := rand.New(rand.NewPCG(uint64(1)^augmentStream, uint64(2)<<32|uint64(index)))
		rng.Float64()
		dx, dy := rng.IntN(9)-4, rng.IntN(9)-4
		want := reference(grey, func(x, y, k int) float32 { return at(img, grey, x+dx, y+dy, k) })
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("crop of sample %d (-reference +got):\n%s", index, diff)
		}
	}
}

func abs(v int) int { return max(v, -v) }

// TestAugmentDeclaredNormalization: with a declared per-channel mean and
// deviation, every augmentation gives the default's result mapped to that
// normalization channel by channel, and erasing sets the channel's mean.
func TestAugmentDeclaredNormalization(t *testing.T) {
	sh := dataset.Shape{Height: 6, Width: 6, Channels: 3}
	imagenet := arch.Normalization{Mean: []float64{0.485, 0.456, 0.406}, Std: []float64{0.229, 0.224, 0.225}}
	img := testImage(sh)
	for name, d := range map[string]draw{
		"none":        {contrast: 1},
		"geometric":   {contrast: 1, theta: 0.3, dx: 1, flip: true},
		"photometric": {contrast: 1.2, brightness: 9},
		"erase":       {contrast: 1, erase: true, ex: 1, ey: 2, ew: 3, eh: 2},
	} {
		t.Run(name, func(t *testing.T) {
			d.finish()
			def, got := make([]float32, sh.Bytes()), make([]float32, sh.Bytes())
			a := Augment{Shape: sh}
			a.apply(def, img, arch.DefaultNormalization(3), d)
			a.apply(got, img, imagenet, d)
			want := make([]float32, len(def))
			for i, v := range def {
				c := i % 3
				if v == 0 && d.erase && i/3%6 >= 1 && i/3%6 < 4 && i/18 >= 2 && i/18 < 4 {
					continue // erased: 0 in both
				}
				want[i] = float32((float64(v+1)/2 - imagenet.Mean[c]) / imagenet.Std[c])
			}
			if diff := cmp.Diff(want, got, close4); diff != "" {
				t.Errorf("(-default mapped +declared):\n%s", diff)
			}
		})
	}
}
