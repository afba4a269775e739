package strictyaml

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"quick", `"quick"`},
		{strings.Repeat("a", MaxQuote), `"` + strings.Repeat("a", MaxQuote) + `"`},
		{strings.Repeat("a", 10<<20), `"` + strings.Repeat("a", MaxQuote) + `…"`},
		// A cut never splits a character: é is two bytes.
		{strings.Repeat("a", MaxQuote-1) + "é", `"` + strings.Repeat("a", MaxQuote-1) + `…"`},
		{"a\nb", `"a\nb"`},
	}
	for _, tt := range tests {
		if got := Quote(tt.in); got != tt.want {
			t.Errorf("Quote(%.20q…) = %.80s, want %.80s", tt.in, got, tt.want)
		}
	}
}

type doc struct {
	Fleet string `yaml:"fleet"`
}

// TestLongValuesAreShortened: neither a long value passed to Fail nor a
// long unknown key in a parser's message reaches the error whole.
func TestLongValuesAreShortened(t *testing.T) {
	long := strings.Repeat("x", 1<<20)
	var d doc
	root, err := Decode("f.yaml", []byte("fleet: "+long+"\n"), &d)
	if err != nil {
		t.Fatal(err)
	}
	v := Validator{File: "f.yaml", Root: root}
	v.Fail("fleet", "%q is not a DNS label", d.Fleet)
	want := `f.yaml:1: fleet: "` + strings.Repeat("x", MaxQuote) + `…" is not a DNS label`
	if diff := cmp.Diff(want, v.Err.Error()); diff != "" {
		t.Errorf("Fail (-want +got):\n%s", diff)
	}

	_, err = Decode("f.yaml", []byte(long+": 1\n"), &d)
	if err == nil {
		t.Fatal("Decode with an unknown key succeeded")
	}
	if n, most := len(err.Error()), len("f.yaml:1: ")+maxMsg+len("…"); n > most {
		t.Errorf("Decode with a 1 MiB unknown key: error of %d bytes, want at most %d", n, most)
	}
}

type nested struct {
	Name   string `yaml:"name"`
	Count  int    `yaml:"count"`
	Stable struct {
		URI string `yaml:"uri"`
	} `yaml:"stable"`
	Items []struct {
		Line int `yaml:"line"`
	} `yaml:"items"`
	Labels map[string]string `yaml:"labels"`
}

// TestDecodeErrorsNameFields: yaml.v3's messages name Go types
// ("field x not found in type strictyaml.nested"); Decode's name the YAML
// field and say what it should hold.
func TestDecodeErrorsNameFields(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"unknown top", "name: a\ncolour: red\n", "f.yaml:2: colour: unknown field; check its spelling and indentation"},
		{"unknown nested", "stable:\n  uri: x\n  url: y\n", "f.yaml:3: stable.url: unknown field; check its spelling and indentation"},
		{"unknown in list", "items:\n  - line: 1\n  - lines: 2\n", "f.yaml:3: items[1].lines: unknown field; check its spelling and indentation"},
		{"scalar type", "count: many\n", `f.yaml:1: count: want an integer, got a string "many"`},
		{"list item type", "items:\n  - line: x\n", `f.yaml:2: items[0].line: want an integer, got a string "x"`},
		{"mapping for scalar", "name: {a: 1}\n", "f.yaml:1: name: want a string, got a mapping"},
		{"list for mapping", "stable: [1]\n", "f.yaml:1: stable: want a mapping, got a list"},
		{"flow mapping", "stable: {uri: x, urn: y}\n", "f.yaml:1: stable.urn: unknown field; check its spelling and indentation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d nested
			_, err := Decode("f.yaml", []byte(tt.in), &d)
			if err == nil {
				t.Fatalf("Decode(%q) = nil error, want %q", tt.in, tt.want)
			}
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("Decode(%q) error (-want +got):\n%s", tt.in, diff)
			}
			if strings.Contains(err.Error(), "strictyaml.") || strings.Contains(err.Error(), "in type") {
				t.Errorf("Decode(%q) error %q names a Go type", tt.in, err)
			}
		})
	}
}

// FuzzDecode: any input decodes or fails with an *Error naming the file,
// without naming a Go type.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{"name: a\ncount: 2\n", "colour: red\n", "count: x\n", "items: [{line: a}]\n", "stable: [1]\n", "a: &x [*x]\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var d nested
		_, err := Decode("f.yaml", data, &d)
		if err == nil {
			return
		}
		e, ok := err.(*Error)
		if !ok || e.File != "f.yaml" {
			t.Fatalf("Decode error %#v is not an *Error naming f.yaml", err)
		}
		if strings.Contains(e.Msg, "not found in type") {
			t.Fatalf("Decode error %q names a Go type", err)
		}
	})
}
