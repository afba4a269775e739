// Package tfcheck checks Terraform configurations offline, where `terraform
// validate` cannot run because the providers cannot be installed: every file
// parses, every variable and output is typed and described, every reference
// to a variable, local or module output names something declared, and every
// module call passes exactly the variables its module declares (all required
// ones, no unknown ones), and every IAM condition's object-name prefix ends
// in a slash.
package tfcheck

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// Module is what the checks need to know about one Terraform module (a
// directory of .tf files).
type Module struct {
	Dir       string
	Variables map[string]Variable
	Outputs   map[string]Output
	Locals    map[string]hcl.Range
	Calls     map[string]Call
	// Conditions are the IAM condition expressions of its resources.
	Conditions []Condition
	// refs are every traversal in the module's expressions, to resolve
	// var.X, local.X and module.X.Y.
	refs []hcl.Traversal
}

// Condition is the expression of a resource's `condition` block, as written.
type Condition struct {
	Source string
	Range  hcl.Range
}

// Variable is a `variable` block.
type Variable struct {
	Name        string
	Type        bool
	Description string
	Required    bool // no default
	Range       hcl.Range
}

// Output is an `output` block.
type Output struct {
	Name        string
	Description string
	Range       hcl.Range
}

// Call is a `module` block.
type Call struct {
	Name   string
	Source string
	Args   map[string]hcl.Range
	Range  hcl.Range
}

// startsWith finds the prefixes of resource.name.startsWith("...") in an
// IAM condition as written in HCL (quotes escaped).
var startsWith = regexp.MustCompile(`startsWith\(\\"((?:[^"\\]|\\[^"])*)\\"\)`)

// moduleMeta are module block arguments Terraform itself interprets.
var moduleMeta = map[string]bool{
	"source": true, "version": true, "providers": true,
	"depends_on": true, "count": true, "for_each": true,
}

// Load parses every .tf file of dir. Parse errors are returned as
// diagnostics naming file and line.
func Load(dir string) (*Module, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.tf"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: no .tf files", dir)
	}
	sort.Strings(files)
	m := &Module{
		Dir:       dir,
		Variables: map[string]Variable{},
		Outputs:   map[string]Output{},
		Locals:    map[string]hcl.Range{},
		Calls:     map[string]Call{},
	}
	p := hclparse.NewParser()
	var diags hcl.Diagnostics
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		file, d := p.ParseHCL(src, f)
		diags = append(diags, d...)
		if d.HasErrors() {
			continue
		}
		diags = append(diags, m.add(file.Body.(*hclsyntax.Body), src)...)
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return m, nil
}

func (m *Module) add(body *hclsyntax.Body, src []byte) hcl.Diagnostics {
	var diags hcl.Diagnostics
	m.collectRefs(body)
	for _, b := range body.Blocks {
		switch b.Type {
		case "variable":
			v := Variable{Name: b.Labels[0], Range: b.DefRange(), Required: true}
			if _, ok := b.Body.Attributes["type"]; ok {
				v.Type = true
			}
			if _, ok := b.Body.Attributes["default"]; ok {
				v.Required = false
			}
			v.Description, diags = stringAttr(b.Body, "description", diags)
			m.Variables[v.Name] = v
		case "output":
			o := Output{Name: b.Labels[0], Range: b.DefRange()}
			o.Description, diags = stringAttr(b.Body, "description", diags)
			m.Outputs[o.Name] = o
		case "locals":
			for name, a := range b.Body.Attributes {
				m.Locals[name] = a.NameRange
			}
		case "module":
			c := Call{Name: b.Labels[0], Range: b.DefRange(), Args: map[string]hcl.Range{}}
			c.Source, diags = stringAttr(b.Body, "source", diags)
			for name, a := range b.Body.Attributes {
				if !moduleMeta[name] {
					c.Args[name] = a.NameRange
				}
			}
			m.Calls[c.Name] = c
		case "resource":
			for _, cb := range b.Body.Blocks {
				if a, ok := cb.Body.Attributes["expression"]; ok && cb.Type == "condition" {
					r := a.Expr.Range()
					m.Conditions = append(m.Conditions, Condition{Source: string(r.SliceBytes(src)), Range: r})
				}
			}
		}
	}
	return diags
}

// collectRefs records every variable traversal in body, nested blocks
// included.
func (m *Module) collectRefs(body *hclsyntax.Body) {
	for _, a := range body.Attributes {
		m.refs = append(m.refs, a.Expr.Variables()...)
	}
	for _, b := range body.Blocks {
		m.collectRefs(b.Body)
	}
}

func stringAttr(body *hclsyntax.Body, name string, diags hcl.Diagnostics) (string, hcl.Diagnostics) {
	a, ok := body.Attributes[name]
	if !ok {
		return "", diags
	}
	v, d := a.Expr.Value(nil)
	if d.HasErrors() || !v.Type().Equals(cty.String) || v.IsNull() {
		return "", append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  name + " must be a literal string",
			Subject:  a.Expr.Range().Ptr(),
		})
	}
	return v.AsString(), diags
}

// Problem is one failed check, located in a file.
type Problem struct {
	Range   hcl.Range
	Message string
}

func (p Problem) String() string {
	return fmt.Sprintf("%s:%d: %s", p.Range.Filename, p.Range.Start.Line, p.Message)
}

// Check runs the per-module checks on m, loading the local modules it calls
// (sources starting with ./ or ../) to check the calls.
func Check(m *Module) ([]Problem, error) {
	var ps []Problem
	for _, v := range sortedValues(m.Variables) {
		if !v.Type {
			ps = append(ps, Problem{v.Range, fmt.Sprintf("variable %q has no type", v.Name)})
		}
		if strings.TrimSpace(v.Description) == "" {
			ps = append(ps, Problem{v.Range, fmt.Sprintf("variable %q has no description", v.Name)})
		}
	}
	for _, o := range sortedValues(m.Outputs) {
		if strings.TrimSpace(o.Description) == "" {
			ps = append(ps, Problem{o.Range, fmt.Sprintf("output %q has no description", o.Name)})
		}
	}
	for _, c := range m.Conditions {
		for _, match := range startsWith.FindAllStringSubmatch(c.Source, -1) {
			if !strings.HasSuffix(match[1], "/") {
				ps = append(ps, Problem{c.Range, fmt.Sprintf("condition prefix %q does not end in /: it also grants every name that merely starts with it (teams/a matches teams/ab/)", match[1])})
			}
		}
	}
	called := map[string]*Module{}
	for _, c := range sortedValues(m.Calls) {
		if !strings.HasPrefix(c.Source, "./") && !strings.HasPrefix(c.Source, "../") {
			continue // registry modules: their interface is not here to check
		}
		callee, err := Load(filepath.Join(m.Dir, c.Source))
		if err != nil {
			return nil, fmt.Errorf("module %q (%s:%d): %w", c.Name, c.Range.Filename, c.Range.Start.Line, err)
		}
		called[c.Name] = callee
		for _, arg := range sortedKeys(c.Args) {
			if _, ok := callee.Variables[arg]; !ok {
				ps = append(ps, Problem{c.Args[arg], fmt.Sprintf("module %q: %s declares no variable %q", c.Name, c.Source, arg)})
			}
		}
		for _, v := range sortedValues(callee.Variables) {
			if _, ok := c.Args[v.Name]; v.Required && !ok {
				ps = append(ps, Problem{c.Range, fmt.Sprintf("module %q: required variable %q of %s is not set", c.Name, v.Name, c.Source)})
			}
		}
	}
	for _, t := range m.refs {
		ps = append(ps, m.checkRef(t, called)...)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].String() < ps[j].String() })
	return ps, nil
}

// CheckVarFile checks a .tfvars file against the root module m: it parses,
// sets only variables m declares, with literal values, and sets every
// required variable except those in fromEnv (set as TF_VAR_<name>).
func CheckVarFile(m *Module, path string, fromEnv ...string) ([]Problem, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	file, diags := hclparse.NewParser().ParseHCL(src, path)
	if diags.HasErrors() {
		return nil, diags
	}
	attrs := file.Body.(*hclsyntax.Body).Attributes
	var ps []Problem
	for _, name := range sortedKeys(attrs) {
		a := attrs[name]
		if _, ok := m.Variables[name]; !ok {
			ps = append(ps, Problem{a.NameRange, fmt.Sprintf("%s declares no variable %q", m.Dir, name)})
		}
		if _, d := a.Expr.Value(nil); d.HasErrors() {
			ps = append(ps, Problem{a.NameRange, fmt.Sprintf("%q must be a literal value", name)})
		}
	}
	for _, v := range sortedValues(m.Variables) {
		if _, ok := attrs[v.Name]; v.Required && !ok && !slices.Contains(fromEnv, v.Name) {
			ps = append(ps, Problem{hcl.Range{Filename: path, Start: hcl.InitialPos}, fmt.Sprintf("required variable %q of %s is not set", v.Name, m.Dir)})
		}
	}
	return ps, nil
}

func (m *Module) checkRef(t hcl.Traversal, called map[string]*Module) []Problem {
	attr := func(i int) (string, bool) {
		if i >= len(t) {
			return "", false
		}
		a, ok := t[i].(hcl.TraverseAttr)
		return a.Name, ok
	}
	r := t.SourceRange()
	name, ok := attr(1)
	if !ok {
		return nil
	}
	switch t.RootName() {
	case "var":
		if _, ok := m.Variables[name]; !ok {
			return []Problem{{r, fmt.Sprintf("reference to undeclared variable %q", name)}}
		}
	case "local":
		if _, ok := m.Locals[name]; !ok {
			return []Problem{{r, fmt.Sprintf("reference to undeclared local %q", name)}}
		}
	case "module":
		c, ok := m.Calls[name]
		if !ok {
			return []Problem{{r, fmt.Sprintf("reference to undeclared module %q", name)}}
		}
		out, ok := attr(2)
		if callee := called[c.Name]; ok && callee != nil {
			if _, ok := callee.Outputs[out]; !ok {
				return []Problem{{r, fmt.Sprintf("module %q (%s) has no output %q", name, c.Source, out)}}
			}
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func sortedValues[V any](m map[string]V) []V {
	vs := make([]V, 0, len(m))
	for _, k := range sortedKeys(m) {
		vs = append(vs, m[k])
	}
	return vs
}
