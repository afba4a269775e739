package report

import (
	"bytes"
	"flag"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aerie-ml/aerie/internal/fmnist"
	"github.com/aerie-ml/aerie/internal/manifest"
)

var out = flag.String("out", "", "also write the rendered card and images to this directory, for people to look at")

// keep writes a rendered file to -out.
func keep(t *testing.T, name string, data []byte) {
	t.Helper()
	if *out == "" {
		return
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(*out, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCurves(t *testing.T) {
	tests := []struct {
		name   string
		epochs []manifest.Epoch
	}{
		{"ten epochs", sample().Metrics.Epochs},
		{"one epoch", sample().Metrics.Epochs[:1]},
		{"no epochs", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := sample().Metrics
			m.Epochs = tt.epochs
			b, err := Curves(m)
			if err != nil {
				t.Fatalf("Curves() error = %v", err)
			}
			img, err := png.Decode(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("Curves() is not a PNG: %v", err)
			}
			if got := img.Bounds().Size(); got.X != 9*dpi || got.Y < 3*dpi {
				t.Errorf("Curves() size = %v, want %d wide and at least %d high", got, 9*dpi, 3*dpi)
			}
			keep(t, "curves-"+strings.ReplaceAll(tt.name, " ", "-")+".png", b)
		})
	}
}

func TestConfusion(t *testing.T) {
	m := sample().Metrics
	b, err := Confusion(m, fmnist.Classes[:])
	if err != nil {
		t.Fatalf("Confusion() error = %v", err)
	}
	if _, err := png.Decode(bytes.NewReader(b)); err != nil {
		t.Fatalf("Confusion() is not a PNG: %v", err)
	}
	keep(t, "confusion.png", b)

	m.Confusion = [][]float64{{1, 0}, {0.5}}
	if _, err := Confusion(m, nil); err == nil || !strings.Contains(err.Error(), "row 1 has 1 columns, want 2") {
		t.Errorf("Confusion() of a ragged matrix error = %v, want it to name row 1", err)
	}
	m.Confusion = nil
	if _, err := Confusion(m, nil); err == nil {
		t.Error("Confusion() without a matrix error = nil, want an error")
	}
}
