package manifest

import (
	"fmt"
	"strings"
)

// Gates are the thresholds a model must clear to be promoted. A zero field
// is not checked.
type Gates struct {
	MinTestAccuracy  float64
	MinClassAccuracy float64
	MaxModelBytes    int64
}

// GateResult is the outcome of one gate.
type GateResult struct {
	Name string `json:"name"`
	// Comparison is ">=" or "<=": Value must compare so to Threshold.
	Comparison string  `json:"comparison"`
	Threshold  float64 `json:"threshold"`
	Value      float64 `json:"value"`
	Passed     bool    `json:"passed"`
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
	return fmt.Sprintf("%s %s: %.4g %s %.4g (margin %+.4g)", verdict, r.Name, r.Value, r.Comparison, r.Threshold, r.Margin())
}

func atLeast(name string, value, threshold float64) GateResult {
	return GateResult{Name: name, Comparison: ">=", Threshold: threshold, Value: value, Passed: value >= threshold}
}

func atMost(name string, value, threshold float64) GateResult {
	return GateResult{Name: name, Comparison: "<=", Threshold: threshold, Value: value, Passed: value <= threshold}
}

// Evaluate checks metrics against g: overall test accuracy, the test
// accuracy of every class (named from classes), and the model's size.
func Evaluate(metrics Metrics, classes []string, g Gates) []GateResult {
	var results []GateResult
	if g.MinTestAccuracy > 0 {
		results = append(results, atLeast("testAccuracy", metrics.TestAccuracy, g.MinTestAccuracy))
	}
	if g.MinClassAccuracy > 0 {
		for i, acc := range metrics.ClassAccuracy {
			name := fmt.Sprint(i)
			if i < len(classes) {
				name = classes[i]
			}
			results = append(results, atLeast("classAccuracy["+name+"]", acc, g.MinClassAccuracy))
		}
	}
	if g.MaxModelBytes > 0 {
		results = append(results, atMost("modelBytes", float64(metrics.ModelBytes), float64(g.MaxModelBytes)))
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
