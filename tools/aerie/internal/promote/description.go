package promote

import (
	"fmt"
	"strings"

	"github.com/aerie-ml/aerie/internal/manifest"
)

// Description is the pull request text for a promotion: what is pinned,
// every gate with its margin, and per-class test accuracy, old against new.
func (r *Result) Description() string {
	var b strings.Builder
	m := r.Manifest
	fmt.Fprintf(&b, "## Promote %s/%s to %s of %s\n\n", m.Run, m.Version, r.Track, r.PinFile)
	fmt.Fprintf(&b, "- model: `%s`\n- manifest: `%s`\n", r.Pin.URI, r.Pin.ManifestDigest)
	fmt.Fprintf(&b, "- architecture: %s, %d parameters, %d bytes\n", m.Model.Architecture, m.Model.Parameters, m.Metrics.ModelBytes)
	if m.Lineage.GitCommit != "" || m.Lineage.ImageDigest != "" {
		fmt.Fprintf(&b, "- trained from commit `%s` with image `%s`\n", m.Lineage.GitCommit, m.Lineage.ImageDigest)
	}
	fmt.Fprintf(&b, "- dataset: `%s` (digest `%s`)\n", m.Dataset.URI, m.Dataset.Digest)
	fmt.Fprintf(&b, "- input: %s; %d classes: %s\n", m.Model.Input, len(m.Model.Classes), strings.Join(m.Model.Classes, ", "))
	fmt.Fprintf(&b, "- devices require a self-test accuracy of %.3f on the version's self-test set (%d test images; here %.3f)\n\n",
		r.Pin.MinSelfTestAccuracy, r.SelfTest.Total, r.SelfTest.Accuracy)

	b.WriteString("### Gates\n\n| gate | value | threshold | margin | |\n|---|---:|---:|---:|---|\n")
	for _, g := range r.Gates {
		verdict := "pass"
		if !g.Passed {
			verdict = "**FAIL**"
		}
		if g.Missing != "" {
			fmt.Fprintf(&b, "| %s | – | missing: %s | | %s |\n", g.Name, g.Missing, verdict)
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %s %s | %s | %s |\n", g.Name, manifest.FormatFigure(g.Value), g.Comparison, manifest.FormatFigure(g.Threshold), g.FormatMargin(), verdict)
	}

	b.WriteString("\n### Test accuracy by class\n\n")
	old := r.Previous
	if old == nil {
		b.WriteString("| class | new |\n|---|---:|\n")
	} else {
		fmt.Fprintf(&b, "| class | old (%s) | new | change |\n|---|---:|---:|---:|\n", old.Version)
	}
	row := func(name string, newAcc float64, oldAcc []float64, i int) {
		if old == nil {
			fmt.Fprintf(&b, "| %s | %.2f%% |\n", name, 100*newAcc)
			return
		}
		if i >= len(oldAcc) {
			fmt.Fprintf(&b, "| %s | – | %.2f%% | |\n", name, 100*newAcc)
			return
		}
		fmt.Fprintf(&b, "| %s | %.2f%% | %.2f%% | %+.2f |\n", name, 100*oldAcc[i], 100*newAcc, 100*(newAcc-oldAcc[i]))
	}
	var oldClasses []float64
	if old != nil {
		oldClasses = old.Metrics.ClassAccuracy
	}
	for i, acc := range m.Metrics.ClassAccuracy {
		row(className(m, i), acc, oldClasses, i)
	}
	var oldOverall []float64
	if old != nil {
		oldOverall = []float64{old.Metrics.TestAccuracy}
	}
	row("**overall**", m.Metrics.TestAccuracy, oldOverall, 0)
	return b.String()
}

func className(m *manifest.Manifest, i int) string {
	if i < len(m.Model.Classes) {
		return m.Model.Classes[i]
	}
	return fmt.Sprint(i)
}
