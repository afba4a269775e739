package strictyaml

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"
)

func TestDescribe(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"{a: 1}", "a mapping"},
		{"[1]", "a list"},
		{"~", "null"},
		{"3", "3"},
		{"true", "true"},
		{"x", `"x"`},
		{strings.Repeat("y", 200), `"` + strings.Repeat("y", MaxQuote) + `…"`},
	} {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(tc.src), &doc); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, Describe(doc.Content[0])); diff != "" {
			t.Errorf("Describe(%.20s) (-want +got):\n%s", tc.src, diff)
		}
	}
}

func TestIsFieldName(t *testing.T) {
	for key, want := range map[string]bool{
		"batchSize":              true,
		"ghost-batch_2":          true,
		"2x":                     false,
		"a b":                    false,
		"":                       false,
		strings.Repeat("k", 200): false,
	} {
		if got := IsFieldName(key); got != want {
			t.Errorf("IsFieldName(%.20q) = %v, want %v", key, got, want)
		}
	}
}

func TestJoin(t *testing.T) {
	if diff := cmp.Diff([]string{"spec", "spec.model"}, []string{Join("", "spec"), Join("spec", "model")}); diff != "" {
		t.Error(diff)
	}
}
