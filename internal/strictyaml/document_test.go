package strictyaml

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var testFormat = Format{Kind: "Architecture", Noun: "an architecture", MaxBytes: 1 << 10}

func TestDocument(t *testing.T) {
	tests := []struct {
		name, in string
		want     string // the problems; "" for none
		root     bool   // a root node comes back
	}{
		{"ok", "a: 1\nb: [2]\n", "", true},
		{"byte order mark", "\ufeffa: 1\n", "", true},
		{"empty", "", "f.yaml:1: empty document: want an Architecture", false},
		{"comment only", "# nothing\n", "f.yaml:1: empty document: want an Architecture", false},
		{"too large", strings.Repeat("#", 1025), "f.yaml: 1025 bytes, more than the limit of 1024 for an architecture", false},
		{"invalid UTF-8", "a: 1\nb: x\xff\n", "f.yaml:2:5: invalid UTF-8 (byte 0xff): an architecture is UTF-8 text", false},
		{"escape", "a: 1 # \x1b[2J\n", "f.yaml:1:8: character U+001B is not allowed in YAML", false},
		{"syntax", "a: [\n", "f.yaml:1: invalid YAML: did not find expected node content", false},
		{"second document", "a: 1\n---\nb: 2\n", "f.yaml:2: a second YAML document: want one Architecture per file", false},
		{"alias of a missing anchor", "a: 1\nb: *x\n", "f.yaml:2:4: alias *x: aliases are not allowed, write the value out", false},
		{"anchor and alias", "a: &x 1\nb: *x\n",
			"f.yaml:1:4: anchor &x: anchors are not allowed, write the value out\nf.yaml:2:4: alias *x: aliases are not allowed, write the value out", true},
		{"merge key", "a: &m {c: 1}\nb:\n  <<: *m\n",
			"f.yaml:1:4: anchor &m: anchors are not allowed, write the value out\nf.yaml:3:7: alias *m: aliases are not allowed, write the value out", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, errs := testFormat.Document("f.yaml", []byte(tt.in))
			got := ""
			if len(errs) > 0 {
				got = errs.Error()
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Document problems (-want +got):\n%s", diff)
			}
			if (root != nil) != tt.root {
				t.Errorf("Document root = %v, want a root: %v", root, tt.root)
			}
		})
	}
}

// TestDocumentCapsAnchors: a file of many anchors gives MaxErrors problems
// and a count, not one line each.
func TestDocumentCapsAnchors(t *testing.T) {
	var b strings.Builder
	for i := range 30 {
		b.WriteString("k" + strings.Repeat("x", i) + ": &a" + strings.Repeat("x", i) + " 1\n")
	}
	format := testFormat
	format.MaxBytes = 64 << 10
	_, errs := format.Document("f.yaml", []byte(b.String()))
	if len(errs) != MaxErrors+1 || errs[MaxErrors].Msg != "and 10 more problems not shown" {
		t.Fatalf("Document gave %d problems, want %d and a count of 10:\n%v", len(errs), MaxErrors, errs)
	}
}

func FuzzDocument(f *testing.F) {
	for _, s := range []string{"a: 1\n", "a: &x [*x]", "b: *a\na: &a {c: 1}", "a: 1\n---\n", "\xff", "a: [\n", "<<: {a: 1}"} {
		f.Add([]byte(s))
	}
	format := Format{Kind: "Thing", Noun: "a thing", MaxBytes: 64 << 10}
	f.Fuzz(func(t *testing.T, data []byte) {
		root, errs := format.Document("fuzz.yaml", data)
		if root == nil && len(errs) != 1 {
			t.Fatalf("no root and %d problems, want exactly one: %v", len(errs), errs)
		}
		if len(errs) > MaxErrors+1 {
			t.Fatalf("%d problems, more than MaxErrors and a count", len(errs))
		}
		for _, e := range errs {
			if !strings.HasPrefix(e.Error(), "fuzz.yaml") || len(e.Msg) > 4*MaxQuote+64 {
				t.Fatalf("problem does not name the file or is unbounded: %.300s", e.Error())
			}
		}
	})
}
