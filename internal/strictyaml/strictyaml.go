// Package strictyaml decodes hand-written YAML files strictly (one
// document, no unknown fields) and reports problems by file, line and field.
package strictyaml

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Error is a problem in a file, located by line and field.
type Error struct {
	File   string
	Line   int    // 0 for the whole file
	Column int    // in bytes, from 1; 0 when only the line is known
	Field  string // dotted path, such as spec.workers.count; empty for the document
	Msg    string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Column > 0 {
		fmt.Fprintf(&b, ":%d", e.Column)
	}
	if e.Field != "" {
		b.WriteString(": " + e.Field)
	}
	b.WriteString(": " + e.Msg)
	return b.String()
}

// MaxQuote is the most bytes of a value, or of a parser's message, that an
// error quotes: a 10 MB value must not become a 10 MB log line.
const MaxQuote = 128

// maxMsg bounds a whole message, whatever its arguments.
const maxMsg = 4 * MaxQuote

// Shorten returns s, or its first MaxQuote bytes (whole characters)
// followed by "…" when s is longer.
func Shorten(s string) string { return shorten(s, MaxQuote) }

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// Quote is strconv.Quote of Shorten(s): the way errors show a value.
func Quote(s string) string { return strconv.Quote(Shorten(s)) }

// yaml.v3 errors read "line N: message".
var lineRE = regexp.MustCompile(`(?s)line (\d+): (.*)`)

// Decode decodes data into dst: an empty file, several documents, unknown
// fields and duplicate keys are errors. It returns the document node, for
// locating fields in later validation.
func Decode(filename string, data []byte, dst any) (*yaml.Node, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{File: filename, Msg: "empty file"}
		}
		return nil, yamlError(filename, nil, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, yamlError(filename, nil, err)
		}
		return nil, &Error{File: filename, Line: extra.Line, Msg: "more than one YAML document"}
	}
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	if err := strict.Decode(dst); err != nil {
		return nil, yamlError(filename, &root, err)
	}
	return &root, nil
}

var (
	unknownRE = regexp.MustCompile("(?s)^field (.+) not found in type .+$")
	// yaml.v3 quotes scalar values in backquotes; collections have none.
	typeRE = regexp.MustCompile("(?s)^cannot unmarshal !!(\\w+)(?: `(.*)`)? into (.+)$")
)

// yamlError turns a yaml.v3 error into an *Error. Messages that yaml.v3
// words in Go types ("field x not found in type pins.Pins", "cannot
// unmarshal !!str `x` into int") are reworded to name the YAML field and
// what it should hold, found in root by line.
func yamlError(filename string, root *yaml.Node, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		err = errors.New(te.Errors[0])
	}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	m := lineRE.FindStringSubmatch(msg)
	if m == nil {
		return &Error{File: filename, Msg: shorten(msg, maxMsg)}
	}
	var line int
	fmt.Sscan(m[1], &line)
	e := &Error{File: filename, Line: line, Msg: shorten(m[2], maxMsg)}
	if u := unknownRE.FindStringSubmatch(m[2]); u != nil {
		e.Field = find(root, "", line, func(key, _ *yaml.Node) bool { return key.Value == u[1] })
		if e.Field == "" {
			e.Field = Shorten(u[1])
		}
		e.Msg = "unknown field; check its spelling and indentation"
	} else if t := typeRE.FindStringSubmatch(m[2]); t != nil {
		e.Field = find(root, "", line, func(_, val *yaml.Node) bool {
			return val.ShortTag() == "!!"+t[1] && (t[2] == "" || val.Value == t[2])
		})
		got := tagNames[t[1]]
		if got == "" {
			got = t[1]
		}
		if t[2] != "" {
			got += " " + Quote(t[2])
		}
		e.Msg = fmt.Sprintf("want %s, got %s", want(t[3]), got)
	}
	return e
}

var tagNames = map[string]string{
	"str": "a string", "int": "an integer", "float": "a number", "bool": "a boolean",
	"null": "null", "map": "a mapping", "seq": "a list", "binary": "binary data", "timestamp": "a timestamp",
}

// want describes the Go type yaml.v3 names in YAML terms.
func want(goType string) string {
	goType = strings.TrimPrefix(goType, "*")
	switch {
	case goType == "time.Duration":
		return "a duration such as 90s or 5m"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "map["), strings.HasPrefix(goType, "struct"), strings.Contains(goType, "."):
		return "a mapping"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"):
		return "an integer"
	case strings.HasPrefix(goType, "float"):
		return "a number"
	case goType == "bool":
		return "true or false"
	case goType == "string":
		return "a string"
	}
	return "another type"
}

// find returns the dotted path ("stable.uri", "outputs[2]") of the first
// mapping entry or list item under n on line whose key and value match.
func find(n *yaml.Node, prefix string, line int, match func(key, val *yaml.Node) bool) string {
	if n == nil {
		return ""
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if p := find(c, prefix, line, match); p != "" {
				return p
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			p := k.Value
			if prefix != "" {
				p = prefix + "." + k.Value
			}
			if (k.Line == line || val.Line == line) && match(k, val) {
				return p
			}
			if found := find(val, p, line, match); found != "" {
				return found
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", prefix, i)
			if c.Line == line && match(&yaml.Node{}, c) {
				return p
			}
			if found := find(c, p, line, match); found != "" {
				return found
			}
		}
	}
	return ""
}

// Validator records the first problem found in a decoded file.
type Validator struct {
	File string
	Root *yaml.Node
	Err  error
}

// Fail records a problem with field (a dotted path; "outputs[2]" indexes a
// list) at the line of its value, or of its closest ancestor in the file.
// String arguments are shortened to MaxQuote bytes, and the message to a
// few times that, so no value reaches a log whole.
func (v *Validator) Fail(field, format string, args ...any) {
	if v.Err != nil {
		return
	}
	short := make([]any, len(args))
	for i, a := range args {
		if s, ok := a.(string); ok {
			a = Shorten(s)
		}
		short[i] = a
	}
	v.Err = &Error{File: v.File, Line: v.Line(field), Field: field, Msg: shorten(fmt.Sprintf(format, short...), maxMsg)}
}

// Line returns the line of field's value, or of its closest ancestor.
func (v *Validator) Line(field string) int {
	n := v.Root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, key := range strings.Split(field, ".") {
		idx := -1
		if i := strings.IndexByte(key, '['); i >= 0 {
			fmt.Sscanf(key[i:], "[%d]", &idx)
			key = key[:i]
		}
		if n.Kind != yaml.MappingNode {
			return line
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				next = n.Content[i+1]
				break
			}
		}
		if next == nil {
			return line
		}
		n, line = next, next.Line
		if idx >= 0 {
			if n.Kind != yaml.SequenceNode || idx >= len(n.Content) {
				return line
			}
			n, line = n.Content[idx], n.Content[idx].Line
		}
	}
	return line
}
