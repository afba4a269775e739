package report

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/aerie-ml/aerie/internal/browsertest"
	"github.com/aerie-ml/aerie/internal/manifest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestHTMLGolden(t *testing.T) {
	failing := sample(10)
	failing.Gates = manifest.Evaluate(failing.Metrics, failing.Model.Classes, manifest.Gates{MinTestAccuracy: 0.925, MinClassAccuracy: 0.85})
	failing.Lineage = manifest.Lineage{WorldSize: 3, ResumedFrom: "checkpoints/fmnist-cnn/4220/"}
	tests := []struct {
		name string
		m    *manifest.Manifest
	}{
		{"pass", sample(10)},
		{"fail", failing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := HTML(tt.m)
			if err != nil {
				t.Fatalf("HTML() error = %v", err)
			}
			golden := filepath.Join("testdata", "card-"+tt.name+".golden.html")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("HTML() differs from %s (go test -update rewrites it) (-want +got):\n%s", golden, diff)
			}
		})
	}
}

func TestHTMLIsSelfContained(t *testing.T) {
	got, err := HTML(sample(10))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?i)(src|href)\s*=\s*"([^"]*)"`).FindAllSubmatch(got, -1) {
		t.Errorf("card refers to %s=%q, want no outside requests", m[1], m[2])
	}
	if bytes.Contains(got, []byte("url(")) || bytes.Contains(got, []byte("@import")) {
		t.Error("card's CSS loads something from outside")
	}
}

// Checks on the rendered card, each a JavaScript expression that returns
// what is wrong ("" when nothing is).
const (
	// labelsFit: no chart label overlaps another or sticks out of its chart.
	labelsFit = `(() => {
  const bad = [];
  for (const svg of document.querySelectorAll("svg.curves")) {
    const box = svg.getBoundingClientRect();
    const labels = Array.from(svg.querySelectorAll("text"), (el) => [el.textContent, el.getBoundingClientRect()]);
    labels.forEach(([a, ra], i) => {
      if (ra.left < box.left || ra.right > box.right || ra.top < box.top || ra.bottom > box.bottom) bad.push(a + " sticks out of the chart");
      for (const [b, rb] of labels.slice(i + 1)) {
        if (ra.left < rb.right && rb.left < ra.right && ra.top < rb.bottom && rb.top < ra.bottom) bad.push(a + " overlaps " + b);
      }
    });
  }
  return bad.join("; ");
})()`
	// clearOfData: no chart label covers a point of a line or a marker.
	clearOfData = `(() => {
  const bad = [];
  for (const svg of document.querySelectorAll("svg.curves")) {
    const points = [];
    const add = (el, xs) => {
      const m = el.getScreenCTM();
      for (const [x, y] of xs) points.push(new DOMPoint(x, y).matrixTransform(m));
    };
    const along = (a, b) => Array.from({length: 21}, (_, i) => [a.x + (b.x - a.x) * i / 20, a.y + (b.y - a.y) * i / 20]);
    for (const l of svg.querySelectorAll(".data polyline")) {
      const p = Array.from(l.points);
      add(l, p.length === 1 ? [[p[0].x, p[0].y]] : p.slice(1).flatMap((q, i) => along(p[i], q)));
    }
    for (const l of svg.querySelectorAll(".data line")) {
      add(l, along({x: l.x1.baseVal.value, y: l.y1.baseVal.value}, {x: l.x2.baseVal.value, y: l.y2.baseVal.value}));
    }
    for (const c of svg.querySelectorAll(".data circle")) add(c, [[c.cx.baseVal.value, c.cy.baseVal.value]]);
    if (points.length === 0) bad.push("no lines or markers in the chart");
    for (const el of svg.querySelectorAll("text")) {
      const r = el.getBoundingClientRect();
      if (points.some((p) => r.left <= p.x && p.x <= r.right && r.top <= p.y && p.y <= r.bottom)) bad.push(el.textContent + " covers the data");
    }
  }
  return bad.join("; ");
})()`
	// pageFont: the charts' labels are in the page's font.
	pageFont = `(() => {
  const want = getComputedStyle(document.body).fontFamily;
  const other = Array.from(document.querySelectorAll("svg.chart text"), (el) => getComputedStyle(el).fontFamily).filter((f) => f !== want);
  return other.length ? other.length + " chart labels in " + other[0] + ", not the page's " + want : "";
})()`
	// wideCurves: the curves are drawn at least 800 px wide.
	wideCurves = `(() => {
  const w = document.querySelector("svg.curves").getBoundingClientRect().width;
  return w < 800 ? "the curves are " + w + " px wide" : "";
})()`
	// centredDots: a lone epoch is a dot in the middle of each panel's
	// x-axis, not at its edges.
	centredDots = `(() => {
  const axes = Array.from(document.querySelectorAll("svg.curves line.axis")).filter((l) => l.y1.baseVal.value === l.y2.baseVal.value);
  const dots = Array.from(document.querySelectorAll("svg.curves circle"));
  if (dots.length === 0) return "no dots";
  const bad = dots.filter((c) => {
    const x = c.cx.baseVal.value;
    const axis = axes.find((l) => l.x1.baseVal.value <= x && x <= l.x2.baseVal.value);
    return !axis || Math.abs(x - (axis.x1.baseVal.value + axis.x2.baseVal.value) / 2) > 1;
  });
  return bad.length ? bad.length + " of " + dots.length + " dots are off the middle of their axis" : "";
})()`
	// linesOnly: many epochs are lines without a marker per epoch.
	linesOnly = `(() => {
  const n = document.querySelectorAll("svg.curves circle").length;
  return n ? n + " markers on a long run's curves" : "";
})()`
)

// TestHTMLInChromium renders the cards of a 1-epoch and a 100-epoch run in
// headless Chromium and checks they read well; the screenshots land in the
// test's artifact directory.
func TestHTMLInChromium(t *testing.T) {
	browser := browsertest.New(t)
	failing := sample(100)
	failing.Gates = manifest.Evaluate(failing.Metrics, failing.Model.Classes, manifest.Gates{MinTestAccuracy: 0.925, MinClassAccuracy: 0.85})
	tests := []struct {
		name   string
		m      *manifest.Manifest
		texts  []string
		checks []string
	}{
		{"1-epoch", sample(1), []string{"PASS: all 12 gates", "test 92.15%"}, []string{centredDots}},
		{"100-epochs", failing, []string{"FAIL: 2 of 11 gates", "test 92.15%", "All 100 epochs"}, []string{linesOnly}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			card, err := HTML(tt.m)
			if err != nil {
				t.Fatal(err)
			}
			page := filepath.Join(t.ArtifactDir(), "report-"+tt.name+".html")
			if err := os.WriteFile(page, card, 0o644); err != nil {
				t.Fatal(err)
			}
			browser.Check(t, browsertest.Page{
				Path:      page,
				Texts:     append([]string{"92.15%", "Training curves", "Loss", "Accuracy", "epoch", "validation", "Shirt", "76.50%", "Ankle boot", "96.50%", "predicted →"}, tt.texts...),
				Selectors: []string{"svg.curves polyline", "svg.confusion rect", "#test-accuracy", "#epochs", "#classes"},
				Checks:    append([]string{labelsFit, clearOfData, pageFont, wideCurves}, tt.checks...),
			}, "report-"+tt.name+".png")
		})
	}
}
