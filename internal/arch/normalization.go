package arch

import (
	"fmt"
	"math"
	"slices"
)

// DefaultMean and DefaultStd normalize every channel of a model whose
// file declares no normalization: (p/255 - 0.5) / 0.5 = p/127.5 - 1, in
// [-1, 1]. They are the one home of that default.
const (
	DefaultMean = 0.5
	DefaultStd  = 0.5
)

// Normalization is what a model's 8-bit input is mapped by before the
// first layer: channel c of pixel p becomes (p/255 - Mean[c]) / Std[c].
// Training, promotion and the device apply it with Apply, so all three
// feed the model the same numbers.
type Normalization struct {
	Mean, Std []float64
}

// DefaultNormalization is the normalization of images of channels
// channels whose architecture declares none.
func DefaultNormalization(channels int) Normalization {
	return Normalization{Mean: slices.Repeat([]float64{DefaultMean}, channels), Std: slices.Repeat([]float64{DefaultStd}, channels)}
}

// IsZero reports whether n declares nothing.
func (n Normalization) IsZero() bool { return len(n.Mean) == 0 && len(n.Std) == 0 }

// Equal reports whether n and o normalize alike.
func (n Normalization) Equal(o Normalization) bool {
	return slices.Equal(n.Mean, o.Mean) && slices.Equal(n.Std, o.Std)
}

func (n Normalization) String() string { return fmt.Sprintf("mean %v std %v", n.Mean, n.Std) }

// NormalizationError is a problem with one field of a Normalization
// (mean, std, or one of their entries, such as std[2]).
type NormalizationError struct {
	Field, Msg string
}

func (e *NormalizationError) Error() string { return e.Field + ": " + e.Msg }

// Check is the one validator of a normalization, wherever it is read
// from: one mean and one deviation per channel (when channels is 0, the
// count is not known yet and any count from 1 to MaxChannels goes), every
// mean finite and every deviation finite and above 0. The error is a
// *NormalizationError.
func (n Normalization) Check(channels int) error {
	switch {
	case len(n.Mean) == 0:
		return &NormalizationError{"mean", "missing: give one mean per channel"}
	case len(n.Std) == 0:
		return &NormalizationError{"std", "missing: give one deviation per channel"}
	case len(n.Mean) != len(n.Std):
		return &NormalizationError{"std", fmt.Sprintf("%d deviations for %d means: give one of each per channel", len(n.Std), len(n.Mean))}
	case channels > 0 && len(n.Mean) != channels:
		return &NormalizationError{"mean", fmt.Sprintf("%d values for images of %d channels: give one mean and one deviation per channel", len(n.Mean), channels)}
	case len(n.Mean) > MaxChannels:
		return &NormalizationError{"mean", fmt.Sprintf("%d values, more than %d channels", len(n.Mean), MaxChannels)}
	}
	for c, m := range n.Mean {
		if math.IsNaN(m) || math.IsInf(m, 0) {
			return &NormalizationError{fmt.Sprintf("mean[%d]", c), fmt.Sprintf("must be a finite number, got %v", m)}
		}
	}
	for c, s := range n.Std {
		if !(s > 0) || math.IsInf(s, 0) {
			return &NormalizationError{fmt.Sprintf("std[%d]", c), fmt.Sprintf("must be a finite number above 0, got %v", s)}
		}
	}
	return nil
}

// Apply writes pixels (row-major, channel last, of len(n.Mean) channels)
// normalized into dst: p/(255·Std[c]) - Mean[c]/Std[c] in float32, which
// for the default is exactly p/127.5 - 1. n must pass Check.
func (n Normalization) Apply(dst []float32, pixels []byte) {
	div, sub := n.coefficients()
	c := len(div)
	for i, p := range pixels {
		dst[i] = float32(p)/div[i%c] - sub[i%c]
	}
}

// ApplyValues normalizes v, pixel values in [0, 255] (row-major, channel
// last), in place, as Apply does.
func (n Normalization) ApplyValues(v []float32) {
	div, sub := n.coefficients()
	c := len(div)
	for i, p := range v {
		v[i] = p/div[i%c] - sub[i%c]
	}
}

func (n Normalization) coefficients() (div, sub []float32) {
	div, sub = make([]float32, len(n.Mean)), make([]float32, len(n.Mean))
	for c := range n.Mean {
		div[c] = float32(255 * n.Std[c])
		sub[c] = float32(n.Mean[c] / n.Std[c])
	}
	return div, sub
}
