package chart

import (
	"regexp"
	"strconv"
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
		{10, 0.5, 10.5, []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 40, 4},
		{12, 0.5, 12.5, []float64{2, 4, 6, 8, 10, 12}, 48, 4},
		{25, 0.5, 25.5, []float64{3, 6, 9, 12, 15, 18, 21, 24}, 100, 4},
		// A hundred: ten round ticks up to the last, lines without markers.
		{100, 0.5, 100.5, []float64{10, 20, 30, 40, 50, 60, 70, 80, 90, 100}, 0, 4},
	}
	for _, tt := range tests {
		m := epochs(tt.epochs)
		lo, hi := xDomain([]series{{x: xs(m)}})
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
		// The loss axis starts at 0; the accuracy axis runs from 40 (below
		// 45%) to 100.
		for _, want := range []string{`dominant-baseline="middle">0</text>`, `dominant-baseline="middle">40</text>`, `dominant-baseline="middle">100</text>`} {
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

func TestYDomain(t *testing.T) {
	tests := []struct {
		name   string
		p      panel
		lo, hi float64
	}{
		{"loss", panel{series: []series{{y: []float64{2.3, 0.4}}}}, 0, 2.5},
		{"accuracy", panel{percent: true, series: []series{{y: []float64{81, 92}}}}, 70, 100},
		// The reference line is shown too.
		{"accuracy below its test line", panel{percent: true, series: []series{{y: []float64{95}}}, ref: &series{}, refValue: 84}, 70, 100},
		{"accuracy near zero", panel{percent: true, series: []series{{y: []float64{3}}}}, 0, 100},
		{"no values", panel{percent: true}, 0, 100},
	}
	for _, tt := range tests {
		if lo, hi := yDomain(tt.p); lo != tt.lo || hi != tt.hi {
			t.Errorf("%s: yDomain() = %g, %g, want %g, %g", tt.name, lo, hi, tt.lo, tt.hi)
		}
	}
}

// TestLegend: one legend below both panels, naming each line once, in as
// many rows as it needs.
func TestLegend(t *testing.T) {
	one := string(Curves([]manifest.Metrics{epochs(3)}, nil))
	legend := regexp.MustCompile(`<g class="legend">(.*?)</g>`).FindAllStringSubmatch(one, -1)
	if len(legend) != 1 {
		t.Fatalf("%d legends, want 1", len(legend))
	}
	names := regexp.MustCompile(`>([^<]+)</text>`).FindAllStringSubmatch(legend[0][1], -1)
	var got []string
	for _, n := range names {
		got = append(got, n[1])
	}
	if diff := cmp.Diff([]string{"train", "validation", "test 90.00%"}, got); diff != "" {
		t.Errorf("legend (-want +got):\n%s", diff)
	}

	long := "a-version-label-long-enough-to-wrap"
	two := string(Curves([]manifest.Metrics{epochs(3), epochs(3)}, []string{long, long + "-too"}))
	rows := map[string]bool{}
	for _, y := range regexp.MustCompile(`<text x="[^"]+" y="(\d+)" dominant-baseline="middle">`+long).FindAllStringSubmatch(two, -1) {
		rows[y[1]] = true
	}
	if len(rows) < 2 {
		t.Errorf("four long legend names on %d rows, want them wrapped", len(rows))
	}
	height := func(svg string) int {
		h, err := strconv.Atoi(regexp.MustCompile(`viewBox="0 0 \d+ (\d+)"`).FindStringSubmatch(svg)[1])
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	if h1, h2 := height(one), height(two); h2 <= h1 {
		t.Errorf("the wrapped legend's chart is %d high, the one-row one %d: want it taller", h2, h1)
	}
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
