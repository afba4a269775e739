package data

import (
	"math"
	"math/rand/v2"
)

// Augment is the random augmentation of training images: a rotation by a
// uniform angle in ±RotationDegrees, then a random 28×28 crop of the image
// padded by CropPadding pixels (a shift of up to CropPadding pixels in each
// direction, filled with black). The zero value does nothing.
type Augment struct {
	RotationDegrees float64
	CropPadding     int
}

// Enabled reports whether a does anything.
func (a Augment) Enabled() bool { return a.RotationDegrees != 0 || a.CropPadding != 0 }

// Apply writes img (784 pixels) augmented and normalized to [-1, 1] into
// dst. The random draws depend only on seed, epoch and the example's index
// in the training set, so they do not depend on batching or ranks.
func (a Augment) Apply(dst []float32, img []byte, seed int64, epoch, index int) {
	if !a.Enabled() {
		normalize(dst, img)
		return
	}
	rng := rand.New(rand.NewPCG(uint64(seed)^augmentStream, uint64(epoch)<<32|uint64(index)))
	theta := (2*rng.Float64() - 1) * a.RotationDegrees * math.Pi / 180
	dx, dy := 0, 0
	if a.CropPadding > 0 {
		dx = rng.IntN(2*a.CropPadding+1) - a.CropPadding
		dy = rng.IntN(2*a.CropPadding+1) - a.CropPadding
	}
	if theta == 0 {
		shift(dst, img, dx, dy)
		return
	}
	sin, cos := math.Sincos(theta)
	const c = 13.5 // rotation centre
	for y := range 28 {
		for x := range 28 {
			// Output pixel (x, y) is the rotated image's pixel (x+dx, y+dy);
			// that one is the source sampled at the inverse rotation.
			u, v := float64(x+dx)-c, float64(y+dy)-c
			sx, sy := cos*u+sin*v+c, -sin*u+cos*v+c
			dst[y*28+x] = float32(bilinear(img, sx, sy))/127.5 - 1
		}
	}
}

// shift is Apply without rotation: output pixel (x, y) is img's pixel
// (x+dx, y+dy), black outside; what bilinear gives at whole coordinates.
func shift(dst []float32, img []byte, dx, dy int) {
	for y := range 28 {
		for x := range 28 {
			sx, sy := x+dx, y+dy
			if sx < 0 || sx >= 28 || sy < 0 || sy >= 28 {
				dst[y*28+x] = -1
			} else {
				dst[y*28+x] = float32(img[sy*28+sx])/127.5 - 1
			}
		}
	}
}

// bilinear samples img at (x, y), black outside.
func bilinear(img []byte, x, y float64) float64 {
	x0, y0 := math.Floor(x), math.Floor(y)
	fx, fy := x-x0, y-y0
	ix, iy := int(x0), int(y0)
	at := func(x, y int) float64 {
		if x < 0 || x >= 28 || y < 0 || y >= 28 {
			return 0
		}
		return float64(img[y*28+x])
	}
	return (1-fy)*((1-fx)*at(ix, iy)+fx*at(ix+1, iy)) + fy*((1-fx)*at(ix, iy+1)+fx*at(ix+1, iy+1))
}

func normalize(dst []float32, img []byte) {
	for i, p := range img {
		dst[i] = float32(p)/127.5 - 1
	}
}
