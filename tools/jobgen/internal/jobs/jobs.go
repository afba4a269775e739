// Package jobs keeps apps/jobs in step with its run declarations: it plans
// what jobgen render would write, applies the plan, and checks that the
// committed overlays are current and build with kustomize.
package jobs

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/aerie-ml/aerie/internal/runspec"
	"github.com/aerie-ml/aerie/tools/jobgen/internal/render"
)

// RunsDir is the directory of declarations inside the jobs directory.
const RunsDir = "runs"

// Root files of the jobs directory.
const (
	RootKustomization  = "kustomization.yaml"
	RootServiceAccount = "serviceaccount.yaml"
)

// Tree is a jobs directory: runs/<name>.yaml declarations and the
// <name>/ overlays rendered from them.
type Tree struct {
	// Dir is the jobs directory, apps/jobs in this repository.
	Dir     string
	Options render.Options
	// Revision returns the git revision to label newly rendered overlays
	// with. It is called at most once, and only when an overlay changes.
	Revision func() (string, error)
	// Build also builds every overlay with krusty.
	Build bool
}

// Change is one file that rendering would create, rewrite or delete.
type Change struct {
	Path     string // relative to Tree.Dir, slash-separated
	Old, New []byte // nil when the file is absent
}

// Plan is the difference between the tree and its render.
type Plan struct {
	Changes []Change
	// Problems are invalid declarations and overlays that do not build.
	Problems []error
}

// Err returns the plan's problems as one error, or nil.
func (p *Plan) Err() error { return errors.Join(p.Problems...) }

// revisionRE finds the revision label in a rendered job.
var revisionRE = regexp.MustCompile(`(?m)^    ` + regexp.QuoteMeta(render.LabelRevision) + `: "?([0-9a-f]+|unknown)"?$`)

// result is one run's outcome, computed in parallel.
type result struct {
	name     string
	changes  []Change
	problems []error
}

// Plan reads the declarations and overlays and computes the changes
// render would make. Invalid declarations are problems, not errors: their
// overlays are left alone. The error is for an unreadable tree.
func (t *Tree) Plan(ctx context.Context) (*Plan, error) {
	entries, err := os.ReadDir(filepath.Join(t.Dir, RunsDir))
	if err != nil {
		return nil, fmt.Errorf("read run declarations: %w", err)
	}
	var names []string
	plan := &Plan{}
	for _, e := range entries {
		n := e.Name()
		switch {
		case e.IsDir() || strings.HasPrefix(n, "."):
		case strings.HasSuffix(n, ".yaml"):
			names = append(names, strings.TrimSuffix(n, ".yaml"))
		case strings.HasSuffix(n, ".yml"):
			plan.Problems = append(plan.Problems, fmt.Errorf("%s: name run declarations <name>.yaml", t.path(RunsDir, n)))
		}
	}
	slices.Sort(names)

	rev := sync.OnceValues(func() (string, error) {
		if t.Revision == nil {
			return "unknown", nil
		}
		return t.Revision()
	})
	results := make([]result, len(names))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), max(len(names), 1)) {
		wg.Go(func() {
			k := newKustomizer()
			for i := range jobs {
				results[i] = t.run(names[i], rev, k)
			}
		})
	}
feed:
	for i := range names {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	var valid []string
	for _, r := range results {
		plan.Changes = append(plan.Changes, r.changes...)
		plan.Problems = append(plan.Problems, r.problems...)
		if r.problems == nil || !isDeclError(r.problems) {
			valid = append(valid, r.name)
		}
	}
	// An invalid declaration keeps its committed overlay listed, so that
	// render does not delete a running job over a typo.
	listed := names
	if len(valid) != len(names) {
		listed = valid
		for _, n := range names {
			if !slices.Contains(valid, n) && t.exists(n, render.Kustomization) {
				listed = append(listed, n)
			}
		}
		slices.Sort(listed)
	}
	if err := t.rootChanges(plan, listed); err != nil {
		return nil, err
	}
	if err := t.pruneChanges(plan, names); err != nil {
		return nil, err
	}
	slices.SortFunc(plan.Changes, func(a, b Change) int { return strings.Compare(a.Path, b.Path) })
	return plan, nil
}

// declError marks a problem with a declaration (as opposed to a build).
type declError struct{ error }

func (e declError) Unwrap() error { return e.error }

func isDeclError(errs []error) bool {
	for _, e := range errs {
		if _, ok := e.(declError); ok {
			return true
		}
	}
	return false
}

func (t *Tree) path(elem ...string) string {
	return filepath.Join(append([]string{t.Dir}, elem...)...)
}

func (t *Tree) exists(elem ...string) bool {
	_, err := os.Stat(t.path(elem...))
	return err == nil
}

func readOptional(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// run parses, renders, compares and (if asked) builds one run.
func (t *Tree) run(name string, rev func() (string, error), k *krusty.Kustomizer) result {
	res := result{name: name}
	source := RunsDir + "/" + name + ".yaml"
	file := t.path(RunsDir, name+".yaml")
	data, err := os.ReadFile(file)
	if err != nil {
		res.problems = append(res.problems, declError{fmt.Errorf("read %s: %w", file, err)})
		return res
	}
	r, err := runspec.Parse(file, data)
	if err != nil {
		res.problems = append(res.problems, declError{err})
		return res
	}
	if name == RunsDir {
		res.problems = append(res.problems, declError{fmt.Errorf("%s:%d: metadata.name: %q is reserved for the declarations' directory, choose another name",
			file, nameLine(data), name)})
		return res
	}
	if r.Metadata.Name != name {
		res.problems = append(res.problems, declError{fmt.Errorf("%s:%d: metadata.name: must be %q, the file's name, got %q",
			file, nameLine(data), name, r.Metadata.Name)})
		return res
	}

	old := make(map[string][]byte, len(render.OverlayFiles))
	for _, f := range render.OverlayFiles {
		if old[f], err = readOptional(t.path(name, f)); err != nil {
			res.problems = append(res.problems, err)
			return res
		}
	}
	// Keep the committed revision when nothing else changed, so that a
	// render is reproducible and check does not depend on HEAD.
	var files map[string][]byte
	if m := revisionRE.FindSubmatch(old[render.Job]); m != nil {
		files, err = render.Overlay(r, source, string(m[1]))
		if err != nil {
			res.problems = append(res.problems, err)
			return res
		}
	}
	// Check (no Revision) compares against the committed revision, so that
	// it names only the files that differ.
	if files == nil || !sameFiles(files, old) && t.Revision != nil {
		revision, err := rev()
		if err != nil {
			res.problems = append(res.problems, err)
			return res
		}
		if files, err = render.Overlay(r, source, revision); err != nil {
			res.problems = append(res.problems, err)
			return res
		}
	}
	for _, f := range render.OverlayFiles {
		if !bytes.Equal(files[f], old[f]) || old[f] == nil {
			res.changes = append(res.changes, Change{Path: name + "/" + f, Old: old[f], New: files[f]})
		}
	}
	if t.Build {
		if err := build(k, name, files); err != nil {
			res.problems = append(res.problems, fmt.Errorf("%s: kustomize build: %w", t.path(name), err))
		}
	}
	return res
}

func sameFiles(a, b map[string][]byte) bool {
	for _, f := range render.OverlayFiles {
		if !bytes.Equal(a[f], b[f]) || b[f] == nil {
			return false
		}
	}
	return true
}

// nameLine finds the line of metadata.name, for the error message.
func nameLine(data []byte) int {
	sc := bufio.NewScanner(bytes.NewReader(data))
	inMeta := false
	for line := 1; sc.Scan(); line++ {
		s := sc.Text()
		switch {
		case strings.HasPrefix(s, "metadata:"):
			inMeta = true
		case inMeta && strings.HasPrefix(strings.TrimSpace(s), "name:"):
			return line
		case len(s) > 0 && s[0] != ' ' && s[0] != '#':
			inMeta = false
		}
	}
	return 1
}

// newKustomizer is krusty as Flux runs it: plugins disabled, loading
// restricted to the kustomization's directory.
func newKustomizer() *krusty.Kustomizer {
	return krusty.MakeKustomizer(&krusty.Options{
		LoadRestrictions: types.LoadRestrictionsRootOnly,
		PluginConfig:     types.DisabledPluginConfig(),
	})
}

// build runs kustomize in process on the overlay's files, held in memory:
// plugins disabled, loading restricted to the overlay.
func build(k *krusty.Kustomizer, name string, files map[string][]byte) error {
	fsys := filesys.MakeFsInMemory()
	dir := "/" + name
	for f, b := range files {
		if err := fsys.WriteFile(dir+"/"+f, b); err != nil {
			return err
		}
	}
	m, err := k.Run(fsys, dir)
	if err != nil {
		return err
	}
	if n := m.Size(); n != 2 {
		return fmt.Errorf("built %d objects, want the PyTorchJob and its ConfigMap", n)
	}
	return nil
}

func (t *Tree) rootChanges(plan *Plan, runs []string) error {
	sa, err := render.ServiceAccountYAML(t.Options)
	if err != nil {
		return err
	}
	for f, want := range map[string][]byte{RootKustomization: render.Root(runs), RootServiceAccount: sa} {
		old, err := readOptional(t.path(f))
		if err != nil {
			return err
		}
		if !bytes.Equal(old, want) || old == nil {
			plan.Changes = append(plan.Changes, Change{Path: f, Old: old, New: want})
		}
	}
	return nil
}

// pruneChanges deletes the overlays jobgen generated for runs that no
// longer exist; directories it did not generate are left alone.
func (t *Tree) pruneChanges(plan *Plan, runs []string) error {
	entries, err := os.ReadDir(t.Dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		n := e.Name()
		if !e.IsDir() || n == RunsDir || slices.Contains(runs, n) {
			continue
		}
		k, err := readOptional(t.path(n, render.Kustomization))
		if err != nil {
			return err
		}
		if !bytes.HasPrefix(k, []byte("# Code generated by jobgen")) {
			continue
		}
		files, err := os.ReadDir(t.path(n))
		if err != nil {
			return err
		}
		for _, f := range files {
			old, err := os.ReadFile(t.path(n, f.Name()))
			if err != nil {
				return err
			}
			plan.Changes = append(plan.Changes, Change{Path: n + "/" + f.Name(), Old: old})
		}
	}
	return nil
}

// Apply writes the plan's changes and removes the directories of pruned
// overlays once empty.
func (t *Tree) Apply(plan *Plan) error {
	emptied := map[string]bool{}
	for _, c := range plan.Changes {
		p := t.path(filepath.FromSlash(c.Path))
		if c.New == nil {
			if err := os.Remove(p); err != nil {
				return err
			}
			emptied[filepath.Dir(p)] = true
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, c.New, 0o644); err != nil {
			return err
		}
	}
	for d := range emptied {
		if d != filepath.Clean(t.Dir) {
			_ = os.Remove(d) // fails, as it should, when not empty
		}
	}
	return nil
}
