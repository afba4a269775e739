package data

import (
	"math"
	"math/rand/v2"

	"github.com/aerie-ml/aerie/internal/arch"
	"github.com/aerie-ml/aerie/internal/dataset"
	"github.com/aerie-ml/aerie/internal/runspec"
)

// Augment is the random augmentation of training images of one shape, as a
// run declares it (runspec.Augmentation), applied in this order:
//
//  1. rotation by a uniform angle in ±RotationDegrees about the image's
//     centre and a shift of up to CropPadding pixels each way (a random
//     crop of the image padded with black), in one bilinear resampling;
//  2. a horizontal flip with probability 1/2;
//  3. contrast: each pixel's deviation from the image's mean (over all
//     pixels and channels) scaled by a uniform factor in 1 ± Contrast;
//  4. brightness: a uniform shift in ±Brightness×255, then clamping to
//     [0, 255], and the model's normalization (arch.Normalization, as
//     model.Classify applies it);
//  5. with probability Erasing, a random rectangle (2–33% of the area,
//     aspect ratio 0.3–3.3, as torchvision's RandomErasing) set to 0, the
//     channel's mean once normalized, in every channel.
//
// The draws come from one generator seeded by the seed, the epoch and the
// sample's index in its split, in a fixed sequence (rotation, crop, then
// the other augmentations that are on), so they depend on neither batching
// nor the world size. The zero Augmentation only normalizes.
type Augment struct {
	runspec.Augmentation
	Shape dataset.Shape
}

// draw is one sample's random choices.
type draw struct {
	theta       float64 // radians
	dx, dy      int
	flip        bool
	contrast    float64 // factor
	brightness  float64 // added, in pixel units
	erase       bool
	ex, ey      int // erased rectangle's corner
	ew, eh      int // and size
	photometric bool
	geometric   bool
}

// Erasing's rectangle, as torchvision's RandomErasing defaults.
const (
	eraseMinArea, eraseMaxArea     = 0.02, 0.33
	eraseMinAspect, eraseMaxAspect = 0.3, 1 / 0.3
	eraseAttempts                  = 10
)

// Enabled reports whether a does anything beyond normalizing.
func (a Augment) Enabled() bool { return a.Augmentation != runspec.Augmentation{} }

func (a Augment) draw(seed int64, epoch int, index int64) draw {
	var d draw
	if !a.Enabled() {
		return d
	}
	rng := rand.New(rand.NewPCG(uint64(seed)^augmentStream, uint64(epoch)<<32|uint64(index)))
	d.theta = (2*rng.Float64() - 1) * a.RotationDegrees * math.Pi / 180
	if p := a.CropPadding; p > 0 {
		d.dx = rng.IntN(2*p+1) - p
		d.dy = rng.IntN(2*p+1) - p
	}
	if a.HorizontalFlip {
		d.flip = rng.IntN(2) == 1
	}
	d.contrast = 1
	if a.Contrast > 0 {
		d.contrast = 1 + (2*rng.Float64()-1)*a.Contrast
	}
	if a.Brightness > 0 {
		d.brightness = (2*rng.Float64() - 1) * a.Brightness * 255
	}
	if a.Erasing > 0 && rng.Float64() < a.Erasing {
		h, w := a.Shape.Height, a.Shape.Width
		for range eraseAttempts {
			area := float64(h*w) * (eraseMinArea + rng.Float64()*(eraseMaxArea-eraseMinArea))
			aspect := math.Exp(math.Log(eraseMinAspect) + rng.Float64()*(math.Log(eraseMaxAspect)-math.Log(eraseMinAspect)))
			eh := int(math.Round(math.Sqrt(area * aspect)))
			ew := int(math.Round(math.Sqrt(area / aspect)))
			if eh >= 1 && ew >= 1 && eh < h && ew < w {
				d.erase, d.eh, d.ew = true, eh, ew
				d.ey, d.ex = rng.IntN(h-eh+1), rng.IntN(w-ew+1)
				break
			}
		}
	}
	d.finish()
	return d
}

func (d *draw) finish() {
	d.geometric = d.theta != 0 || d.dx != 0 || d.dy != 0 || d.flip
	d.photometric = d.contrast != 1 || d.brightness != 0
}

// Apply writes img (Shape.Bytes() pixels, HWC) augmented for the sample
// index of epoch, and normalized by norm, into dst.
func (a Augment) Apply(dst []float32, img []byte, norm arch.Normalization, seed int64, epoch int, index int64) {
	a.apply(dst, img, norm, a.draw(seed, epoch, index))
}

func (a Augment) apply(dst []float32, img []byte, norm arch.Normalization, d draw) {
	if !d.geometric && !d.photometric && !d.erase {
		norm.Apply(dst, img)
		return
	}
	h, w, c := a.Shape.Height, a.Shape.Width, a.Shape.Channels
	dst = dst[:h*w*c]
	if d.geometric {
		a.resample(dst, img, d)
	} else {
		for i, p := range img {
			dst[i] = float32(p)
		}
	}
	if d.photometric {
		var mean float64
		if d.contrast != 1 {
			for _, v := range dst {
				mean += float64(v)
			}
			mean /= float64(len(dst))
		}
		for i, v := range dst {
			x := (float64(v)-mean)*d.contrast + mean + d.brightness
			dst[i] = float32(min(255, max(0, x)))
		}
	}
	norm.ApplyValues(dst)
	if d.erase {
		for y := d.ey; y < d.ey+d.eh; y++ {
			clear(dst[(y*w+d.ex)*c : (y*w+d.ex+d.ew)*c])
		}
	}
}

// resample writes the rotated, shifted and flipped image, in pixel units,
// into dst: output pixel (x, y) is the shifted, rotated image's pixel
// (x', y+dy) with x' = x+dx, or W-1-x+dx when flipped; that one is the
// source sampled bilinearly at the inverse rotation about the centre,
// black outside.
func (a Augment) resample(dst []float32, img []byte, d draw) {
	h, w, c := a.Shape.Height, a.Shape.Width, a.Shape.Channels
	srcX := func(x int) int {
		if d.flip {
			x = w - 1 - x
		}
		return x + d.dx
	}
	if d.theta == 0 {
		// Whole-pixel moves: what bilinear gives at whole coordinates.
		for y := range h {
			sy := y + d.dy
			for x := range w {
				sx := srcX(x)
				out := dst[(y*w+x)*c : (y*w+x+1)*c]
				if sx < 0 || sx >= w || sy < 0 || sy >= h {
					clear(out)
					continue
				}
				for k, p := range img[(sy*w+sx)*c : (sy*w+sx+1)*c] {
					out[k] = float32(p)
				}
			}
		}
		return
	}
	sin, cos := math.Sincos(d.theta)
	cx, cy := float64(w-1)/2, float64(h-1)/2
	for y := range h {
		for x := range w {
			u, v := float64(srcX(x))-cx, float64(y+d.dy)-cy
			sx, sy := cos*u+sin*v+cx, -sin*u+cos*v+cy
			for k := range c {
				dst[(y*w+x)*c+k] = float32(bilinear(img, h, w, c, k, sx, sy))
			}
		}
	}
}

// bilinear samples channel k of img (h×w×c) at (x, y), black outside.
func bilinear(img []byte, h, w, c, k int, x, y float64) float64 {
	x0, y0 := math.Floor(x), math.Floor(y)
	fx, fy := x-x0, y-y0
	ix, iy := int(x0), int(y0)
	at := func(x, y int) float64 {
		if x < 0 || x >= w || y < 0 || y >= h {
			return 0
		}
		return float64(img[(y*w+x)*c+k])
	}
	return (1-fy)*((1-fx)*at(ix, iy)+fx*at(ix+1, iy)) + fy*((1-fx)*at(ix, iy+1)+fx*at(ix+1, iy+1))
}
