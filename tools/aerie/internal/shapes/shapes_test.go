package shapes

import (
	"bytes"
	"image"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestGenerate checks the tree: both splits, every class, PNG and JPEG
// that decode to varying sizes within the limits, and the same bytes for
// the same seed.
func TestGenerate(t *testing.T) {
	o := Options{Seed: 7, TrainPerClass: 6, TestPerClass: 2}
	a, b := t.TempDir(), t.TempDir()
	n, err := Generate(a, o)
	if err != nil {
		t.Fatal(err)
	}
	if want := len(Classes) * 8; n != want {
		t.Errorf("Generate wrote %d images, want %d", n, want)
	}
	if _, err := Generate(b, o); err != nil {
		t.Fatal(err)
	}
	exts, sizes := map[string]int{}, map[image.Point]bool{}
	var names []string
	for _, split := range []string{"train", "test"} {
		for _, c := range Classes {
			files, err := os.ReadDir(filepath.Join(a, split, c.Name))
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range files {
				rel := filepath.Join(split, c.Name, f.Name())
				names = append(names, rel)
				x, err := os.ReadFile(filepath.Join(a, rel))
				if err != nil {
					t.Fatal(err)
				}
				y, err := os.ReadFile(filepath.Join(b, rel))
				if err != nil || !bytes.Equal(x, y) {
					t.Errorf("%s differs between two runs of seed %d (%v)", rel, o.Seed, err)
				}
				cfg, format, err := image.DecodeConfig(bytes.NewReader(x))
				if err != nil {
					t.Fatalf("%s: %v", rel, err)
				}
				exts[format+strings.ToLower(filepath.Ext(rel))]++
				if cfg.Width < MinSide || cfg.Width > MaxSide || cfg.Height < MinSide || cfg.Height > MaxSide {
					t.Errorf("%s is %dx%d, outside %d–%d", rel, cfg.Width, cfg.Height, MinSide, MaxSide)
				}
				sizes[image.Pt(cfg.Width, cfg.Height)] = true
			}
		}
	}
	if exts["png.png"] == 0 || exts["jpeg.jpg"] == 0 || len(exts) != 2 {
		t.Errorf("formats by extension %v, want both png and jpeg, each with its own extension", exts)
	}
	if len(sizes) < 10 {
		t.Errorf("%d distinct image sizes in %d images, want them to vary", len(sizes), len(names))
	}
	if _, err := Generate(a, o); err == nil {
		t.Error("Generate into a non-empty directory succeeded")
	}
}

// TestClassesNeedColourAndShape checks that no colour and no shape alone
// names a class: each colour has two shapes and each shape two colours.
func TestClassesNeedColourAndShape(t *testing.T) {
	byColour, byShape := map[string][]string{}, map[string][]string{}
	for _, c := range Classes {
		colour, shape, _ := strings.Cut(c.Name, "-")
		byColour[colour] = append(byColour[colour], shape)
		byShape[shape] = append(byShape[shape], colour)
	}
	for _, m := range []map[string][]string{byColour, byShape} {
		for k, v := range m {
			if len(v) < 2 {
				t.Errorf("%s comes only as %v: it alone names the class", k, v)
			}
		}
	}
	if got := len(Classes); got < 5 {
		t.Errorf("%d classes, want at least 5", got)
	}
	if !slices.IsSortedFunc(Classes, func(a, b Class) int { return strings.Compare(a.Name, b.Name) }) {
		t.Error("Classes are not in directory order")
	}
}

// TestShapesDiffer: any two shapes of one colour differ in at least 40% of
// the pixels either covers (1 - intersection/union of their masks), so a
// model tells them apart by outline.
func TestShapesDiffer(t *testing.T) {
	const n = 200
	mask := func(s Shape) []bool {
		m := make([]bool, n*n)
		for y := range n {
			for x := range n {
				m[y*n+x] = s((float64(x)+0.5)/n*2-1, (float64(y)+0.5)/n*2-1)
			}
		}
		return m
	}
	byColour := map[string][]Class{}
	for _, c := range Classes {
		colour, _, _ := strings.Cut(c.Name, "-")
		byColour[colour] = append(byColour[colour], c)
	}
	for colour, cs := range byColour {
		for i := range cs {
			for j := i + 1; j < len(cs); j++ {
				a, b := mask(cs[i].Shape), mask(cs[j].Shape)
				var inter, union int
				for k := range a {
					if a[k] && b[k] {
						inter++
					}
					if a[k] || b[k] {
						union++
					}
				}
				if d := 1 - float64(inter)/float64(union); d < 0.4 {
					t.Errorf("%s: %s and %s differ in %.0f%% of their pixels, want at least 40%%", colour, cs[i].Name, cs[j].Name, 100*d)
				}
			}
		}
	}
}
