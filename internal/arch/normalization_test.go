package arch

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// imagenet is a declared normalization: ImageNet's per-channel statistics.
const imagenet = "normalization:\n  mean: [0.485, 0.456, 0.406]\n  std: [0.229, 0.224, 0.225]\nlayers:"

// TestNormalizationDeclared: a declared normalization is parsed, planned
// on images of as many channels, written by Marshal and read back; a file
// declaring none plans the default for any channel count.
func TestNormalizationDeclared(t *testing.T) {
	s, err := Parse(file, []byte(strings.Replace(base, "layers:", imagenet, 1)))
	if err != nil {
		t.Fatal(err)
	}
	want := Normalization{Mean: []float64{0.485, 0.456, 0.406}, Std: []float64{0.229, 0.224, 0.225}}
	if diff := cmp.Diff(want, s.Normalization); diff != "" {
		t.Errorf("Normalization (-want +got):\n%s", diff)
	}
	p, err := s.Plan(Input{H: 32, W: 32, C: 3}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, p.Normalization); diff != "" {
		t.Errorf("Plan.Normalization (-want +got):\n%s", diff)
	}
	out, err := Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse("canonical.yaml", out)
	if err != nil || !again.Equal(s) || !again.Normalization.Equal(want) {
		t.Errorf("Parse(Marshal) = %v, %+v; want it Equal, normalized by %s:\n%s", err, again, want, out)
	}
	plain, err := Parse(file, []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if out, _ := Marshal(plain); bytes.Contains(out, []byte("normalization")) {
		t.Errorf("Marshal of a file without normalization spells one out:\n%s", out)
	}
	for _, c := range []int{1, 3} {
		p, err := plain.Plan(Input{H: 28, W: 28, C: c}, 10)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(DefaultNormalization(c), p.Normalization); diff != "" {
			t.Errorf("%d channels: default (-want +got):\n%s", c, diff)
		}
	}
}

// TestNormalizationErrors: problems name the file, the line and the field,
// at Parse for the values and at Plan for the count against the dataset.
func TestNormalizationErrors(t *testing.T) {
	for _, tc := range []struct{ name, decl, want string }{
		{"std 0", "normalization: {mean: [0.5, 0.5], std: [0.5, 0]}",
			file + ":5: normalization.std[1]: must be a finite number above 0, got 0"},
		{"negative std", "normalization: {mean: [0.5], std: [-1]}",
			file + ":5: normalization.std[0]: must be a finite number above 0, got -1"},
		{"lengths", "normalization: {mean: [0.5, 0.5, 0.5], std: [0.5]}",
			file + ":5: normalization.std: 1 deviations for 3 means: give one of each per channel"},
		{"missing std", "normalization: {mean: [0.5]}",
			file + ":5: normalization.std: missing: give one deviation per channel"},
		{"not a number", "normalization: {mean: [half], std: [0.5]}",
			file + `:5: normalization.mean[0]: must be a number, got "half"`},
		{"not a list", "normalization: {mean: 0.5, std: [0.5]}",
			file + ":5: normalization.mean: must be a list of numbers, one per channel, got 0.5"},
		{"unknown field", "normalization: {mean: [0.5], std: [0.5], scale: 255}",
			file + ":5: normalization.scale: unknown field; allowed fields: mean, std"},
		{"not a mapping", "normalization: imagenet",
			file + `:5: normalization: must be a mapping (allowed fields: mean, std), got "imagenet"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(file, []byte(strings.Replace(base, "layers:", tc.decl+"\nlayers:", 1)))
			if err == nil {
				t.Fatal("Parse succeeded")
			}
			if diff := cmp.Diff(tc.want, err.Error()); diff != "" {
				t.Errorf("Parse error (-want +got):\n%s", diff)
			}
		})
	}
	s, err := Parse(file, []byte(strings.Replace(base, "layers:", imagenet, 1)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Plan(Input{H: 28, W: 28, C: 1}, 10)
	want := file + ":6: normalization.mean: 3 values for images of 1 channels: give one mean and one deviation per channel"
	if err == nil || err.Error() != want {
		t.Errorf("Plan on grey images = %v, want %s", err, want)
	}
	if _, ok := errors.AsType[*Error](err); !ok {
		t.Errorf("error is %T, want *Error", err)
	}
}

// TestNormalizationApply: the default is exactly the p/127.5 - 1 that
// models were always trained on, and a declared one is (p/255 - mean)/std
// of each channel.
func TestNormalizationApply(t *testing.T) {
	px := []byte{0, 255, 51, 128, 7, 200}
	got := make([]float32, len(px))
	DefaultNormalization(3).Apply(got, px)
	for i, p := range px {
		if want := float32(p)/127.5 - 1; got[i] != want {
			t.Errorf("default of %d = %v, want exactly %v", p, got[i], want)
		}
	}
	n := Normalization{Mean: []float64{0.485, 0.456, 0.406}, Std: []float64{0.229, 0.224, 0.225}}
	n.Apply(got, px)
	values := make([]float32, len(px))
	for i, p := range px {
		values[i] = float32(p)
	}
	n.ApplyValues(values)
	approx := cmp.Comparer(func(x, y float32) bool { return x-y < 1e-5 && y-x < 1e-5 })
	for i, p := range px {
		c := i % 3
		want := float32((float64(p)/255 - n.Mean[c]) / n.Std[c])
		if !cmp.Equal(want, got[i], approx) || values[i] != got[i] {
			t.Errorf("pixel %d (%d, channel %d) = %v and %v, want %v", i, p, c, got[i], values[i], want)
		}
	}
}
