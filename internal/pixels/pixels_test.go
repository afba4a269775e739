package pixels

import (
	"image"
	"image/color"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/aerie-ml/aerie/internal/dataset"
)

func TestCropRect(t *testing.T) {
	tests := []struct {
		src  image.Rectangle
		h, w int
		want image.Rectangle
	}{
		{image.Rect(0, 0, 40, 30), 16, 16, image.Rect(5, 0, 35, 30)},   // landscape: centre square
		{image.Rect(0, 0, 30, 50), 16, 16, image.Rect(0, 10, 30, 40)},  // portrait
		{image.Rect(0, 0, 64, 64), 32, 64, image.Rect(0, 16, 64, 48)},  // wide target
		{image.Rect(10, 10, 20, 20), 4, 4, image.Rect(10, 10, 20, 20)}, // offset bounds kept
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, cropRect(tt.src, tt.h, tt.w)); diff != "" {
			t.Errorf("cropRect(%v, %d, %d) (-want +got):\n%s", tt.src, tt.h, tt.w, diff)
		}
	}
}

func TestPixels(t *testing.T) {
	// A 4×2 image whose left half is red and right half blue, at its own
	// size: copied, in HWC order.
	src := image.NewRGBA(image.Rect(0, 0, 4, 2))
	for y := range 2 {
		for x := range 4 {
			c := color.RGBA{255, 0, 0, 255}
			if x >= 2 {
				c = color.RGBA{0, 0, 255, 255}
			}
			src.Set(x, y, c)
		}
	}
	rgb := make([]byte, 2*4*3)
	Convert(rgb, src, dataset.Shape{Height: 2, Width: 4, Channels: 3})
	want := []byte{255, 0, 0, 255, 0, 0, 0, 0, 255, 0, 0, 255, 255, 0, 0, 255, 0, 0, 0, 0, 255, 0, 0, 255}
	if diff := cmp.Diff(want, rgb); diff != "" {
		t.Errorf("RGB at the same size (-want +got):\n%s", diff)
	}
	// To grey: the BT.601 luma of image/color.
	grey := make([]byte, 8)
	Convert(grey, src, dataset.Shape{Height: 2, Width: 4, Channels: 1})
	r := color.GrayModel.Convert(color.RGBA{255, 0, 0, 255}).(color.Gray).Y
	b := color.GrayModel.Convert(color.RGBA{0, 0, 255, 255}).(color.Gray).Y
	if diff := cmp.Diff([]byte{r, r, b, b, r, r, b, b}, grey); diff != "" {
		t.Errorf("grey (-want +got):\n%s", diff)
	}
	// Centre crop of the shorter side: 2×2 from the middle of 4×2 is half
	// red, half blue; resized to 1×1 it blends both.
	one := make([]byte, 3)
	Convert(one, src, dataset.Shape{Height: 1, Width: 1, Channels: 3})
	if one[0] < 100 || one[0] > 160 || one[2] < 100 || one[2] > 160 || one[1] != 0 {
		t.Errorf("1×1 centre crop of red|blue = %v, want a purple between them", one)
	}
	// Grey source, grey target, same size: copied through the fast path.
	g := &image.Gray{Pix: []byte{1, 2, 3, 4, 5, 6}, Stride: 3, Rect: image.Rect(0, 0, 3, 2)}
	out := make([]byte, 6)
	Convert(out, g, dataset.Shape{Height: 2, Width: 3, Channels: 1})
	if diff := cmp.Diff(g.Pix, out); diff != "" {
		t.Errorf("grey copy (-want +got):\n%s", diff)
	}
}
