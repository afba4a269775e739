// Package report draws what people would rather look at than read: the
// training curves and the confusion matrix as PNG, and report.html, a
// self-contained model card that embeds them.
package report

import (
	"bytes"
	"errors"
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/aerie-ml/aerie/internal/manifest"
)

// dpi renders the PNGs at twice the card's CSS size, for sharp text on
// high-density screens.
const dpi = 192

var (
	trainColor = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	valColor   = color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}
	testColor  = color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}
)

// Curves draws loss and accuracy per epoch, train against validation, side
// by side; the accuracy panel also marks the final test accuracy when
// there is one.
func Curves(m manifest.Metrics) ([]byte, error) {
	trainLoss := make(plotter.XYs, len(m.Epochs))
	valLoss := make(plotter.XYs, len(m.Epochs))
	trainAcc := make(plotter.XYs, len(m.Epochs))
	valAcc := make(plotter.XYs, len(m.Epochs))
	for i, e := range m.Epochs {
		x := float64(e.Epoch)
		trainLoss[i] = plotter.XY{X: x, Y: e.TrainLoss}
		valLoss[i] = plotter.XY{X: x, Y: e.ValLoss}
		trainAcc[i] = plotter.XY{X: x, Y: 100 * e.TrainAccuracy}
		valAcc[i] = plotter.XY{X: x, Y: 100 * e.ValAccuracy}
	}
	loss, err := curvePlot("Loss", "cross-entropy", trainLoss, valLoss)
	if err != nil {
		return nil, err
	}
	acc, err := curvePlot("Accuracy", "%", trainAcc, valAcc)
	if err != nil {
		return nil, err
	}
	if m.TestAccuracy > 0 && len(m.Epochs) > 0 {
		first, last := float64(m.Epochs[0].Epoch), float64(m.Epochs[len(m.Epochs)-1].Epoch)
		if first == last {
			first, last = first-0.5, last+0.5
		}
		test, err := plotter.NewLine(plotter.XYs{{X: first, Y: 100 * m.TestAccuracy}, {X: last, Y: 100 * m.TestAccuracy}})
		if err != nil {
			return nil, fmt.Errorf("draw test accuracy: %w", err)
		}
		test.Color = testColor
		test.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
		test.Width = vg.Points(1.5)
		acc.Add(test)
		acc.Legend.Add(fmt.Sprintf("test %.2f%%", 100*m.TestAccuracy), test)
	}
	acc.Legend.Top, acc.Legend.Left = false, false

	const w, h = 9 * vg.Inch, 3.2 * vg.Inch
	img := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(dpi), vgimg.UseBackgroundColor(color.White))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Points(24), PadTop: vg.Points(6), PadBottom: vg.Points(6), PadLeft: vg.Points(6), PadRight: vg.Points(12)}
	plots := [][]*plot.Plot{{loss, acc}}
	canvases := plot.Align(plots, tiles, dc)
	loss.Draw(canvases[0][0])
	acc.Draw(canvases[0][1])
	return encode(img)
}

func curvePlot(title, unit string, train, val plotter.XYs) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(13)
	p.X.Label.Text = "epoch"
	p.Y.Label.Text = unit
	p.X.Tick.Marker = epochTicks{}
	p.Add(plotter.NewGrid())
	for _, s := range []struct {
		name string
		xys  plotter.XYs
		c    color.Color
	}{{"train", train, trainColor}, {"validation", val, valColor}} {
		if len(s.xys) == 0 {
			continue
		}
		line, points, err := plotter.NewLinePoints(s.xys)
		if err != nil {
			return nil, fmt.Errorf("draw %s %s: %w", s.name, title, err)
		}
		line.Color, line.Width = s.c, vg.Points(2)
		points.Color, points.Shape = s.c, draw.CircleGlyph{}
		points.Radius = vg.Points(2.5)
		p.Add(line, points)
		p.Legend.Add(s.name, line, points)
	}
	p.Legend.Top = true
	return p, nil
}

// epochTicks labels whole epochs only, thinned to about ten.
type epochTicks struct{}

func (epochTicks) Ticks(lo, hi float64) []plot.Tick {
	first, last := math.Ceil(lo), math.Floor(hi)
	step := math.Max(1, math.Ceil((last-first+1)/10))
	var ticks []plot.Tick
	for x := first; x <= last; x += step {
		ticks = append(ticks, plot.Tick{Value: x, Label: fmt.Sprint(x)})
	}
	return ticks
}

// Confusion draws the row-normalized confusion matrix (true class down,
// predicted class across) with every cell's share printed in it. The
// colour follows the square root of the share, so that the off-diagonal
// mistakes, a few percent each, stand out from white.
func Confusion(m manifest.Metrics, classes []string) ([]byte, error) {
	n := len(m.Confusion)
	if n == 0 {
		return nil, errors.New("draw confusion matrix: no matrix in the metrics")
	}
	for i, row := range m.Confusion {
		if len(row) != n {
			return nil, fmt.Errorf("draw confusion matrix: row %d has %d columns, want %d", i, len(row), n)
		}
	}
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprint(i)
		if i < len(classes) {
			names[i] = classes[i]
		}
	}
	p := plot.New()
	p.Title.Text = "Confusion matrix (test set, each row sums to 100%)"
	p.Title.TextStyle.Font.Size = vg.Points(13)
	p.X.Label.Text = "predicted"
	p.Y.Label.Text = "true"
	p.X.Tick.Label.Rotation = math.Pi / 4
	// Anchored at their top right corner, so the rotated labels hang below
	// the axis instead of poking into the matrix.
	p.X.Tick.Label.XAlign = -1
	p.X.Tick.Label.YAlign = -1
	p.NominalX(names...)
	reversed := make([]string, n)
	for i, name := range names {
		reversed[n-1-i] = name
	}
	p.NominalY(reversed...)
	p.X.Padding, p.Y.Padding = 0, 0

	grid := confusionGrid(m.Confusion)
	heat := plotter.NewHeatMap(grid, bluePalette{})
	heat.Min, heat.Max = 0, 1
	heat.NaN = color.White
	p.Add(heat)

	var labels plotter.XYLabels
	var styles []color.Color
	for r, row := range m.Confusion {
		for c, v := range row {
			if v < 0.005 {
				continue
			}
			labels.XYs = append(labels.XYs, plotter.XY{X: float64(c), Y: float64(n - 1 - r)})
			label := fmt.Sprintf("%.0f", 100*v)
			if 100*v < 1 {
				label = "<1"
			}
			labels.Labels = append(labels.Labels, label)
			ink := color.Color(color.Black)
			if math.Sqrt(v) > 0.6 {
				ink = color.White
			}
			styles = append(styles, ink)
		}
	}
	if len(labels.Labels) > 0 {
		l, err := plotter.NewLabels(labels)
		if err != nil {
			return nil, fmt.Errorf("draw confusion labels: %w", err)
		}
		for i := range l.TextStyle {
			l.TextStyle[i].Color = styles[i]
			l.TextStyle[i].XAlign = -0.5
			l.TextStyle[i].YAlign = -0.5
			l.TextStyle[i].Font.Size = vg.Points(9)
		}
		p.Add(l)
	}

	const side = 6.2 * vg.Inch
	img := vgimg.NewWith(vgimg.UseWH(side, side), vgimg.UseDPI(dpi), vgimg.UseBackgroundColor(color.White))
	// The rotated labels' extent is not all counted when the plot sizes its
	// data area; leave room on the right by hand.
	p.Draw(draw.Crop(draw.New(img), 0, -vg.Points(24), 0, -vg.Points(6)))
	return encode(img)
}

// confusionGrid shows row 0 (the first true class) at the top.
type confusionGrid [][]float64

func (g confusionGrid) Dims() (c, r int) { return len(g), len(g) }
func (g confusionGrid) Z(c, r int) float64 {
	v := g[len(g)-1-r][c]
	if math.IsNaN(v) || v < 0 {
		return math.NaN()
	}
	return math.Sqrt(math.Min(v, 1))
}
func (g confusionGrid) X(c int) float64 { return float64(c) }
func (g confusionGrid) Y(r int) float64 { return float64(r) }

// bluePalette runs from white to dark blue.
type bluePalette struct{}

func (bluePalette) Colors() []color.Color {
	const n = 256
	from := [3]float64{0xff, 0xff, 0xff}
	to := [3]float64{0x08, 0x30, 0x6b}
	colors := make([]color.Color, n)
	for i := range colors {
		t := float64(i) / (n - 1)
		c := color.RGBA{A: 0xff}
		c.R = uint8(math.Round(from[0] + t*(to[0]-from[0])))
		c.G = uint8(math.Round(from[1] + t*(to[1]-from[1])))
		c.B = uint8(math.Round(from[2] + t*(to[2]-from[2])))
		colors[i] = c
	}
	return colors
}

func encode(img *vgimg.Canvas) ([]byte, error) {
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("encode png: %w", err)
	}
	return buf.Bytes(), nil
}
