// Package chart draws a model version's training curves and confusion
// matrix as inline SVG, for the model card and aerie's web view alike. The
// SVG carries no fonts of its own: its text takes the page's font, and its
// colours come from CSS classes the page may restyle.
//
// The curves read the same for 1 epoch and for 100: the x-axis runs from
// half an epoch before the first to half after the last (a lone epoch is
// a dot in the middle, not two dots at the edges), both panels share it,
// each y-axis shows every value, and the legend sits below the panels,
// clear of the lines.
package chart

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"slices"
	"strings"

	"github.com/aerie-ml/aerie/internal/manifest"
)

// series is one line: a name for the legend, its CSS class and its points
// (x = epoch).
type series struct {
	name, class string
	x, y        []float64
	// dashed draws the line dashed (the second version in a comparison).
	dashed bool
}

// panel is one chart of a figure.
type panel struct {
	title, unit string
	series      []series
	// percent axes end at 100 and start at a multiple of 10 at least 5
	// below the lowest value; other axes start at 0 and end at a round
	// value above the highest.
	percent bool
	// ref, if set, is a dashed horizontal reference (the test accuracy).
	ref      *series
	refValue float64
}

const (
	panelW, panelH               = 420, 260
	padL, padR, padTop, padBelow = 52, 14, 30, 40
	legendRow                    = 16
	maxMarkers                   = 30 // more epochs than this: lines only
)

// Curves is the loss and accuracy panels of one or more versions' epochs,
// side by side on one x-axis, with one legend below both. labels name the
// versions in the legend ("" for a single version); the test accuracy of a
// single version is a dashed reference line.
func Curves(metrics []manifest.Metrics, labels []string) template.HTML {
	loss := panel{title: "Loss", unit: "cross-entropy"}
	acc := panel{title: "Accuracy", unit: "%", percent: true}
	for i, m := range metrics {
		prefix := ""
		if i < len(labels) && labels[i] != "" {
			prefix = labels[i] + " "
		}
		var x, tl, vl, ta, va []float64
		for _, e := range m.Epochs {
			x = append(x, float64(e.Epoch))
			tl, vl = append(tl, e.TrainLoss), append(vl, e.ValLoss)
			ta, va = append(ta, 100*e.TrainAccuracy), append(va, 100*e.ValAccuracy)
		}
		dashed := i > 0
		loss.series = append(loss.series, series{prefix + "train", "train", x, tl, dashed}, series{prefix + "validation", "val", x, vl, dashed})
		acc.series = append(acc.series, series{prefix + "train", "train", x, ta, dashed}, series{prefix + "validation", "val", x, va, dashed})
		if len(metrics) == 1 && m.TestAccuracy > 0 {
			acc.ref = &series{name: fmt.Sprintf("test %.2f%%", 100*m.TestAccuracy), class: "test", dashed: true}
			acc.refValue = 100 * m.TestAccuracy
		}
	}
	// Both panels show the same lines, so one legend names them.
	legend := slices.Clone(loss.series)
	if acc.ref != nil {
		legend = append(legend, *acc.ref)
	}
	var legendSVG strings.Builder
	rows := drawLegend(&legendSVG, legend, padL, 2*panelW-padR, panelH+4)

	lo, hi := xDomain(loss.series)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart curves" viewBox="0 0 %d %d" role="img" aria-label="training curves">`, 2*panelW, panelH+rows*legendRow+8)
	b.WriteString(style)
	drawPanel(&b, loss, 0, lo, hi)
	drawPanel(&b, acc, panelW, lo, hi)
	b.WriteString(legendSVG.String())
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// style gives the SVG sensible colours; a page may override the classes.
const style = `<style>
.chart{font:inherit;font-size:12px;max-width:100%;height:auto}
.chart text{fill:currentColor}
.chart .title{font-weight:600;font-size:13px}
.chart .grid{stroke:#ddd;stroke-width:1}
.chart .axis{stroke:#888;stroke-width:1}
.chart .line{fill:none;stroke-width:2}
.chart .dashed{stroke-dasharray:6 3}
.chart .train{stroke:#1f77b4;fill:#1f77b4}
.chart .val{stroke:#ff7f0e;fill:#ff7f0e}
.chart .test{stroke:#2ca02c;fill:#2ca02c}
.chart .line.train,.chart .line.val,.chart .line.test{fill:none}
</style>`

// xDomain spans the series' epochs with half an epoch either side.
func xDomain(ss []series) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, s := range ss {
		for _, x := range s.x {
			lo, hi = math.Min(lo, x), math.Max(hi, x)
		}
	}
	if math.IsInf(lo, 1) {
		return 0.5, 1.5
	}
	return lo - 0.5, hi + 0.5
}

// yDomain is the y-axis of p: see panel.percent.
func yDomain(p panel) (lo, hi float64) {
	ymin, ymax := math.Inf(1), 0.0
	for _, s := range p.series {
		for _, y := range s.y {
			ymin, ymax = math.Min(ymin, y), math.Max(ymax, y)
		}
	}
	if p.ref != nil {
		ymin, ymax = math.Min(ymin, p.refValue), math.Max(ymax, p.refValue)
	}
	if !p.percent {
		return 0, niceCeil(ymax)
	}
	if math.IsInf(ymin, 1) {
		return 0, 100
	}
	return math.Max(0, math.Floor((ymin-5)/10)*10), 100
}

func drawPanel(b *strings.Builder, p panel, left int, xlo, xhi float64) {
	ylo, yhi := yDomain(p)
	x0, x1 := float64(left+padL), float64(left+panelW-padR)
	y0, y1 := float64(panelH-padBelow), float64(padTop)
	sx := func(x float64) float64 { return x0 + (x-xlo)/(xhi-xlo)*(x1-x0) }
	sy := func(y float64) float64 { return y0 - (y-ylo)/(yhi-ylo)*(y0-y1) }

	fmt.Fprintf(b, `<text class="title" x="%g" y="18">%s</text>`, x0, html.EscapeString(p.title))
	for _, t := range ticks(ylo, yhi, 5) {
		fmt.Fprintf(b, `<line class="grid" x1="%g" x2="%g" y1="%.1f" y2="%.1f"/>`, x0, x1, sy(t), sy(t))
		fmt.Fprintf(b, `<text x="%g" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`, x0-6, sy(t), label(t))
	}
	for _, t := range epochTicks(xlo, xhi) {
		fmt.Fprintf(b, `<line class="axis" x1="%.1f" x2="%.1f" y1="%g" y2="%g"/>`, sx(t), sx(t), y0, y0+4)
		fmt.Fprintf(b, `<text x="%.1f" y="%g" text-anchor="middle">%s</text>`, sx(t), y0+16, label(t))
	}
	fmt.Fprintf(b, `<line class="axis" x1="%g" x2="%g" y1="%g" y2="%g"/>`, x0, x1, y0, y0)
	fmt.Fprintf(b, `<text x="%g" y="%d" text-anchor="middle">epoch</text>`, (x0+x1)/2, panelH-6)
	fmt.Fprintf(b, `<text x="%d" y="%g" text-anchor="middle" transform="rotate(-90 %d %g)">%s</text>`, left+12, (y0+y1)/2, left+12, (y0+y1)/2, html.EscapeString(p.unit))

	b.WriteString(`<g class="data">`)
	if p.ref != nil {
		fmt.Fprintf(b, `<line class="line test dashed" x1="%g" x2="%g" y1="%.1f" y2="%.1f"/>`, x0, x1, sy(p.refValue), sy(p.refValue))
	}
	for _, s := range p.series {
		if len(s.x) == 0 {
			continue
		}
		var pts []string
		for i := range s.x {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", sx(s.x[i]), sy(s.y[i])))
		}
		fmt.Fprintf(b, `<polyline class="line %s%s" points="%s"/>`, s.class, dashClass(s), strings.Join(pts, " "))
		if len(s.x) <= maxMarkers {
			for i := range s.x {
				fmt.Fprintf(b, `<circle class="%s" cx="%.1f" cy="%.1f" r="3"/>`, s.class, sx(s.x[i]), sy(s.y[i]))
			}
		}
	}
	b.WriteString(`</g>`)
}

// drawLegend lays out a sample line and the name of each series from x0,
// wrapping before x1, in rows from y; it returns the number of rows.
func drawLegend(b *strings.Builder, ss []series, x0, x1, y int) int {
	b.WriteString(`<g class="legend">`)
	x, rows := float64(x0), 1
	for _, s := range ss {
		w := 24 + 7*float64(len(s.name)) + 18
		if x+w > float64(x1) && x > float64(x0) {
			x, rows = float64(x0), rows+1
		}
		ly := y + rows*legendRow - legendRow/2
		fmt.Fprintf(b, `<line class="line %s%s" x1="%g" x2="%g" y1="%d" y2="%d"/>`, s.class, dashClass(s), x, x+18, ly, ly)
		fmt.Fprintf(b, `<text x="%g" y="%d" dominant-baseline="middle">%s</text>`, x+24, ly, html.EscapeString(s.name))
		x += w
	}
	b.WriteString(`</g>`)
	return rows
}

func dashClass(s series) string {
	if s.dashed {
		return " dashed"
	}
	return ""
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (at least 1).
func niceCeil(v float64) float64 {
	if v <= 1 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// ticks are about n round values from lo to hi.
func ticks(lo, hi float64, n int) []float64 {
	step := niceCeil((hi - lo) / float64(n))
	if (hi-lo)/float64(n) < 1 {
		step = (hi - lo) / float64(n)
	}
	var out []float64
	for t := lo; t <= hi+step/1e6; t += step {
		out = append(out, t)
	}
	return out
}

// epochTicks labels whole epochs in (lo, hi): every epoch up to ten, else
// the multiples of a round step that gives about ten.
func epochTicks(lo, hi float64) []float64 {
	first, last := math.Ceil(lo), math.Floor(hi)
	step := 1.0
	if last-first+1 > 10 {
		step = math.Ceil(niceCeil((last - first + 1) / 10)) // 2.5 → 3
		first = math.Ceil(first/step) * step
	}
	var out []float64
	for x := first; x <= last; x += step {
		out = append(out, x)
	}
	return out
}

func label(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2g", v)
}

// Confusion draws the row-normalized confusion matrix, true class down and
// predicted across, each cell's share printed in it. The shade follows the
// square root of the share, so that mistakes of a few percent show.
func Confusion(confusion [][]float64, classes []string) template.HTML {
	n := len(confusion)
	if n == 0 {
		return ""
	}
	const cell, left, top = 38, 96, 96
	size := left + n*cell + 50 // room for the last rotated label
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart confusion" viewBox="0 0 %d %d" role="img" aria-label="confusion matrix">`, size, top+n*cell+30)
	b.WriteString(style)
	name := func(i int) string {
		if i < len(classes) {
			return classes[i]
		}
		return fmt.Sprint(i)
	}
	for i := range n {
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end" dominant-baseline="middle">%s</text>`, left-6, top+i*cell+cell/2, html.EscapeString(name(i)))
		x := left + i*cell + cell/2
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="start" transform="rotate(-50 %d %d)">%s</text>`, x, top-8, x, top-8, html.EscapeString(name(i)))
	}
	for r, row := range confusion {
		for c := range n {
			v := 0.0
			if c < len(row) && !math.IsNaN(row[c]) {
				v = math.Max(0, math.Min(1, row[c]))
			}
			shade := math.Sqrt(v)
			fill := fmt.Sprintf("rgb(%d,%d,%d)", mix(0xff, 0x08, shade), mix(0xff, 0x30, shade), mix(0xff, 0x6b, shade))
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s" stroke="#eee"><title>true %s, predicted %s: %.1f%%</title></rect>`,
				left+c*cell, top+r*cell, cell, cell, fill, html.EscapeString(name(r)), html.EscapeString(name(c)), 100*v)
			if v >= 0.005 {
				ink := "#000"
				if shade > 0.6 {
					ink = "#fff"
				}
				txt := fmt.Sprintf("%.0f", 100*v)
				if 100*v < 1 {
					txt = "<1"
				}
				fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" dominant-baseline="middle" style="fill:%s">%s</text>`, left+c*cell+cell/2, top+r*cell+cell/2, ink, html.EscapeString(txt))
			}
		}
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">predicted →</text>`, left+n*cell/2, top+n*cell+22)
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func mix(from, to int, t float64) int { return int(math.Round(float64(from) + t*float64(to-from))) }
