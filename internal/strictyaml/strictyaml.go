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
	File  string
	Line  int
	Field string
	Msg   string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
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
var lineRE = regexp.MustCompile(`line (\d+): (.*)`)

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
		return nil, yamlError(filename, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, yamlError(filename, err)
		}
		return nil, &Error{File: filename, Line: extra.Line, Msg: "more than one YAML document"}
	}
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	if err := strict.Decode(dst); err != nil {
		return nil, yamlError(filename, err)
	}
	return &root, nil
}

func yamlError(filename string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		err = errors.New(te.Errors[0])
	}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		var line int
		fmt.Sscan(m[1], &line)
		return &Error{File: filename, Line: line, Msg: shorten(m[2], maxMsg)}
	}
	return &Error{File: filename, Msg: shorten(msg, maxMsg)}
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
