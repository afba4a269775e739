package arch

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestBuiltin(t *testing.T) {
	if diff := cmp.Diff(models, BuiltinNames(), cmp.Transformer("sorted", func(s []string) string { return strings.Join(sortedCopy(s), ",") })); diff != "" {
		t.Errorf("BuiltinNames (-models/ +built in):\n%s", diff)
	}
	for _, name := range models {
		got, err := Builtin(name)
		if err != nil {
			t.Fatal(err)
		}
		want := load(t, name)
		want.File = got.File // the same file, named from the repository root
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Builtin(%s) differs from %s (-file +built in):\n%s", name, want.File, diff)
		}
	}
	for _, name := range []string{"resnet", "../cnn", ""} {
		if _, err := Builtin(name); err == nil {
			t.Errorf("Builtin(%q) succeeded", name)
		} else {
			t.Log(err)
		}
	}
}

func sortedCopy(s []string) []string {
	c := append([]string(nil), s...)
	for i := range c {
		for j := i + 1; j < len(c); j++ {
			if c[j] < c[i] {
				c[i], c[j] = c[j], c[i]
			}
		}
	}
	return c
}
