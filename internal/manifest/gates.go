package manifest

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Gates are the thresholds a model must clear to be promoted: the run's
// spec.gates when it trained. A zero field is not checked.
type Gates struct {
	MinTestAccuracy  float64 `json:"minTestAccuracy,omitempty"`
	MinClassAccuracy float64 `json:"minClassAccuracy,omitempty"`
	MaxModelBytes    int64   `json:"maxModelBytes,omitempty"`
}

// GateResult is the outcome of one gate.
type GateResult struct {
	Name string `json:"name"`
	// Comparison is ">=" or "<=": Value must compare so to Threshold.
	Comparison string  `json:"comparison"`
	Threshold  float64 `json:"threshold"`
	Value      float64 `json:"value"`
	Passed     bool    `json:"passed"`
	// Missing says which figures the gate could not check; such a gate
	// fails.
	Missing string `json:"missing,omitempty"`
}

// Margin is how far Value is on the passing side of Threshold; negative when
// the gate failed.
func (r GateResult) Margin() float64 {
	if r.Comparison == "<=" {
		return r.Threshold - r.Value
	}
	return r.Value - r.Threshold
}

func (r GateResult) String() string {
	verdict := "pass"
	if !r.Passed {
		verdict = "FAIL"
	}
	if r.Missing != "" {
		return fmt.Sprintf("%s %s: %s", verdict, r.Name, r.Missing)
	}
	return fmt.Sprintf("%s %s: %s %s %s (margin %s)", verdict, r.Name, FormatFigure(r.Value), r.Comparison, FormatFigure(r.Threshold), r.FormatMargin())
}

// FormatFigure writes a gate's value or threshold: whole numbers of 1000
// and more (bytes) in full, the others to 4 significant digits.
func FormatFigure(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) >= 1000 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// FormatMargin writes the gate's margin as FormatFigure does, signed.
func (r GateResult) FormatMargin() string {
	m := FormatFigure(r.Margin())
	if r.Margin() >= 0 {
		m = "+" + m
	}
	return m
}

func atLeast(name string, value, threshold float64) GateResult {
	return GateResult{Name: name, Comparison: ">=", Threshold: threshold, Value: value, Passed: value >= threshold}
}

func atMost(name string, value, threshold float64) GateResult {
	return GateResult{Name: name, Comparison: "<=", Threshold: threshold, Value: value, Passed: value <= threshold}
}

func missing(name, what string) GateResult {
	return GateResult{Name: name, Missing: what}
}

// Evaluate checks metrics against g: overall test accuracy, the test
// accuracy of every class (named from classes), and the model's size. It
// fails closed: a gate whose figures are absent or incomplete fails, and
// its Missing says what is absent.
func Evaluate(metrics Metrics, classes []string, g Gates) []GateResult {
	var results []GateResult
	if g.MinTestAccuracy > 0 {
		results = append(results, atLeast("testAccuracy", metrics.TestAccuracy, g.MinTestAccuracy))
	}
	if g.MinClassAccuracy > 0 {
		switch n := len(metrics.ClassAccuracy); {
		case len(classes) == 0:
			results = append(results, missing("classAccuracy", "model.classes is empty: the classes to check are unknown"))
		case n != len(classes):
			results = append(results, missing("classAccuracy",
				fmt.Sprintf("metrics.classAccuracy has %d entries for %d classes in model.classes", n, len(classes))))
		}
		for i, acc := range metrics.ClassAccuracy {
			name := fmt.Sprint(i)
			if i < len(classes) {
				name = classes[i]
			}
			results = append(results, atLeast("classAccuracy["+name+"]", acc, g.MinClassAccuracy))
		}
	}
	if g.MaxModelBytes > 0 {
		if metrics.ModelBytes <= 0 {
			results = append(results, missing("modelBytes", "metrics.modelBytes is missing"))
		} else {
			results = append(results, atMost("modelBytes", float64(metrics.ModelBytes), float64(g.MaxModelBytes)))
		}
	}
	return results
}

// Failed returns the results that did not pass.
func Failed(results []GateResult) []GateResult {
	var failed []GateResult
	for _, r := range results {
		if !r.Passed {
			failed = append(failed, r)
		}
	}
	return failed
}

// Report lists results one per line, failures first.
func Report(results []GateResult) string {
	var b strings.Builder
	for _, pass := range []bool{false, true} {
		for _, r := range results {
			if r.Passed == pass {
				b.WriteString(r.String() + "\n")
			}
		}
	}
	return b.String()
}
