// Package report renders report.html, the model card: a self-contained
// page of a model version's figures, gates, training curves, per-class
// accuracy, confusion matrix, lineage and hyperparameters. Its charts are
// internal/chart's inline SVG, the same as aerie's web view draws.
package report

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"math"
	"time"

	"github.com/aerie-ml/aerie/internal/chart"
	"github.com/aerie-ml/aerie/internal/manifest"
)

//go:embed card.html.tmpl
var cardTemplate string

var card = template.Must(template.New("card").Funcs(template.FuncMap{
	"pct":  func(f float64) string { return fmt.Sprintf("%.2f%%", 100*f) },
	"num":  func(f float64) string { return fmt.Sprintf("%.4g", f) },
	"pct0": func(f float64) string { return fmt.Sprintf("%.0f%%", 100*f) },
	"mib":  func(n int64) string { return fmt.Sprintf("%.3g MiB", float64(n)/(1<<20)) },
	"seconds": func(s float64) string {
		return time.Duration(s * float64(time.Second)).Round(time.Second).String()
	},
	"gateValue": func(r manifest.GateResult) string {
		if r.Name == "modelBytes" {
			return fmt.Sprintf("%.0f", r.Value)
		}
		return fmt.Sprintf("%.2f%%", 100*r.Value)
	},
	"gateThreshold": func(r manifest.GateResult) string {
		if r.Name == "modelBytes" {
			return fmt.Sprintf("%.0f", r.Threshold)
		}
		return fmt.Sprintf("%.2f%%", 100*r.Threshold)
	},
}).Parse(cardTemplate))

// classRow is one line of the per-class table.
type classRow struct {
	Name     string
	Accuracy float64
	// Width is the accuracy bar's width in percent.
	Width string
	// Confused names the class this one is most often mistaken for.
	Confused      string
	ConfusedShare float64
}

type cardData struct {
	M         *manifest.Manifest
	Failed    int
	Curves    template.HTML
	Confusion template.HTML
	Classes   []classRow
	Weights   *manifest.File
}

// HTML renders the model card of m, a page that makes no outside requests.
func HTML(m *manifest.Manifest) ([]byte, error) {
	d := cardData{
		M:         m,
		Failed:    len(manifest.Failed(m.Gates)),
		Confusion: chart.Confusion(m.Metrics.Confusion, m.Model.Classes),
	}
	if len(m.Metrics.Epochs) > 0 {
		d.Curves = chart.Curves([]manifest.Metrics{m.Metrics}, nil)
	}
	classes := m.Model.Classes
	for i, acc := range m.Metrics.ClassAccuracy {
		row := classRow{Name: fmt.Sprint(i), Accuracy: acc, Width: fmt.Sprintf("%.1f%%", 100*math.Max(0, math.Min(1, acc)))}
		if i < len(classes) {
			row.Name = classes[i]
		}
		if i < len(m.Metrics.Confusion) {
			for j, share := range m.Metrics.Confusion[i] {
				if j != i && share > row.ConfusedShare {
					row.Confused, row.ConfusedShare = fmt.Sprint(j), share
					if j < len(classes) {
						row.Confused = classes[j]
					}
				}
			}
		}
		d.Classes = append(d.Classes, row)
	}
	for i, f := range m.Files {
		if f.Name == m.Model.Weights {
			d.Weights = &m.Files[i]
		}
	}
	var buf bytes.Buffer
	if err := card.Execute(&buf, d); err != nil {
		return nil, fmt.Errorf("render model card: %w", err)
	}
	return buf.Bytes(), nil
}
