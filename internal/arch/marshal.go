package arch

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Node returns s in its canonical form, the mapping of an architecture file
// with every field spelled out: every layer's name, padding as a number,
// every default. Parse and ParseNode read it back to a Spec that is Equal
// to s; a TrainingRun carries its architecture inline in this form.
func (s *Spec) Node() *yaml.Node {
	meta := mapping(false, "name", str(s.Name))
	if s.Description != "" {
		meta.Content = append(meta.Content, str("description"), str(s.Description))
	}
	n := mapping(false,
		"apiVersion", str(APIVersion),
		"kind", str(Kind),
		"metadata", meta)
	if !s.Normalization.IsZero() {
		n.Content = append(n.Content, str("normalization"), mapping(false,
			"mean", floats(s.Normalization.Mean), "std", floats(s.Normalization.Std)))
	}
	n.Content = append(n.Content, str("layers"), layersNode(s.Layers))
	return n
}

func floats(vs []float64) *yaml.Node {
	seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle}
	for _, v := range vs {
		seq.Content = append(seq.Content, float(v))
	}
	return seq
}

// Marshal returns the canonical file of s (Node).
func Marshal(s *Spec) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(s.Node()); err != nil {
		return nil, fmt.Errorf("encode architecture %s: %w", s.Name, err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode architecture %s: %w", s.Name, err)
	}
	return b.Bytes(), nil
}

// Equal reports whether s and o are the same architecture: the same
// canonical form, wherever each was read from.
func (s *Spec) Equal(o *Spec) bool {
	if s == nil || o == nil {
		return s == o
	}
	a, errA := Marshal(s)
	b, errB := Marshal(o)
	return errA == nil && errB == nil && bytes.Equal(a, b)
}

func layersNode(ls []Layer) *yaml.Node {
	seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	for i := range ls {
		seq.Content = append(seq.Content, layerNode(&ls[i]))
	}
	return seq
}

func layerNode(l *Layer) *yaml.Node {
	var fields *yaml.Node
	switch l.Op {
	case Conv:
		fields = mapping(true, "name", str(l.Name), "filters", num(l.Filters), "kernel", num(l.Kernel), "stride", num(l.Stride),
			"padding", num(l.Padding), "groups", num(l.Groups), "bias", boolean(l.Bias))
	case BatchNorm:
		fields = mapping(true, "name", str(l.Name), "epsilon", float(l.Epsilon), "momentum", float(l.Momentum))
	case MaxPool, AvgPool:
		fields = mapping(true, "size", num(l.Kernel), "stride", num(l.Stride))
	case Dropout:
		fields = mapping(true, "rate", float(l.Rate))
	case Dense:
		units := num(l.Units)
		if l.Units == UnitsClasses {
			units = str("classes")
		}
		fields = mapping(true, "name", str(l.Name), "units", units, "bias", boolean(l.Bias))
	case Residual:
		fields = mapping(false, "name", str(l.Name), "layers", layersNode(l.Layers))
	default:
		return str(string(l.Op))
	}
	return mapping(false, string(l.Op), fields)
}

// mapping builds a mapping of alternating keys and value nodes.
func mapping(flow bool, kv ...any) *yaml.Node {
	m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	if flow {
		m.Style = yaml.FlowStyle
	}
	for i := 0; i+1 < len(kv); i += 2 {
		m.Content = append(m.Content, str(kv[i].(string)), kv[i+1].(*yaml.Node))
	}
	return m
}

func str(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

func num(n int) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(n)}
}

func float(f float64) *yaml.Node {
	v := strconv.FormatFloat(f, 'g', -1, 64)
	if !strings.ContainsAny(v, ".e") {
		v += ".0" // 0.0, not the integer 0
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: v}
}

func boolean(b bool) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(b)}
}
