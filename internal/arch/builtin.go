package arch

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/aerie-ml/aerie/internal/repofile"
	"github.com/aerie-ml/aerie/internal/strictyaml"
	embedded "github.com/aerie-ml/aerie/models"
)

// Builtin parses the architecture called name from the files of Dir built
// into this binary (package models): what a run or a model version that
// names its architecture, rather than inlining it, gets.
func Builtin(name string) (*Spec, error) {
	if want := validName(name); want != "" {
		return nil, fmt.Errorf("architecture %s: %s", strictyaml.Quote(name), want)
	}
	file := name + ".yaml"
	data, err := fs.ReadFile(embedded.Files, file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("architecture %s: no file %s/%s (built in: %s)", name, Dir, file, strings.Join(BuiltinNames(), ", "))
	} else if err != nil {
		return nil, fmt.Errorf("architecture %s: %w", name, err)
	}
	if len(data) > MaxBytes {
		return nil, fmt.Errorf("architecture %s: %d bytes, more than %d", name, len(data), MaxBytes)
	}
	return parse(path.Join(Dir, file), data, name)
}

// BuiltinNames lists the architectures Builtin knows, sorted.
func BuiltinNames() []string {
	entries, _ := fs.ReadDir(embedded.Files, ".")
	var names []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".yaml"); ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// Open reads the architecture arg names on a command line: a file
// (<dir>/<name>.yaml, any path with a slash or ending in .yaml), whose
// metadata.name must be <name>, or else a built-in name (Builtin).
func Open(arg string) (*Spec, error) {
	if !strings.Contains(arg, "/") && !strings.HasSuffix(arg, ".yaml") {
		return Builtin(arg)
	}
	dir, file := filepath.Split(arg)
	name, ok := strings.CutSuffix(file, ".yaml")
	if !ok {
		return nil, fmt.Errorf("architecture %s: want a file <name>.yaml or a built-in name (%s)", strictyaml.Quote(arg), strings.Join(BuiltinNames(), ", "))
	}
	t, err := repofile.Open(cmp.Or(dir, "."))
	if err != nil {
		return nil, fmt.Errorf("architecture %s: %w", arg, err)
	}
	defer t.Close()
	data, err := t.ReadFile(file, MaxBytes)
	if err != nil {
		return nil, fmt.Errorf("architecture %s: %w", arg, err)
	}
	return parse(arg, data, name)
}
