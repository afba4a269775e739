package frames

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/aerie-ml/aerie/edge/internal/modeltest"
	"github.com/aerie-ml/aerie/internal/dataset"
	"github.com/aerie-ml/aerie/internal/pixels"
)

// imageSet holds 28×28 grey test images.
type imageSet [][]byte

func (s imageSet) Image(i int) []byte { return s[i] }

// testImages are 120 synthetic labelled images, 12 of each class in turn.
func testImages() imageSet {
	images, _ := modeltest.Images(120, 5)
	return images
}

func grayOf(px []byte, w, h int) *image.Gray {
	return &image.Gray{Pix: px, Stride: w, Rect: image.Rect(0, 0, w, h)}
}

// grey28 is the input shape of the reference model.
var grey28 = dataset.Shape{Height: 28, Width: 28, Channels: 1}

// pixelsOf preprocesses f for a model of input shape.
func pixelsOf(f Frame, shape dataset.Shape) []byte {
	out := make([]byte, shape.Bytes())
	Preprocess(out, f.Image, shape, false)
	return out
}

func TestPreprocess(t *testing.T) {
	img := testImages().Image(0)
	src := grayOf(img, 28, 28)
	tests := []struct {
		name   string
		shape  dataset.Shape
		invert bool
		want   func() []byte
	}{
		{"same size", grey28, false, func() []byte { return img }},
		{"inverted", grey28, true, func() []byte {
			out := make([]byte, len(img))
			for i, p := range img {
				out[i] = 255 - p
			}
			return out
		}},
		{"grey to RGB", dataset.Shape{Height: 28, Width: 28, Channels: 3}, false, func() []byte {
			var out []byte
			for _, p := range img {
				out = append(out, p, p, p)
			}
			return out
		}},
		{"resized as ingest resizes", dataset.Shape{Height: 11, Width: 17, Channels: 3}, false, func() []byte {
			out := make([]byte, 11*17*3)
			pixels.Convert(out, src, dataset.Shape{Height: 11, Width: 17, Channels: 3})
			return out
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := make([]byte, tt.shape.Bytes())
			Preprocess(got, src, tt.shape, tt.invert)
			if diff := cmp.Diff(tt.want(), got); diff != "" {
				t.Errorf("Preprocess to %s (-want +got):\n%s", tt.shape, diff)
			}
		})
	}
}

func collect(t *testing.T, s Source) []Frame {
	t.Helper()
	var out []Frame
	for {
		f, err := s.Next(context.Background())
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, f)
	}
}

func TestFileSources(t *testing.T) {
	ctx := context.Background()
	images, labels := modeltest.Images(3, 5)
	dir := t.TempDir()
	for i, img := range images {
		var b bytes.Buffer
		png.Encode(&b, grayOf(img, 28, 28))
		os.WriteFile(filepath.Join(dir, string(rune('a'+i))+".png"), b.Bytes(), 0o644)
	}
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("ignored"), 0o644)
	uri := modeltest.Dataset(t, images, labels)
	open := map[string]func(Options) (Source, error){
		"dir":     func(o Options) (Source, error) { return OpenDir(dir, o) },
		"dataset": func(o Options) (Source, error) { return OpenDataset(ctx, uri, o) },
	}
	for name, open := range open {
		t.Run(name, func(t *testing.T) {
			s, err := open(Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			got := collect(t, s)
			if len(got) != 3 {
				t.Fatalf("%d frames, want 3", len(got))
			}
			for i, f := range got {
				if !bytes.Equal(pixelsOf(f, grey28), images[i]) {
					t.Errorf("frame %d (%s) differs from image %d", i, f.Name, i)
				}
			}
			// Loop replays.
			l, err := open(Options{Loop: true})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			for i := range 7 {
				f, err := l.Next(ctx)
				if err != nil || !bytes.Equal(pixelsOf(f, grey28), images[i%3]) {
					t.Fatalf("looped frame %d: %v", i, err)
				}
			}
		})
	}
}

// TestDatasetSourceColour reads a colour dataset's samples as RGB frames.
func TestDatasetSourceColour(t *testing.T) {
	ctx := context.Background()
	shape := dataset.Shape{Height: 5, Width: 7, Channels: 3}
	px := make([]byte, shape.Bytes())
	for i := range px {
		px[i] = byte(i * 5)
	}
	uri := modeltest.DatasetOf(t, "colour", []string{"red", "blue"}, shape, [][]byte{px}, []int{1})
	s, err := OpenDataset(ctx, uri, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := collect(t, s)
	if len(got) != 1 || !bytes.Equal(pixelsOf(got[0], shape), px) {
		t.Errorf("colour sample did not come back as its RGB pixels")
	}
}

func TestOpenDatasetErrors(t *testing.T) {
	ctx := context.Background()
	images, labels := modeltest.Images(2, 5)
	uri := modeltest.Dataset(t, images, labels)
	other := strings.TrimSuffix(uri, "/")
	other = other[:len(other)-64] + strings.Repeat("0", 64) + "/"
	for _, tt := range []struct{ name, uri, want string }{
		{"no digest", strings.TrimSuffix(uri, "/")[:len(uri)-66], "want the root ingest prints"},
		{"unknown digest", other, other},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := OpenDataset(ctx, tt.uri, Options{}); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("OpenDataset(%s) = %v, want an error containing %q", tt.uri, err, tt.want)
			}
		})
	}
}

func jpegOf(t testing.TB, img image.Image) []byte {
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// withThumbnail inserts an APP1 segment holding a complete small JPEG
// (as EXIF thumbnails are), whose FF D9 must not end the frame.
func withThumbnail(t testing.TB, j, thumb []byte) []byte {
	seg := append([]byte{0xFF, 0xE1, byte((len(thumb) + 2) >> 8), byte(len(thumb) + 2)}, thumb...)
	return append(append(append([]byte{}, j[:2]...), seg...), j[2:]...)
}

func TestMJPEG(t *testing.T) {
	set := testImages()
	var stream bytes.Buffer
	stream.WriteString("junk before the first frame")
	var want [][]byte
	for i := range 4 {
		img := set.Image(i * 30) // one per class
		big := image.NewGray(image.Rect(0, 0, 56, 56))
		for y := range 56 {
			for x := range 56 {
				big.Pix[y*56+x] = img[(y/2)*28+x/2]
			}
		}
		j := jpegOf(t, big)
		if i == 2 {
			j = withThumbnail(t, j, jpegOf(t, grayOf(img, 28, 28)))
		}
		stream.Write(j)
		want = append(want, img)
	}
	m := NewMJPEG(&stream, nil)
	got := collect(t, m)
	if len(got) != len(want) {
		t.Fatalf("%d frames, want %d", len(got), len(want))
	}
	for i := range got {
		// JPEG is lossy: compare the mean absolute error.
		var sum int
		px := pixelsOf(got[i], grey28)
		for k := range want[i] {
			d := int(px[k]) - int(want[i][k])
			sum += max(d, -d)
		}
		if mae := float64(sum) / 784; mae > 6 {
			t.Errorf("frame %d: mean abs error %.1f", i, mae)
		}
	}
	// A truncated last frame is an error, not a silent frame.
	j := jpegOf(t, grayOf(set.Image(0), 28, 28))
	s := NewSplitter(bytes.NewReader(append(append([]byte{}, j...), j[:len(j)/2]...)))
	if _, err := s.Next(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated frame: %v, want io.ErrUnexpectedEOF", err)
	}
}

func FuzzSplitter(f *testing.F) {
	set := testImages()
	j := jpegOf(f, grayOf(set.Image(0), 28, 28))
	f.Add(j)
	f.Add(append(append([]byte("xx"), j...), j...))
	f.Add(withThumbnail(f, j, j))
	f.Add([]byte{0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02, 0xFF, 0x00, 0xFF, 0xD0, 0xFF, 0xD9})
	f.Fuzz(func(t *testing.T, data []byte) {
		s := NewSplitter(bytes.NewReader(data))
		total := 0
		for {
			b, err := s.Next()
			if err != nil {
				return
			}
			if len(b) < 4 || b[0] != 0xFF || b[1] != 0xD8 || b[len(b)-2] != 0xFF || b[len(b)-1] != 0xD9 {
				t.Fatalf("frame % x does not run SOI…EOI", b)
			}
			if total += len(b); total > len(data) {
				t.Fatalf("frames total %d bytes from %d input bytes", total, len(data))
			}
			jpeg.Decode(bytes.NewReader(b)) // must not panic
		}
	})
}

func TestV4L2(t *testing.T) {
	dev := os.Getenv("AERIE_TEST_V4L2")
	if dev == "" {
		dev = "/dev/video0"
	}
	if _, err := os.Stat(dev); err != nil {
		t.Skipf("no V4L2 camera at %s (set AERIE_TEST_V4L2 to a /dev/videoN that captures MJPEG): %v", dev, err)
	}
	v, err := OpenV4L2(dev, 640, 480)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	for range 3 {
		f, err := v.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if b := f.Image.Bounds(); b.Dx() == 0 || b.Dy() == 0 {
			t.Fatalf("frame %s is %v", f.Name, b)
		}
	}
}

// TestSameTensorsAsIngest preprocesses the images that
// tools/aerie/internal/ingest's TestPixelsGolden ingests (odd sizes, grey
// and colour, PNG and JPEG, one a class) and wants the very bytes ingest
// stored: a model sees on the device what it was trained on.
func TestSameTensorsAsIngest(t *testing.T) {
	const testdata = "../../../internal/pixels/testdata"
	for _, channels := range []int{1, 3} {
		t.Run(fmt.Sprint(channels), func(t *testing.T) {
			shape := dataset.Shape{Height: 17, Width: 13, Channels: channels}
			classes, err := filepath.Glob(filepath.Join(testdata, "imagefolder/train/*"))
			if err != nil {
				t.Fatal(err)
			}
			var got []byte
			for _, class := range classes {
				d, err := OpenDir(class, Options{})
				if err != nil {
					t.Fatal(err)
				}
				for _, f := range collect(t, d) {
					got = append(got, pixelsOf(f, shape)...)
				}
			}
			want, err := os.ReadFile(filepath.Join(testdata, fmt.Sprintf("ingested-17x13x%d.u8", channels)))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 5*shape.Bytes() || !bytes.Equal(got, want) {
				t.Errorf("preprocessed %d bytes that differ from ingest's %d", len(got), len(want))
			}
		})
	}
}
