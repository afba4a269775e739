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

// Errors is every problem found in one file, in line order.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Format is a kind of hand-written file that a parser walks node by node
// (TrainingRun, Architecture): what Document checks before the parser sees
// a node, and how its messages name the file.
type Format struct {
	// Kind is what the file holds, as in "want one TrainingRun per file".
	Kind string
	// Noun is what the file is, as in "a declaration is UTF-8 text".
	Noun string
	// MaxBytes bounds the file; Document refuses a larger one unread.
	MaxBytes int
}

// Document reads the single YAML document in data, read from file (used in
// messages only): at most MaxBytes of UTF-8 text of the characters YAML
// allows, one document, not empty. The root node is nil when any of that
// fails, with one problem. Otherwise the problems are the document's
// anchors and aliases (merge keys need one), which a parser refuses so
// that what a line says is what the program gets; they are in document
// order, at most MaxErrors of them and a count of the rest.
func (f Format) Document(file string, data []byte) (*yaml.Node, Errors) {
	if len(data) > f.MaxBytes {
		return nil, Errors{{File: file, Msg: fmt.Sprintf("%d bytes, more than the limit of %d for %s", len(data), f.MaxBytes, f.Noun)}}
	}
	if err := f.text(file, data); err != nil {
		return nil, Errors{err}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	empty := Errors{{File: file, Line: 1, Msg: "empty document: want " + article(f.Kind) + " " + f.Kind}}
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, empty
		}
		return nil, Errors{syntaxError(file, data, err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, Errors{syntaxError(file, data, err)}
		}
		return nil, Errors{{File: file, Line: extra.Line, Msg: "a second YAML document: want one " + f.Kind + " per file"}}
	}
	if len(doc.Content) != 1 {
		return nil, empty
	}
	root := doc.Content[0]
	var errs Errors
	dropped := 0
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		var e *Error
		switch {
		case n.Anchor != "":
			e = &Error{File: file, Line: n.Line, Column: n.Column, Msg: fmt.Sprintf("anchor &%s: anchors are not allowed, write the value out", Shorten(n.Anchor))}
		case n.Kind == yaml.AliasNode:
			e = aliasError(file, n.Line, n.Column, n.Value)
		}
		if e != nil && len(errs) < MaxErrors {
			errs = append(errs, e)
		} else if e != nil {
			dropped++
		}
		if n.Kind == yaml.AliasNode {
			return
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(root)
	if dropped > 0 {
		errs = append(errs, &Error{File: file, Msg: fmt.Sprintf("and %d more problems not shown", dropped)})
	}
	return root, errs
}

// MaxErrors is the most problems a parser reports for one file; the rest
// are counted in a last line.
const MaxErrors = 20

func article(kind string) string {
	if kind != "" && strings.ContainsRune("AEIOUaeiou", rune(kind[0])) {
		return "an"
	}
	return "a"
}

// text reports the first byte that is not UTF-8 or is a character YAML
// forbids, at its line and column: yaml.v3 reports these without a line.
func (f Format) text(file string, data []byte) *Error {
	line, col := 1, 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		var msg string
		switch {
		case r == utf8.RuneError && size == 1:
			msg = fmt.Sprintf("invalid UTF-8 (byte 0x%02x): %s is UTF-8 text", data[i], f.Noun)
		case !printable(r):
			msg = fmt.Sprintf("character %U is not allowed in YAML", r)
		}
		if msg != "" {
			return &Error{File: file, Line: line, Column: col, Msg: msg}
		}
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col += size
		}
		i += size
	}
	return nil
}

// printable is YAML 1.1's set of allowed characters, as yaml.v3 checks it.
func printable(r rune) bool {
	return r == '\t' || r == '\n' || r == '\r' || r >= 0x20 && r <= 0x7e || r == 0x85 ||
		r >= 0xa0 && r <= 0xd7ff || r >= 0xe000 && r <= 0xfffd || r >= 0x10000 && r <= 0x10ffff
}

func aliasError(file string, line, col int, name string) *Error {
	return &Error{File: file, Line: line, Column: col, Msg: fmt.Sprintf("alias *%s: aliases are not allowed, write the value out", Shorten(name))}
}

var (
	// yaml.v3's syntax errors read "yaml: line N: message".
	syntaxLineRE    = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
	unknownAnchorRE = regexp.MustCompile(`^yaml: unknown anchor '(.*)' referenced$`)
)

func syntaxError(file string, data []byte, err error) *Error {
	msg := err.Error()
	// yaml.v3 gives no line for an alias of a missing anchor; aliases are
	// refused anyway, so report the first one where it is.
	if m := unknownAnchorRE.FindStringSubmatch(msg); m != nil {
		if line, col := findAlias(data, "*"+m[1]); line > 0 {
			return aliasError(file, line, col, m[1])
		}
	}
	line := 0
	if m := syntaxLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	return &Error{File: file, Line: line, Msg: "invalid YAML: " + Shorten(msg)}
}

// findAlias returns the line and column of the first tok in data that is
// not followed by another anchor character, or 0, 0.
func findAlias(data []byte, tok string) (line, col int) {
	for off := 0; ; {
		i := bytes.Index(data[off:], []byte(tok))
		if i < 0 {
			return 0, 0
		}
		i += off
		if end := i + len(tok); end == len(data) || !anchorChar(data[end]) {
			line = 1 + bytes.Count(data[:i], []byte("\n"))
			return line, i - (bytes.LastIndexByte(data[:i], '\n') + 1) + 1
		}
		off = i + 1
	}
}

func anchorChar(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_'
}
