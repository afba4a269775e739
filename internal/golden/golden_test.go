package golden

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"testing"

	"github.com/aerie-ml/aerie/internal/fmnist"
)

var update = flag.Bool("update", false, "rewrite the embedded golden set from "+fmnist.DebianDir)

// TestGenerate rebuilds the golden files from the real test split and, without
// -update, checks that the embedded ones are exactly what it would write.
func TestGenerate(t *testing.T) {
	if _, err := os.Stat(fmnist.DebianDir); err != nil {
		t.Skipf("%s not installed (Debian package dataset-fashion-mnist): %v", fmnist.DebianDir, err)
	}
	// Only the test split: the golden set must never contain training images.
	test, err := readTest(os.DirFS(fmnist.DebianDir))
	if err != nil {
		t.Fatal(err)
	}
	set, err := Select(test, PerClass)
	if err != nil {
		t.Fatal(err)
	}
	var images, labels bytes.Buffer
	for _, w := range []struct {
		buf   *bytes.Buffer
		write func(*gzip.Writer) error
	}{
		{&images, func(z *gzip.Writer) error { return fmnist.WriteImages(z, set.Images, set.Rows, set.Cols) }},
		{&labels, func(z *gzip.Writer) error { return fmnist.WriteLabels(z, set.Labels) }},
	} {
		z, _ := gzip.NewWriterLevel(w.buf, gzip.BestCompression)
		if err := w.write(z); err != nil {
			t.Fatal(err)
		}
		if err := z.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if *update {
		if err := os.WriteFile(ImagesFile, images.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(LabelsFile, labels.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := Set()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Images, set.Images) || !bytes.Equal(got.Labels, set.Labels) {
		t.Error("embedded golden set differs from the one generated from the test split; run go test ./internal/golden -run TestGenerate -update")
	}
}

func readTest(fsys fs.FS) (*fmnist.Split, error) {
	var s fmnist.Split
	for _, base := range []string{fmnist.TestImages, fmnist.TestLabels} {
		name, err := fmnist.Resolve(fsys, base)
		if err != nil {
			return nil, err
		}
		f, err := fsys.Open(name)
		if err != nil {
			return nil, err
		}
		if base == fmnist.TestImages {
			s.Images, _, s.Rows, s.Cols, err = fmnist.ReadImages(f)
		} else {
			s.Labels, err = fmnist.ReadLabels(f)
		}
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	return &s, nil
}

func TestSetBalanced(t *testing.T) {
	set, err := Set()
	if err != nil {
		t.Fatal(err)
	}
	count := make([]int, fmnist.NumClasses)
	for _, l := range set.Labels {
		count[l]++
	}
	for c, n := range count {
		if n != PerClass {
			t.Errorf("class %d: %d images, want %d", c, n, PerClass)
		}
	}
}

func TestSelfTest(t *testing.T) {
	set, err := Set()
	if err != nil {
		t.Fatal(err)
	}
	// A classifier that knows the answers except for every image of class 0.
	byImage := map[string]int{}
	for i := range set.Len() {
		byImage[string(set.Image(i))] = int(set.Labels[i])
	}
	classify := func(ctx context.Context, images [][]byte) ([]int, error) {
		out := make([]int, len(images))
		for i, im := range images {
			out[i] = byImage[string(im)]
			if out[i] == 0 {
				out[i] = 1
			}
		}
		return out, nil
	}
	r, err := SelfTest(context.Background(), classify, 0.9)
	if err != nil {
		t.Fatalf("SelfTest(0.9) = %v", err)
	}
	if r.Accuracy != 0.9 || r.Classes[0].Accuracy != 0 || r.Classes[1].Accuracy != 1 || r.Classes[0].Class != "T-shirt/top" {
		t.Errorf("SelfTest = %+v", r)
	}
	if _, err := SelfTest(context.Background(), classify, 0.95); !errors.Is(err, ErrBelowMinimum) {
		t.Errorf("SelfTest(0.95) error = %v, want ErrBelowMinimum", err)
	}
	short := func(ctx context.Context, images [][]byte) ([]int, error) { return []int{1}, nil }
	if _, err := SelfTest(context.Background(), short, 0.5); err == nil {
		t.Error("SelfTest with a short answer = nil error")
	}
}
