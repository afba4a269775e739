package arch

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/aerie-ml/aerie/internal/repofile"
	"github.com/aerie-ml/aerie/internal/strictyaml"
)

// Limits of a file and its fields; README.md lists them.
const (
	MaxBytes      = 64 << 10 // a real file is about 1 KiB
	MaxErrors     = 20       // the rest are counted in a last line
	MaxNameLength = 40       // metadata.name, a DNS label as run names are
	MaxLayers     = 256      // in the whole file, residual branches included
	MaxDepth      = 4        // residual blocks nested in each other
	MaxChannels   = 4096     // conv filters and groups
	MaxUnits      = 65536    // dense units
	MaxKernel     = 15
	MaxStride     = 8
	// MaxDescription bounds metadata.description.
	MaxDescription = 1024
)

// Defaults of the optional layer fields.
const (
	DefaultKernel    = 3 // conv
	DefaultPoolSize  = 2
	DefaultEpsilon   = 1e-5
	DefaultMomentum  = 0.1
	DefaultPadding   = "same"
	maxLayerNameSize = 32
)

var (
	layerNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
)

// prefixes name the parameters of layers declared without a name.
var prefixes = map[Op]string{Conv: "conv", Dense: "fc", BatchNorm: "bn", Residual: "res"}

// Parse decodes and validates the architecture file data read from
// filename (used in errors only). Problems are reported as Errors, in line
// order, at most MaxErrors of them. Parse checks each layer on its own;
// Plan checks that the layers fit together and the dataset.
func Parse(filename string, data []byte) (*Spec, error) {
	return parse(filename, data, "")
}

// Load reads and parses the architecture called name from the repository
// tree t: Dir/<name>.yaml, whose metadata.name must be name.
func Load(t *repofile.Tree, name string) (*Spec, error) {
	if want := validName(name); want != "" {
		return nil, fmt.Errorf("architecture %s: %s", strictyaml.Quote(name), want)
	}
	rel := Dir + "/" + name + ".yaml"
	data, err := t.ReadFile(rel, MaxBytes)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("architecture %s: no file %s in %s: %w", name, rel, t.Dir(), err)
	} else if err != nil {
		return nil, fmt.Errorf("architecture %s: %w", name, err)
	}
	return parse(rel, data, name)
}

// format is what strictyaml checks of a file before it is decoded.
var format = strictyaml.Format{Kind: Kind, Noun: "an architecture", MaxBytes: MaxBytes}

// parse is Parse, checking metadata.name against name unless it is empty.
func parse(filename string, data []byte, name string) (*Spec, error) {
	root, errs := format.Document(filename, data)
	if root == nil {
		return nil, Errors(errs)
	}
	d := newDecoder(filename)
	d.fileName = name
	d.errs = Errors(errs)
	s := &Spec{File: filename}
	if len(d.errs) == 0 {
		d.spec(root, "", s, false)
	}
	return d.result(s)
}

// ParseNode decodes an architecture given inline at path in another file
// (a TrainingRun's spec.model.architecture): a mapping with the fields of
// an architecture file, where apiVersion and kind may be left out.
// Problems name filename and the lines of n. n comes from a document that
// strictyaml.Format.Document read without problems, so it holds no anchor
// or alias.
func ParseNode(filename string, n *yaml.Node, path string) (*Spec, error) {
	d := newDecoder(filename)
	s := &Spec{File: filename}
	d.spec(n, path, s, true)
	return d.result(s)
}

type decoder struct {
	file    string
	errs    Errors
	dropped int
	set     map[string]bool // fields present, by path
	names   map[string]int  // parameter prefixes taken, and their lines
	counts  map[Op]int      // layers of each op so far
	total   int             // layers so far
	// fileName is what metadata.name must be, when known.
	fileName string
}

func newDecoder(file string) *decoder {
	return &decoder{file: file, set: map[string]bool{}, names: map[string]int{}, counts: map[Op]int{}}
}

func (d *decoder) result(s *Spec) (*Spec, error) {
	if len(d.errs) == 0 {
		return s, nil
	}
	slices.SortStableFunc(d.errs, func(a, b *Error) int { return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column)) })
	if d.dropped > 0 {
		d.errs = append(d.errs, &Error{File: d.file, Msg: fmt.Sprintf("and %d more problems not shown", d.dropped)})
	}
	return nil, d.errs
}

// errorf records a problem at n's line; values in messages are quoted with
// got, never whole.
func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	if len(d.errs) >= MaxErrors {
		d.dropped++
		return
	}
	d.errs = append(d.errs, &Error{File: d.file, Line: n.Line, Field: path, Msg: fmt.Sprintf(format, args...)})
}

// mapping decodes the mapping n at path: every key must be one of fields,
// once. A null value stands for an empty mapping when no field is
// required, as in "- relu:".
func (d *decoder) mapping(n *yaml.Node, path string, fields map[string]func(*yaml.Node, string)) {
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range fields {
			if !yield(k) {
				return
			}
		}
	})
	allowed := "allowed fields: " + strings.Join(names, ", ")
	if len(names) == 0 {
		allowed = "this layer has no fields"
	}
	if strictyaml.IsScalar(n, "!!null") {
		return
	}
	if n.Kind != yaml.MappingNode {
		if len(names) == 0 {
			d.errorf(n, path, "takes no fields, got %s", strictyaml.Describe(n))
		} else {
			d.errorf(n, path, "must be a mapping (%s), got %s", allowed, strictyaml.Describe(n))
		}
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag != "!!str" {
			d.errorf(k, path, "keys must be field names (%s), got %s", allowed, strictyaml.Describe(k))
			continue
		}
		p := strictyaml.Join(path, k.Value)
		decode, ok := fields[k.Value]
		if !ok {
			if strictyaml.IsFieldName(k.Value) {
				d.errorf(k, p, "unknown field; %s", allowed)
			} else {
				d.errorf(k, path, "unknown field %s; %s", strictyaml.Describe(k), allowed)
			}
			continue
		}
		if d.set[p] {
			d.errorf(k, p, "duplicate field")
			continue
		}
		d.set[p] = true
		decode(v, p)
	}
}

// required reports field of the mapping n at path when it is missing.
func (d *decoder) required(n *yaml.Node, path, field, want string) {
	p := strictyaml.Join(path, field)
	if !d.set[p] && (n.Kind == yaml.MappingNode || strictyaml.IsScalar(n, "!!null")) {
		d.errorf(n, p, "is required: %s", want)
	}
}

func (d *decoder) integer(lo, hi int, dst *int) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		var v int64
		if !strictyaml.IsScalar(n, "!!int") || n.Decode(&v) != nil || v < int64(lo) || v > int64(hi) {
			d.errorf(n, path, "must be an integer between %d and %d, got %s", lo, hi, strictyaml.Describe(n))
			return
		}
		*dst = int(v)
	}
}

// number decodes a number in [lo, hi), or in (lo, hi] when openLo.
func (d *decoder) number(lo, hi float64, openLo bool, dst *float64) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		var v float64
		ok := strictyaml.IsScalar(n, "!!int", "!!float") && n.Decode(&v) == nil && !math.IsNaN(v)
		if openLo {
			ok = ok && v > lo && v <= hi
		} else {
			ok = ok && v >= lo && v < hi
		}
		if !ok {
			lb, rb := "[", ")"
			if openLo {
				lb, rb = "(", "]"
			}
			d.errorf(n, path, "must be a number in %s%g, %g%s, got %s", lb, lo, hi, rb, strictyaml.Describe(n))
			return
		}
		*dst = v
	}
}

func (d *decoder) boolean(dst *bool) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		if !strictyaml.IsScalar(n, "!!bool") || n.Decode(dst) != nil {
			d.errorf(n, path, "must be true or false, got %s", strictyaml.Describe(n))
		}
	}
}

// str decodes a string that valid accepts; valid returns what is allowed
// when the value is not.
func (d *decoder) str(dst *string, valid func(string) string) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		if !strictyaml.IsScalar(n, "!!str") {
			d.errorf(n, path, "%s, got %s", valid(""), strictyaml.Describe(n))
			return
		}
		if want := valid(n.Value); want != "" {
			d.errorf(n, path, "%s, got %s", want, strictyaml.Describe(n))
			return
		}
		*dst = n.Value
	}
}

func oneOf(allowed string) func(string) string {
	return func(s string) string {
		if s == allowed {
			return ""
		}
		return fmt.Sprintf("must be %q", allowed)
	}
}

func validName(s string) string {
	if len(s) <= MaxNameLength && len(validation.IsDNS1035Label(s)) == 0 {
		return ""
	}
	return fmt.Sprintf("must be 1 to %d lowercase letters, digits and '-', starting with a letter and not ending with '-'", MaxNameLength)
}

func validLayerName(s string) string {
	if len(s) <= maxLayerNameSize && layerNameRE.MatchString(s) {
		return ""
	}
	return fmt.Sprintf("must be 1 to %d lowercase letters, digits and '_', starting with a letter", maxLayerNameSize)
}

// spec decodes an architecture at path; inline, apiVersion and kind are
// optional.
func (d *decoder) spec(root *yaml.Node, path string, s *Spec, inline bool) {
	var apiVersion, kind string
	d.mapping(root, path, map[string]func(*yaml.Node, string){
		"apiVersion": d.str(&apiVersion, oneOf(APIVersion)),
		"kind":       d.str(&kind, oneOf(Kind)),
		"metadata": func(n *yaml.Node, p string) {
			d.mapping(n, p, map[string]func(*yaml.Node, string){
				"name": d.str(&s.Name, func(v string) string {
					if want := validName(v); want != "" || d.fileName == "" || v == d.fileName {
						return want
					}
					return fmt.Sprintf("must be %q, the file's name without .yaml", d.fileName)
				}),
				"description": d.str(&s.Description, func(s string) string {
					if s == "" || len(s) > MaxDescription {
						return fmt.Sprintf("must be a string of 1 to %d bytes", MaxDescription)
					}
					return ""
				}),
			})
			d.required(n, p, "name", "the architecture's name, its file's name without .yaml")
		},
		"normalization": func(n *yaml.Node, p string) { d.normalization(n, p, s) },
		"layers":        func(n *yaml.Node, p string) { s.Layers = d.layers(n, p, 0) },
	})
	if !inline {
		d.required(root, path, "apiVersion", strconv.Quote(APIVersion))
		d.required(root, path, "kind", strconv.Quote(Kind))
	}
	d.required(root, path, "metadata", "a mapping with the name")
	d.required(root, path, "layers", "the list of layers")
}

// normalization decodes {mean: [...], std: [...]}, checked by
// Normalization.Check; Plan checks the count against the dataset's
// channels.
func (d *decoder) normalization(n *yaml.Node, path string, s *Spec) {
	s.NormalizationLine, s.NormalizationPath = n.Line, path
	var norm Normalization
	ok := true
	values := func(dst *[]float64) func(*yaml.Node, string) {
		return func(n *yaml.Node, p string) {
			if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
				d.errorf(n, p, "must be a list of numbers, one per channel, got %s", strictyaml.Describe(n))
				ok = false
				return
			}
			for i, c := range n.Content {
				var v float64
				if !strictyaml.IsScalar(c, "!!int", "!!float") || c.Decode(&v) != nil {
					d.errorf(c, fmt.Sprintf("%s[%d]", p, i), "must be a number, got %s", strictyaml.Describe(c))
					ok = false
					continue
				}
				*dst = append(*dst, v)
			}
		}
	}
	errs := len(d.errs)
	d.mapping(n, path, map[string]func(*yaml.Node, string){"mean": values(&norm.Mean), "std": values(&norm.Std)})
	if len(d.errs) > errs || !ok {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "must be a mapping (mean, std), got %s", strictyaml.Describe(n))
		return
	}
	if err := norm.Check(0); err != nil {
		var ne *NormalizationError
		errors.As(err, &ne)
		d.errorf(n, strictyaml.Join(path, ne.Field), "%s", ne.Msg)
		return
	}
	s.Normalization = norm
}

func (d *decoder) layers(n *yaml.Node, path string, depth int) []Layer {
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		d.errorf(n, path, "must be a list of one or more layers, got %s", strictyaml.Describe(n))
		return nil
	}
	var ls []Layer
	for i, c := range n.Content {
		if l, ok := d.layer(c, fmt.Sprintf("%s[%d]", path, i), depth); ok {
			ls = append(ls, l)
		}
	}
	return ls
}

func opNames() string {
	ns := make([]string, len(Ops))
	for i, o := range Ops {
		ns[i] = string(o)
	}
	return strings.Join(ns, ", ")
}

// layer decodes one list item: an op's name ("- relu"), or a mapping of
// one op to its fields ("- conv: {filters: 32}").
func (d *decoder) layer(n *yaml.Node, path string, depth int) (Layer, bool) {
	d.total++
	if d.total == MaxLayers+1 {
		d.errorf(n, path, "more than %d layers in the file", MaxLayers)
	}
	var key, opts *yaml.Node
	switch {
	case strictyaml.IsScalar(n, "!!str"):
		key, opts = n, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line}
	case n.Kind == yaml.MappingNode && len(n.Content) == 2 && strictyaml.IsScalar(n.Content[0], "!!str"):
		key, opts = n.Content[0], n.Content[1]
	default:
		d.errorf(n, path, "must be a layer: one of %s, alone or mapped to its fields, got %s", opNames(), strictyaml.Describe(n))
		return Layer{}, false
	}
	op := Op(key.Value)
	if !slices.Contains(Ops, op) {
		d.errorf(key, path, "unknown layer %s; want one of %s", strictyaml.Describe(key), opNames())
		return Layer{}, false
	}
	p := path + "." + string(op)
	l := Layer{Op: op, Line: n.Line, Path: p}
	fields := map[string]func(*yaml.Node, string){}
	if _, named := prefixes[op]; named {
		fields["name"] = d.str(&l.Name, validLayerName)
	}
	var padding, branch *yaml.Node
	switch op {
	case Conv:
		l.Kernel, l.Stride, l.Groups, l.Bias = DefaultKernel, 1, 1, true
		fields["filters"] = d.integer(1, MaxChannels, &l.Filters)
		fields["kernel"] = d.integer(1, MaxKernel, &l.Kernel)
		fields["stride"] = d.integer(1, MaxStride, &l.Stride)
		fields["groups"] = d.integer(1, MaxChannels, &l.Groups)
		fields["bias"] = d.boolean(&l.Bias)
		fields["padding"] = func(n *yaml.Node, _ string) { padding = n }
	case BatchNorm:
		l.Epsilon, l.Momentum = DefaultEpsilon, DefaultMomentum
		fields["epsilon"] = d.number(0, 1, true, &l.Epsilon)
		fields["momentum"] = d.number(0, 1, true, &l.Momentum)
	case MaxPool, AvgPool:
		l.Kernel, l.Stride = DefaultPoolSize, 0
		fields["size"] = d.integer(1, MaxKernel, &l.Kernel)
		fields["stride"] = d.integer(1, MaxStride, &l.Stride)
	case Dropout:
		fields["rate"] = d.number(0, 1, false, &l.Rate)
	case Dense:
		l.Bias = true
		fields["bias"] = d.boolean(&l.Bias)
		fields["units"] = func(n *yaml.Node, p string) {
			if strictyaml.IsScalar(n, "!!str") && n.Value == "classes" {
				l.Units = UnitsClasses
				return
			}
			var v int64
			if !strictyaml.IsScalar(n, "!!int") || n.Decode(&v) != nil || v < 1 || v > MaxUnits {
				d.errorf(n, p, "must be classes (the dataset's class count) or an integer between 1 and %d, got %s", MaxUnits, strictyaml.Describe(n))
				return
			}
			l.Units = int(v)
		}
	case Residual:
		fields["layers"] = func(n *yaml.Node, _ string) { branch = n }
	}
	d.mapping(opts, p, fields)
	switch op {
	case Conv:
		d.required(opts, p, "filters", "the number of output channels")
		l.Padding = d.padding(padding, p+".padding", l.Kernel)
	case Dropout:
		d.required(opts, p, "rate", "the probability of zeroing an element, in [0, 1)")
	case Dense:
		d.required(opts, p, "units", "classes or the number of outputs")
	case Residual:
		d.required(opts, p, "layers", "the branch, a list of layers")
		d.nameLayer(&l, key) // a block is numbered before its branch
		if branch != nil && depth+1 > MaxDepth {
			d.errorf(branch, p+".layers", "residual blocks nest more than %d deep", MaxDepth)
		} else if branch != nil {
			l.Layers = d.layers(branch, p+".layers", depth+1)
		}
	case MaxPool, AvgPool:
		if l.Stride == 0 {
			l.Stride = l.Kernel
		}
	}
	if op != Residual {
		d.nameLayer(&l, key)
	}
	return l, true
}

// padding decodes conv's padding: same (keep the size at stride 1: (k-1)/2
// on each side, odd kernels only), valid (none) or zeros on each side.
func (d *decoder) padding(n *yaml.Node, path string, kernel int) int {
	if n == nil {
		n = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: DefaultPadding}
	}
	switch {
	case strictyaml.IsScalar(n, "!!str") && n.Value == "same":
		if kernel%2 == 0 {
			d.errorf(n, path, "same needs an odd kernel, got kernel %d: give the padding as a number", kernel)
		}
		return (kernel - 1) / 2
	case strictyaml.IsScalar(n, "!!str") && n.Value == "valid":
		return 0
	}
	var v int64
	if !strictyaml.IsScalar(n, "!!int") || n.Decode(&v) != nil || v < 0 || v >= int64(kernel) {
		d.errorf(n, path, "must be same, valid or an integer between 0 and %d (below the kernel), got %s", kernel-1, strictyaml.Describe(n))
		return 0
	}
	return int(v)
}

// nameLayer gives a layer with parameters its default name and checks that
// no other layer has it.
func (d *decoder) nameLayer(l *Layer, at *yaml.Node) {
	prefix, ok := prefixes[l.Op]
	if !ok {
		return
	}
	d.counts[l.Op]++
	how := "name"
	if l.Name == "" {
		l.Name = prefix + strconv.Itoa(d.counts[l.Op])
		how = "default name"
	}
	if line, taken := d.names[l.Name]; taken {
		d.errorf(at, l.Path, "%s %s is taken by the layer on line %d: give one of them another name", how, l.Name, line)
		return
	}
	d.names[l.Name] = at.Line
}
