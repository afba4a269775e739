package ingest

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func idxImages(t testing.TB, px []byte, rows, cols int) []byte {
	var b bytes.Buffer
	if err := WriteIDXImages(&b, px, rows, cols); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestReadImages(t *testing.T) {
	px := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	good := idxImages(t, px, 2, 3)
	images, n, rows, cols, err := readImages(good)
	if err != nil || n != 2 || rows != 2 || cols != 3 {
		t.Fatalf("readImages = %d images of %dx%d, %v; want 2 of 2x3", n, rows, cols, err)
	}
	if diff := cmp.Diff(px, images); diff != "" {
		t.Errorf("pixels (-want +got):\n%s", diff)
	}
	for _, tt := range []struct {
		name string
		b    []byte
		want string
	}{
		{"truncated", good[:len(good)-1], "header says 2 images of 2x3, the file holds 11 pixel bytes"},
		{"trailing", append(append([]byte{}, good...), 0), "the file holds 13 pixel bytes"},
		{"labels", []byte{0, 0, 8, 1, 0, 0, 0, 0}, "not an IDX3 file"},
		{"zero", []byte{0, 0, 8, 3, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 3}, "a dimension is 0"},
		{"huge", []byte{0, 0, 8, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1}, "the file holds 1 pixel bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, _, _, err := readImages(tt.b); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("readImages = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func FuzzReadIDX(f *testing.F) {
	f.Add(idxImages(f, []byte{1, 2, 3, 4}, 2, 2))
	var labels bytes.Buffer
	WriteIDXLabels(&labels, []byte{0, 9, 3})
	f.Add(labels.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		if images, n, rows, cols, err := readImages(b); err == nil && len(images) != n*rows*cols {
			t.Fatalf("%d pixel bytes for %d images of %dx%d", len(images), n, rows, cols)
		}
		if l, err := readLabels(b, 10); err == nil {
			for i, c := range l {
				if c >= 10 {
					t.Fatalf("label %d is %d", i, c)
				}
			}
		}
	})
}
