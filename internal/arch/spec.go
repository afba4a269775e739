package arch

import (
	"fmt"

	"github.com/aerie-ml/aerie/internal/strictyaml"
)

// APIVersion and Kind identify an architecture file.
const (
	APIVersion = "aerie.dev/v1alpha1"
	Kind       = "Architecture"
)

// Dir is where architecture files live, relative to the repository root:
// spec.model.architecture: cnn names Dir/cnn.yaml.
const Dir = "models"

// Spec is a parsed architecture: a name and a sequence of layers. The input
// shape and the class count are not part of it; they come from the dataset
// (Plan).
type Spec struct {
	File        string // as given to Parse, for errors
	Name        string
	Description string // optional
	// Normalization is the declared input normalization; zero means
	// DefaultNormalization for the dataset's channels (Plan).
	Normalization Normalization
	// NormalizationLine and NormalizationPath place the normalization
	// field, for Plan's errors.
	NormalizationLine int
	NormalizationPath string
	Layers            []Layer
}

// Op is the kind of a layer.
type Op string

// The layer kinds, as the YAML names them.
const (
	Conv          Op = "conv"
	BatchNorm     Op = "batchnorm"
	ReLU          Op = "relu"
	SiLU          Op = "silu"
	MaxPool       Op = "maxpool"
	AvgPool       Op = "avgpool"
	GlobalAvgPool Op = "globalavgpool"
	Dropout       Op = "dropout"
	Flatten       Op = "flatten"
	Dense         Op = "dense"
	Residual      Op = "residual"
)

// Ops lists the layer kinds in the order errors list them.
var Ops = []Op{Conv, BatchNorm, ReLU, SiLU, MaxPool, AvgPool, GlobalAvgPool, Dropout, Flatten, Dense, Residual}

// Layer is one layer. Which fields apply depends on Op; the others are zero.
type Layer struct {
	Op   Op
	Line int    // of the layer's list item
	Path string // its field path, such as layers[4].residual.layers[1]

	// Name prefixes the layer's parameters (Name.weight, Name.bias, ...):
	// conv, dense, batchnorm and residual (whose projection is Name.proj).
	// Unset in the file, it is the op's prefix and a count of that op so
	// far in the file: conv1, conv2, fc1, bn1, res1.
	Name string

	// Kernel is the square window of conv and the pools; Stride its step.
	Kernel, Stride int
	// Padding is the zeros added on each side (conv only).
	Padding int
	// Filters and Groups: conv's output channels, and the groups its input
	// and output channels are split into.
	Filters, Groups int
	// Bias: conv and dense add a learned bias.
	Bias bool
	// Units is dense's output size; UnitsClasses means the class count.
	Units int
	// Rate is dropout's probability of zeroing an element.
	Rate float64
	// Epsilon and Momentum of batch norm: running = (1-Momentum)·running +
	// Momentum·batch, as PyTorch's BatchNorm2d.
	Epsilon, Momentum float64
	// Layers is a residual block's branch.
	Layers []Layer
}

// UnitsClasses is the Units of a dense layer declared with units: classes.
const UnitsClasses = 0

// Error is one problem in an architecture file, at a line and field.
type Error = strictyaml.Error

// Errors is every problem found, in line order.
type Errors = strictyaml.Errors

// describe is a layer's short description for the plan table, such as
// "conv 3×3/2 64" or "dropout 0.25".
func (l *Layer) describe() string {
	switch l.Op {
	case Conv:
		s := fmt.Sprintf("conv %d×%d", l.Kernel, l.Kernel)
		if l.Stride != 1 {
			s += fmt.Sprintf("/%d", l.Stride)
		}
		s += fmt.Sprintf(" %d", l.Filters)
		if l.Groups != 1 {
			s += fmt.Sprintf(" g%d", l.Groups)
		}
		if l.Padding != (l.Kernel-1)/2 {
			s += fmt.Sprintf(" p%d", l.Padding)
		}
		return s
	case MaxPool, AvgPool:
		s := fmt.Sprintf("%s %d", l.Op, l.Kernel)
		if l.Stride != l.Kernel {
			s += fmt.Sprintf("/%d", l.Stride)
		}
		return s
	case Dropout:
		return fmt.Sprintf("dropout %g", l.Rate)
	case Dense:
		if l.Units == UnitsClasses {
			return "dense classes"
		}
		return fmt.Sprintf("dense %d", l.Units)
	}
	return string(l.Op)
}
