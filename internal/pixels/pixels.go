// Package pixels turns decoded images into the uint8 pixels of a dataset
// shape: what ingest stores and what a device feeds its model. Ingest and
// the edge agent both call Convert, so a model sees on the device exactly
// what it saw in training.
package pixels

import (
	"image"
	"image/color"
	"image/draw"

	xdraw "golang.org/x/image/draw"

	"github.com/aerie-ml/aerie/internal/dataset"
)

// IsGrey reports whether images of model m are grey: the decoder says so
// (grey PNGs and JPEGs). Paletted images count as colour.
func IsGrey(m color.Model) bool { return m == color.GrayModel || m == color.Gray16Model }

// cropRect is the centred part of a w×h source that has the target's
// aspect ratio: scaling it to H×W is the same as scaling the shorter side to
// the target's and cropping the centre.
func cropRect(b image.Rectangle, h, w int) image.Rectangle {
	sw, sh := b.Dx(), b.Dy()
	// Keep the largest cw×ch with cw/ch = w/h inside sw×sh.
	cw, ch := sw, sw*h/w
	if ch > sh {
		cw, ch = sh*w/h, sh
	}
	cw, ch = max(cw, 1), max(ch, 1)
	x0 := b.Min.X + (sw-cw)/2
	y0 := b.Min.Y + (sh-ch)/2
	return image.Rect(x0, y0, x0+cw, y0+ch)
}

// Convert writes src as shape's H×W×C uint8 pixels (HWC) into dst
// (shape.Bytes() long): resized with Catmull-Rom (shorter side to the
// target, centre crop) unless it already has the target size, colour to
// grey by the ITU-R BT.601 luma that image/color uses, grey to colour by
// copying, transparency over black.
func Convert(dst []byte, src image.Image, shape dataset.Shape) {
	h, w, channels := shape.Height, shape.Width, shape.Channels
	b := src.Bounds()
	if g, ok := src.(*image.Gray); ok && channels == 1 && b.Dx() == w && b.Dy() == h {
		for y := range h {
			off := g.PixOffset(b.Min.X, b.Min.Y+y)
			copy(dst[y*w:(y+1)*w], g.Pix[off:off+w])
		}
		return
	}
	rgba := image.NewRGBA(image.Rect(0, 0, w, h))
	if b.Dx() == w && b.Dy() == h {
		draw.Draw(rgba, rgba.Bounds(), src, b.Min, draw.Src)
	} else {
		xdraw.CatmullRom.Scale(rgba, rgba.Bounds(), src, cropRect(b, h, w), xdraw.Src, nil)
	}
	pix := rgba.Pix
	if channels == 3 {
		for i := range w * h {
			copy(dst[3*i:3*i+3], pix[4*i:4*i+3])
		}
		return
	}
	for i := range w * h {
		r, g, bl := uint32(pix[4*i]), uint32(pix[4*i+1]), uint32(pix[4*i+2])
		dst[i] = uint8((19595*r + 38470*g + 7471*bl + 1<<15) >> 16)
	}
}
