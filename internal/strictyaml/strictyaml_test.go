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
