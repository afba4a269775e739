package arch

import (
	"os"
	"path/filepath"
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

func TestOpen(t *testing.T) {
	file, err := Open("../../models/cnn.yaml")
	if err != nil {
		t.Fatal(err)
	}
	builtin, err := Builtin("cnn")
	if err != nil {
		t.Fatal(err)
	}
	if !file.Equal(builtin) {
		t.Error("Open(models/cnn.yaml) differs from Builtin(cnn)")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "mine.yaml"), []byte("apiVersion: aerie.dev/v1alpha1\nkind: Architecture\nmetadata: {name: other}\nlayers: [flatten, {dense: {units: classes}}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for arg, want := range map[string]string{
		filepath.Join(dir, "mine.yaml"): filepath.Join(dir, "mine.yaml") + `:3: metadata.name: must be "mine", the file's name without .yaml, got "other"`,
		"vgg":                           "architecture vgg: no file models/vgg.yaml (built in: cnn, resnet-small, shapes-resnet, small)",
		"./nets/vgg.yml":                `architecture "./nets/vgg.yml": want a file <name>.yaml or a built-in name (cnn, resnet-small, shapes-resnet, small)`,
	} {
		if _, err := Open(arg); err == nil || err.Error() != want {
			t.Errorf("Open(%s) = %v, want %s", arg, err, want)
		}
	}
}
