package chart

import (
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/aerie-ml/aerie/internal/manifest"
)

func epochs(n int) manifest.Metrics {
	m := manifest.Metrics{TestAccuracy: 0.9}
	for e := 1; e <= n; e++ {
		m.Epochs = append(m.Epochs, manifest.Epoch{Epoch: e, TrainLoss: 2.5 / float64(e), ValLoss: 2.6 / float64(e), TrainAccuracy: 0.5, ValAccuracy: 0.45})
	}
	return m
}

func TestAxes(t *testing.T) {
	tests := []struct {
		epochs         int
		lo, hi         float64
		ticks          []float64
		markers, lines int
	}{
		// One epoch: a dot in the middle of a one-epoch-wide axis.
		{1, 0.5, 1.5, []float64{1}, 4, 4},
		{12, 0.5, 12.5, []float64{1, 3, 5, 7, 9, 11}, 48, 4},
		// A hundred: ten ticks, lines without markers.
		{100, 0.5, 100.5, []float64{1, 11, 21, 31, 41, 51, 61, 71, 81, 91}, 0, 4},
	}
	for _, tt := range tests {
		m := epochs(tt.epochs)
		lo, hi := xDomain([]Series{{X: xs(m)}})
		if lo != tt.lo || hi != tt.hi {
			t.Errorf("%d epochs: x from %g to %g, want %g to %g", tt.epochs, lo, hi, tt.lo, tt.hi)
		}
		if diff := cmp.Diff(tt.ticks, epochTicks(lo, hi)); diff != "" {
			t.Errorf("%d epochs: ticks (-want +got):\n%s", tt.epochs, diff)
		}
		svg := string(Curves([]manifest.Metrics{m}, nil))
		if got := strings.Count(svg, "<circle"); got != tt.markers {
			t.Errorf("%d epochs: %d markers, want %d", tt.epochs, got, tt.markers)
		}
		if got := strings.Count(svg, "<polyline"); got != tt.lines {
			t.Errorf("%d epochs: %d lines, want %d", tt.epochs, got, tt.lines)
		}
		// Both panels have the same x tick labels.
		labels := regexp.MustCompile(`text-anchor="middle">(\d+)</text>`).FindAllStringSubmatch(svg, -1)
		if len(labels) != 2*len(tt.ticks) {
			t.Errorf("%d epochs: %d x labels, want %d in each panel", tt.epochs, len(labels), len(tt.ticks))
		}
		// The y-axes start at 0, and the accuracy axis ends at 100.
		for _, want := range []string{`dominant-baseline="middle">0</text>`, `dominant-baseline="middle">100</text>`} {
			if !strings.Contains(svg, want) {
				t.Errorf("%d epochs: the SVG lacks %s", tt.epochs, want)
			}
		}
		if strings.Contains(svg, "font-family") {
			t.Errorf("%d epochs: the SVG sets a font; it must take the page's", tt.epochs)
		}
	}
}

func xs(m manifest.Metrics) []float64 {
	var out []float64
	for _, e := range m.Epochs {
		out = append(out, float64(e.Epoch))
	}
	return out
}

func TestNiceCeil(t *testing.T) {
	for in, want := range map[float64]float64{0: 1, 0.7: 1, 1.2: 2, 2.3: 2.5, 2.6: 5, 7: 10, 23: 25, 100: 100} {
		if got := niceCeil(in); got != want {
			t.Errorf("niceCeil(%g) = %g, want %g", in, got, want)
		}
	}
}

func TestConfusion(t *testing.T) {
	svg := string(Confusion([][]float64{{0.9, 0.1}, {0.004, 0.996}}, []string{"cat", "a<b"}))
	for _, want := range []string{">90</text>", ">10</text>", ">100</text>", "a&lt;b", "predicted →"} {
		if !strings.Contains(svg, want) {
			t.Errorf("confusion SVG lacks %q", want)
		}
	}
	if strings.Count(svg, "<rect") != 4 {
		t.Errorf("confusion SVG has %d cells, want 4", strings.Count(svg, "<rect"))
	}
	if Confusion(nil, nil) != "" {
		t.Error("Confusion(nil) is not empty")
	}
}
