package arch

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"gopkg.in/yaml.v3"

	"github.com/aerie-ml/aerie/internal/repofile"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// fmnist is the input and class count of Fashion-MNIST.
var fmnist = Input{H: 28, W: 28, C: 1}

const fmnistClasses = 10

// models are the architecture files at the repository root.
var models = []string{"cnn", "small", "resnet-small", "shapes-resnet"}

func load(t testing.TB, name string) *Spec {
	t.Helper()
	file := filepath.Join("..", "..", Dir, name+".yaml")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Parse(file, data)
	if err != nil {
		t.Fatalf("Parse(%s): %v", file, err)
	}
	if s.Name != name {
		t.Fatalf("%s: metadata.name is %q, want %q (the file's name)", file, s.Name, name)
	}
	return s
}

func plan(t testing.TB, name string) *Plan {
	t.Helper()
	p, err := load(t, name).Plan(fmnist, fmnistClasses)
	if err != nil {
		t.Fatalf("Plan(%s): %v", name, err)
	}
	return p
}

// golden renders everything a plan decides: the table, then every tensor
// and dropout mask in order.
func golden(p *Plan) string {
	var b strings.Builder
	b.WriteString(p.String())
	b.WriteString("\nparams:\n")
	for _, q := range p.Params {
		fmt.Fprintf(&b, "  %s %v fanIn=%d init=%s\n", q.Name, q.Shape, q.FanIn, q.Init)
	}
	b.WriteString("state:\n")
	for _, q := range p.State {
		fmt.Fprintf(&b, "  %s %v init=%s\n", q.Name, q.Shape, q.Init)
	}
	b.WriteString("dropouts:\n")
	for _, m := range p.Dropouts {
		fmt.Fprintf(&b, "  %g %s\n", m.Rate, m.Shape)
	}
	return b.String()
}

func TestPlanGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", Dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, strings.TrimSuffix(filepath.Base(f), ".yaml"))
	}
	if diff := cmp.Diff(models, names, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("files in %s (-golden tests +files): add new ones to models:\n%s", Dir, diff)
	}
	for _, name := range models {
		t.Run(name, func(t *testing.T) {
			got := golden(plan(t, name))
			file := filepath.Join("testdata", name+".plan")
			if *update {
				if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("plan of %s (-%s +got); rerun with -update if intended:\n%s", name, file, diff)
			}
		})
	}
}

// base is a valid file using every layer; the error tests edit it, so the
// line numbers in their messages are those below.
const base = `apiVersion: aerie.dev/v1alpha1
kind: Architecture
metadata:
  name: test
layers:
  - conv: {filters: 8, kernel: 3, stride: 1, padding: same, groups: 1, bias: true}
  - batchnorm: {epsilon: 0.001, momentum: 0.1}
  - silu
  - residual:
      name: block
      layers:
        - conv: {filters: 16, stride: 2}
        - relu
  - maxpool: {size: 2, stride: 2}
  - avgpool: {size: 1}
  - dropout: {rate: 0.1}
  - globalavgpool
  - dense: {units: 32, bias: false}
  - relu:
  - dense: {units: classes}
`

const file = "models/test.yaml"

// edit replaces the first occurrence of each old string in base.
func edit(t *testing.T, pairs ...string) string {
	t.Helper()
	s := base
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("base lacks %q", pairs[i])
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	return s
}

func TestParse(t *testing.T) {
	s, err := Parse(file, []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	want := &Spec{File: file, Name: "test", Layers: []Layer{
		{Op: Conv, Line: 6, Path: "layers[0].conv", Name: "conv1", Kernel: 3, Stride: 1, Padding: 1, Filters: 8, Groups: 1, Bias: true},
		{Op: BatchNorm, Line: 7, Path: "layers[1].batchnorm", Name: "bn1", Epsilon: 0.001, Momentum: 0.1},
		{Op: SiLU, Line: 8, Path: "layers[2].silu"},
		{Op: Residual, Line: 9, Path: "layers[3].residual", Name: "block", Layers: []Layer{
			{Op: Conv, Line: 12, Path: "layers[3].residual.layers[0].conv", Name: "conv2", Kernel: 3, Stride: 2, Padding: 1, Filters: 16, Groups: 1, Bias: true},
			{Op: ReLU, Line: 13, Path: "layers[3].residual.layers[1].relu"},
		}},
		{Op: MaxPool, Line: 14, Path: "layers[4].maxpool", Kernel: 2, Stride: 2},
		{Op: AvgPool, Line: 15, Path: "layers[5].avgpool", Kernel: 1, Stride: 1},
		{Op: Dropout, Line: 16, Path: "layers[6].dropout", Rate: 0.1},
		{Op: GlobalAvgPool, Line: 17, Path: "layers[7].globalavgpool"},
		{Op: Dense, Line: 18, Path: "layers[8].dense", Name: "fc1", Units: 32},
		{Op: ReLU, Line: 19, Path: "layers[9].relu"},
		{Op: Dense, Line: 20, Path: "layers[10].dense", Name: "fc2", Units: UnitsClasses, Bias: true},
	}}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
	p, err := s.Plan(fmnist, fmnistClasses)
	if err != nil {
		t.Fatal(err)
	}
	var outputs []string
	for _, r := range p.Rows {
		outputs = append(outputs, r.Output.String())
	}
	wantOut := []string{"28×28×8", "28×28×8", "28×28×8", "14×14×16", "14×14×16", "14×14×16", "7×7×16", "7×7×16", "7×7×16", "16", "32", "32", "10"}
	if diff := cmp.Diff(wantOut, outputs); diff != "" {
		t.Errorf("outputs (-want +got):\n%s", diff)
	}
	if r := p.Rows[3]; r.Projection != 2 || r.Params != 8*16+16 {
		t.Errorf("residual row = %+v, want a stride-2 projection of 144 params", r)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		data string
		want string
	}{
		{"wrong type", edit(t, "filters: 8", "filters: eight"),
			file + `:6: layers[0].conv.filters: must be an integer between 1 and 4096, got "eight"`},
		{"out of range", edit(t, "kernel: 3", "kernel: 16"),
			file + ":6: layers[0].conv.kernel: must be an integer between 1 and 15, got 16"},
		{"unknown field", edit(t, "bias: true}", "bias: true, dilation: 2}"),
			file + ":6: layers[0].conv.dilation: unknown field; allowed fields: bias, filters, groups, kernel, name, padding, stride"},
		{"field of a layer without any", edit(t, "- silu", "- silu: {beta: 1}"),
			file + ":8: layers[2].silu.beta: unknown field; this layer has no fields"},
		{"duplicate field", edit(t, "bias: true}", "bias: true, filters: 9}"),
			file + ":6: layers[0].conv.filters: duplicate field"},
		{"missing field", edit(t, "- dropout: {rate: 0.1}", "- dropout"),
			file + ":16: layers[6].dropout.rate: is required: the probability of zeroing an element, in [0, 1)"},
		{"missing field, null", edit(t, "- dense: {units: 32, bias: false}", "- dense:"),
			file + ":18: layers[8].dense.units: is required: classes or the number of outputs"},
		{"same padding, even kernel", edit(t, "kernel: 3", "kernel: 4"),
			file + ":6: layers[0].conv.padding: same needs an odd kernel, got kernel 4: give the padding as a number"},
		{"padding as big as the kernel", edit(t, "padding: same", "padding: 3"),
			file + ":6: layers[0].conv.padding: must be same, valid or an integer between 0 and 2 (below the kernel), got 3"},
		{"rate 1", edit(t, "rate: 0.1", "rate: 1"),
			file + ":16: layers[6].dropout.rate: must be a number in [0, 1), got 1"},
		{"momentum 0", edit(t, "momentum: 0.1", "momentum: 0"),
			file + ":7: layers[1].batchnorm.momentum: must be a number in (0, 1], got 0"},
		{"units", edit(t, "units: classes", "units: labels"),
			file + `:20: layers[10].dense.units: must be classes (the dataset's class count) or an integer between 1 and 65536, got "labels"`},
		{"bias not bool", edit(t, "bias: false", "bias: no"),
			file + `:18: layers[8].dense.bias: must be true or false, got "no"`},
		{"unknown layer", edit(t, "- silu", "- gelu"),
			file + `:8: layers[2]: unknown layer "gelu"; want one of conv, batchnorm, relu, silu, maxpool, avgpool, globalavgpool, dropout, flatten, dense, residual`},
		{"layer as a list", edit(t, "- silu", "- [silu]"),
			file + ":8: layers[2]: must be a layer: one of conv, batchnorm, relu, silu, maxpool, avgpool, globalavgpool, dropout, flatten, dense, residual, alone or mapped to its fields, got a list"},
		{"two layers in one item", edit(t, "- silu", "- {silu: {}, relu: {}}"),
			file + ":8: layers[2]: must be a layer: one of conv, batchnorm, relu, silu, maxpool, avgpool, globalavgpool, dropout, flatten, dense, residual, alone or mapped to its fields, got a mapping"},
		{"options not a mapping", edit(t, "- maxpool: {size: 2, stride: 2}", "- maxpool: 2"),
			file + ":14: layers[4].maxpool: must be a mapping (allowed fields: size, stride), got 2"},
		{"empty branch", edit(t, "      layers:\n        - conv: {filters: 16, stride: 2}\n        - relu\n", "      layers: []\n"),
			file + ":11: layers[3].residual.layers: must be a list of one or more layers, got a list"},
		{"name taken", edit(t, "name: block", "name: conv1"),
			file + ":9: layers[3].residual: name conv1 is taken by the layer on line 6: give one of them another name"},
		{"default name taken", edit(t, "bias: true}", "bias: true, name: conv2}"),
			file + ":12: layers[3].residual.layers[0].conv: default name conv2 is taken by the layer on line 6: give one of them another name"},
		{"bad name", edit(t, "name: block", "name: Block.1"),
			file + `:10: layers[3].residual.name: must be 1 to 32 lowercase letters, digits and '_', starting with a letter, got "Block.1"`},
		{"name on a layer without parameters", edit(t, "- dropout: {rate: 0.1}", "- dropout: {rate: 0.1, name: d}"),
			file + ":16: layers[6].dropout.name: unknown field; allowed fields: rate"},
		{"anchor and alias", edit(t, "filters: 8", "filters: &n 8", "filters: 16", "filters: *n"),
			file + ":6:21: anchor &n: anchors are not allowed, write the value out\n" +
				file + ":12:27: alias *n: aliases are not allowed, write the value out"},
		{"alias of nothing", edit(t, "filters: 16", "filters: *nope"),
			file + ":12:27: alias *nope: aliases are not allowed, write the value out"},
		{"several problems in line order", edit(t, "rate: 0.1", "rate: 2", "kernel: 3", "kernel: 0"),
			file + ":6: layers[0].conv.kernel: must be an integer between 1 and 15, got 0\n" +
				file + ":16: layers[6].dropout.rate: must be a number in [0, 1), got 2"},
		{"api version", edit(t, "v1alpha1", "v1"),
			file + `:1: apiVersion: must be "aerie.dev/v1alpha1", got "aerie.dev/v1"`},
		{"kind missing", edit(t, "kind: Architecture\n", ""),
			file + `:1: kind: is required: "Architecture"`},
		{"name missing", edit(t, "  name: test\n", "  description: x\n"),
			file + ":4: metadata.name: is required: the architecture's name, its file's name without .yaml"},
		{"bad metadata name", edit(t, "name: test", "name: Test_1"),
			file + `:4: metadata.name: must be 1 to 40 lowercase letters, digits and '-', starting with a letter and not ending with '-', got "Test_1"`},
		{"unknown top-level field", edit(t, "layers:\n", "input: [28, 28, 1]\nlayers:\n"),
			file + ":5: input: unknown field; allowed fields: apiVersion, kind, layers, metadata, normalization"},
		{"not a mapping", "- conv\n", file + ":1: must be a mapping (allowed fields: apiVersion, kind, layers, metadata, normalization), got a list"},
		{"empty", "", file + ":1: empty document: want an Architecture"},
		{"two documents", base + "---\nkind: Architecture\n", file + ":21: a second YAML document: want one Architecture per file"},
		{"syntax", edit(t, "  - silu\n", "  - silu\n - relu\n"), file + ":8: invalid YAML: did not find expected key"},
		{"invalid UTF-8", edit(t, "name: test", "name: t\xffst"), file + ":4:10: invalid UTF-8 (byte 0xff): an architecture is UTF-8 text"},
		{"control character", edit(t, "name: test", "name: t\x01st"), file + ":4:10: character U+0001 is not allowed in YAML"},
		{"too big", base + strings.Repeat("#", MaxBytes), fmt.Sprintf("%s: %d bytes, more than the limit of %d for an architecture", file, len(base)+MaxBytes, MaxBytes)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse(file, []byte(tc.data))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", s)
			}
			if diff := cmp.Diff(tc.want, err.Error()); diff != "" {
				t.Errorf("Parse error (-want +got):\n%s", diff)
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Errorf("error is %T, want Errors", err)
			}
		})
	}
}

func TestParseLimits(t *testing.T) {
	var b strings.Builder
	b.WriteString("apiVersion: aerie.dev/v1alpha1\nkind: Architecture\nmetadata: {name: deep}\nlayers:\n")
	indent := "  "
	for range MaxDepth + 1 {
		b.WriteString(indent + "- residual:\n" + indent + "    layers:\n")
		indent += "      "
	}
	b.WriteString(indent + "- relu\n")
	_, err := Parse(file, []byte(b.String()))
	want := file + ":15: layers[0].residual.layers[0].residual.layers[0].residual.layers[0].residual.layers[0].residual.layers: residual blocks nest more than 4 deep"
	if err == nil || err.Error() != want {
		t.Errorf("Parse(%d nested blocks) = %v, want %s", MaxDepth+1, err, want)
	}

	b.Reset()
	b.WriteString("apiVersion: aerie.dev/v1alpha1\nkind: Architecture\nmetadata: {name: long}\nlayers:\n")
	for range MaxLayers + 1 {
		b.WriteString("  - relu\n")
	}
	_, err = Parse(file, []byte(b.String()))
	want = fmt.Sprintf("%s:%d: layers[%d]: more than %d layers in the file", file, 5+MaxLayers, MaxLayers, MaxLayers)
	if err == nil || err.Error() != want {
		t.Errorf("Parse(%d layers) = %v, want %s", MaxLayers+1, err, want)
	}

	b.Reset()
	b.WriteString("apiVersion: aerie.dev/v1alpha1\nkind: Architecture\nmetadata: {name: bad}\nlayers:\n")
	for range MaxErrors + 5 {
		b.WriteString("  - gelu\n")
	}
	_, err = Parse(file, []byte(b.String()))
	var es Errors
	if !errors.As(err, &es) || len(es) != MaxErrors+1 || es[MaxErrors].Msg != "and 5 more problems not shown" {
		t.Errorf("Parse(%d bad layers) = %v, want %d errors and a count of the rest", MaxErrors+5, err, MaxErrors)
	}
}

// layers wraps a list of layers in a file; its first layer is on line 5.
func layers(ls ...string) string {
	return "apiVersion: aerie.dev/v1alpha1\nkind: Architecture\nmetadata: {name: t}\nlayers:\n  - " + strings.Join(ls, "\n  - ") + "\n"
}

func TestPlanErrors(t *testing.T) {
	tests := []struct {
		name string
		data string
		want string
	}{
		{"dense on a feature map", layers("conv: {filters: 8}", "relu", "dense: {units: classes}"),
			file + ":7: layers[2].dense: input is 28×28×8, a feature map: put flatten or globalavgpool before dense"},
		{"conv after flatten", layers("flatten", "conv: {filters: 8}", "dense: {units: classes}"),
			file + ":6: layers[1].conv: input is 784, flat: conv works on feature maps, put it before flatten, globalavgpool or dense"},
		{"flatten twice", layers("flatten", "flatten", "dense: {units: classes}"),
			file + ":6: layers[1].flatten: input is 784, already flat"},
		{"groups", layers("conv: {filters: 8}", "conv: {filters: 12, groups: 8}", "globalavgpool", "dense: {units: classes}"),
			file + ":6: layers[1].conv: groups 8 must divide the input's 8 channels and the 12 filters"},
		{"kernel larger than the input", layers("maxpool: {size: 8}", "maxpool: {size: 8}", "flatten", "dense: {units: classes}"),
			file + ":6: layers[1].maxpool: input 3×3×1 is smaller than the 8×8 window"},
		{"conv larger than the input", layers("maxpool: {size: 14}", "conv: {filters: 4, kernel: 5, padding: valid}", "flatten", "dense: {units: classes}"),
			file + ":6: layers[1].conv: input 2×2×1 is smaller than the 5×5 kernel with padding 0"},
		{"wrong output", layers("globalavgpool", "dense: {units: 32}"),
			file + ":6: layers[1].dense: the network's output is 32, want 10 (the dataset's classes): end with dense units: classes"},
		{"no classifier", layers("conv: {filters: 10}"),
			file + ":5: layers[0].conv: the network's output is 28×28×10, want 10 (the dataset's classes): end with dense units: classes"},
		{"residual without a projection", layers("residual: {layers: [conv: {filters: 8, padding: valid}]}", "globalavgpool", "dense: {units: classes}"),
			file + ":5: layers[0].residual: the branch maps 28×28×1 to 26×26×8: no 1×1 projection of the input (stride s gives ⌈28/s⌉×⌈28/s⌉) has its height and width"},
		{"residual with a flat branch", layers("residual: {layers: [globalavgpool]}", "dense: {units: classes}"),
			file + ":5: layers[0].residual: the branch's output is 1, flat: it must be a feature map to add to the input 28×28×1"},
		{"residual on a flat input", layers("flatten", "residual: {layers: [relu]}", "dense: {units: classes}"),
			file + ":6: layers[1].residual: input is 784, flat: residual works on feature maps, put it before flatten, globalavgpool or dense"},
		{"in a branch, the inner line", layers("residual:\n      layers:\n        - relu\n        - dense: {units: 4}", "globalavgpool", "dense: {units: classes}"),
			file + ":8: layers[0].residual.layers[1].dense: input is 28×28×1, a feature map: put flatten or globalavgpool before dense"},
		{"a branch ending flat", layers("residual:\n      layers:\n        - flatten\n        - dense: {units: 4}", "dense: {units: classes}"),
			file + ":5: layers[0].residual: the branch's output is 4, flat: it must be a feature map to add to the input 28×28×1"},
		{"too many parameters", layers("flatten", "dense: {units: 65536}", "dense: {units: 65536}", "dense: {units: classes}"),
			file + ":7: layers[2].dense: the model has 4346478592 parameters after this layer, more than 67108864"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse(file, []byte(tc.data))
			if err != nil {
				t.Fatal(err)
			}
			p, err := s.Plan(fmnist, fmnistClasses)
			if err == nil {
				t.Fatalf("Plan succeeded:\n%s", p)
			}
			if diff := cmp.Diff(tc.want, err.Error()); diff != "" {
				t.Errorf("Plan error (-want +got):\n%s", diff)
			}
			if _, ok := errors.AsType[*Error](err); !ok {
				t.Errorf("error is %T, want *Error", err)
			}
		})
	}
}

func TestPlanInputs(t *testing.T) {
	s := load(t, "resnet-small")
	for _, tc := range []struct {
		in      Input
		classes int
		want    string
	}{
		{Input{0, 28, 1}, 10, "plan resnet-small: input 0×28×1: sides must be 1 to 8192 and channels 1 to 4096"},
		{Input{28, 28, 1}, 0, "plan resnet-small: 0 classes, want 1 to 65536"},
	} {
		if _, err := s.Plan(tc.in, tc.classes); err == nil || err.Error() != tc.want {
			t.Errorf("Plan(%v, %d) = %v, want %s", tc.in, tc.classes, err, tc.want)
		}
	}
	// The same file fits another dataset: 32×32 RGB, 100 classes.
	p, err := s.Plan(Input{32, 32, 3}, 100)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Params[0].Shape; !cmp.Equal(got, []int{3, 3, 3, 32}) {
		t.Errorf("stem.weight shape = %v, want [3 3 3 32]", got)
	}
	if got := p.Params[len(p.Params)-2].Shape; !cmp.Equal(got, []int{128, 100}) {
		t.Errorf("fc1.weight shape = %v, want [128 100]", got)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(base))
	for _, name := range models {
		data, err := os.ReadFile(filepath.Join("..", "..", Dir, name+".yaml"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(layers("residual: {layers: [conv: {filters: 8, stride: 3}]}", "globalavgpool", "dense: {units: classes}")))
	f.Add([]byte(strings.Replace(base, "layers:", "normalization: {mean: [0.5], std: [0.25]}\nlayers:", 1)))
	f.Add([]byte(strings.Replace(base, "layers:", imagenet, 1)))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(file, data)
		if err != nil {
			var es Errors
			if !errors.As(err, &es) || len(es) == 0 || len(es) > MaxErrors+1 {
				t.Fatalf("Parse error %T with %d problems: %v", err, len(es), err)
			}
			return
		}
		p, err := s.Plan(fmnist, fmnistClasses)
		if err != nil {
			if e, ok := errors.AsType[*Error](err); !ok || e.Line < 1 || e.Field == "" {
				t.Fatalf("Plan error %#v does not name a layer's line", err)
			}
			return
		}
		var out Shape // of the last top-level layer; a block's row precedes its branch's
		for _, r := range p.Rows {
			if r.Depth == 0 {
				out = r.Output
			}
		}
		if !cmp.Equal(out, Shape{fmnistClasses}) {
			t.Fatalf("plan ends in %s, want %d", out, fmnistClasses)
		}
		_ = p.String()
	})
}

func TestParseNode(t *testing.T) {
	const run = `spec:
  model:
    architecture:
      metadata: {name: inline}
      layers:
        - flatten
        - dense: {units: classes}
`
	node := func(t *testing.T, s string) *yaml.Node {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(s), &doc); err != nil {
			t.Fatal(err)
		}
		return doc.Content[0].Content[1].Content[1].Content[1]
	}
	s, err := ParseNode("run.yaml", node(t, run), "spec.model.architecture")
	if err != nil {
		t.Fatal(err)
	}
	want := &Spec{File: "run.yaml", Name: "inline", Layers: []Layer{
		{Op: Flatten, Line: 6, Path: "spec.model.architecture.layers[0].flatten"},
		{Op: Dense, Line: 7, Path: "spec.model.architecture.layers[1].dense", Name: "fc1", Units: UnitsClasses, Bias: true},
	}}
	if diff := cmp.Diff(want.Layers, s.Layers); diff != "" || s.Name != want.Name {
		t.Errorf("ParseNode = %s, layers (-want +got):\n%s", s.Name, diff)
	}

	for _, tt := range []struct{ name, edit, want string }{
		{"unknown field", "layers:", "run.yaml:4: spec.model.architecture.layers: is required: the list of layers\n" +
			"run.yaml:5: spec.model.architecture.layerz: unknown field; allowed fields: apiVersion, kind, layers, metadata, normalization"},
		{"no name", "metadata: {name: inline}", "run.yaml:4: spec.model.architecture.metadata.name: is required: the architecture's name, its file's name without .yaml"},
		{"wrong kind", "metadata: {name: inline}", "run.yaml:5: spec.model.architecture.kind: must be \"Architecture\", got \"Run\""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := map[string]string{
				"unknown field": strings.Replace(run, "layers:", "layerz:", 1),
				"no name":       strings.Replace(run, "metadata: {name: inline}", "metadata: {}", 1),
				"wrong kind":    strings.Replace(run, "metadata: {name: inline}", "metadata: {name: inline}\n      kind: Run", 1),
			}[tt.name]
			_, err := ParseNode("run.yaml", node(t, in), "spec.model.architecture")
			if err == nil || err.Error() != tt.want {
				t.Errorf("ParseNode = %v, want\n%s", err, tt.want)
			}
		})
	}
}

// TestMarshal: every models/ file, written in canonical form, reads back
// to an Equal spec with the same plan, and the canonical form is a fixed
// point; inline (ParseNode) it reads back the same too.
func TestMarshal(t *testing.T) {
	for _, name := range BuiltinNames() {
		t.Run(name, func(t *testing.T) {
			s, err := Builtin(name)
			if err != nil {
				t.Fatal(err)
			}
			out, err := Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			again, err := Parse("canonical.yaml", out)
			if err != nil {
				t.Fatalf("Parse(Marshal(%s)): %v\n%s", name, err, out)
			}
			if !s.Equal(again) {
				t.Errorf("Parse(Marshal(%s)) is not Equal to it", name)
			}
			if out2, _ := Marshal(again); !bytes.Equal(out, out2) {
				t.Errorf("Marshal is not a fixed point:\n%s\n---\n%s", out, out2)
			}
			p1, err1 := s.Plan(Input{H: 28, W: 28, C: 1}, 10)
			p2, err2 := again.Plan(Input{H: 28, W: 28, C: 1}, 10)
			if err1 != nil || err2 != nil || p1.NumParams != p2.NumParams || p1.FLOPs != p2.FLOPs || p1.ActivationBytes != p2.ActivationBytes ||
				!cmp.Equal(p1.Params, p2.Params) || !cmp.Equal(p1.State, p2.State) || !cmp.Equal(p1.Dropouts, p2.Dropouts) {
				t.Errorf("plans differ: %v %v", err1, err2)
			}
			var doc yaml.Node
			if err := yaml.Unmarshal(out, &doc); err != nil {
				t.Fatal(err)
			}
			inline, err := ParseNode("run.yaml", doc.Content[0], "spec.model.architecture")
			if err != nil || !s.Equal(inline) {
				t.Errorf("ParseNode(Node(%s)) = %v, not Equal", name, err)
			}
		})
	}
	a, _ := Builtin("cnn")
	b, _ := Builtin("small")
	if a.Equal(b) || a.Equal(nil) {
		t.Error("cnn Equal small or nil")
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, Dir), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{
		"test":    base,
		"renamed": base,
		"big":     strings.Repeat("#", MaxBytes+1),
	} {
		if err := os.WriteFile(filepath.Join(dir, Dir, name+".yaml"), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("test.yaml", filepath.Join(dir, Dir, "link.yaml")); err != nil {
		t.Fatal(err)
	}
	tree, err := repofile.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer tree.Close()
	s, err := Load(tree, "test")
	if err != nil {
		t.Fatal(err)
	}
	if s.File != "models/test.yaml" || s.Name != "test" || len(s.Layers) != 11 {
		t.Errorf("Load(test) = %s %s with %d layers, want models/test.yaml test with 11", s.File, s.Name, len(s.Layers))
	}
	for _, tc := range []struct{ name, want string }{
		{"renamed", `models/renamed.yaml:4: metadata.name: must be "renamed", the file's name without .yaml, got "test"`},
		{"../x", `architecture "../x": must be 1 to 40 lowercase letters, digits and '-', starting with a letter and not ending with '-'`},
		{"missing", "architecture missing: no file models/missing.yaml in " + dir},
		{"big", "bytes, more than the limit of 65536"},
		{"link", "not a regular file"},
	} {
		_, err := Load(tree, tc.name)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Load(%s) = %v, want an error containing %s", tc.name, err, tc.want)
		}
	}
}
