// Package jobs keeps apps/jobs in step with its run declarations: it plans
// what aerie run render would write, applies the plan, and checks that the
// committed overlays are current and build with kustomize.
package jobs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/aerie-ml/aerie/internal/arch"
	"github.com/aerie-ml/aerie/internal/dataset"
	"github.com/aerie-ml/aerie/internal/repofile"
	"github.com/aerie-ml/aerie/internal/runspec"
	"github.com/aerie-ml/aerie/internal/store"
	"github.com/aerie-ml/aerie/tools/aerie/internal/images"
	"github.com/aerie-ml/aerie/tools/aerie/internal/render"
)

// RunsDir is the directory of declarations inside the jobs directory.
const RunsDir = "runs"

// Root files of the jobs directory.
const (
	RootKustomization = "kustomization.yaml"
	// RootServiceAccount is the one service account all runs shared before
	// each team had its own (apps/teams); a generated one is pruned.
	RootServiceAccount = "serviceaccount.yaml"
)

// Tree is a jobs directory: runs/<name>.yaml declarations and the
// <name>/ overlays rendered from them.
type Tree struct {
	// Dir is the jobs directory, apps/jobs in this repository.
	Dir string
	// Revision returns the git revision to label newly rendered overlays
	// with. It is called at most once, and only when an overlay changes.
	Revision func() (string, error)
	// Build also builds every overlay with krusty.
	Build bool
	// Repo is the repository root, whose models/<name>.yaml files are the
	// architectures runs name; "" means two levels above Dir (apps/jobs).
	Repo string
	// OpenStore opens a dataset's store when DatasetsDir lacks the copy of
	// its manifest; nil means store.Open.
	OpenStore func(ctx context.Context, uri string) (store.Store, error)
}

// manifests are the dataset manifests one Plan has read, by "<uri>
// <digest>": the runs of a tree mostly share a few datasets.
type manifests struct{ sync.Map }

// DatasetsDir is the directory, inside the jobs directory, of the committed
// copies of the manifests of the datasets runs declare:
// datasets/<name>/<digest>.json (dataset.CopyPath). It is not a run's
// overlay, so no run may be called so.
const DatasetsDir = "datasets"

// StoreTimeout bounds reading a dataset's manifest from the store.
const StoreTimeout = 30 * time.Second

type manifestResult struct {
	once sync.Once
	m    *dataset.Manifest
	err  error
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
	// Runs are the runs that resolved, by name: their architecture's plan
	// on their dataset and their sizing.
	Runs []Run
}

// Run is one resolved run of a Plan.
type Run struct {
	Source string // runs/<name>.yaml, under Tree.Dir
	*runspec.Resolved
}

// Err returns the plan's problems as one error, or nil.
func (p *Plan) Err() error { return errors.Join(p.Problems...) }

// committedImage is spec.image of a rendered run.yaml, "" when it has none.
// Only that field is read: a file an older aerie wrote must keep its image.
func committedImage(runFile []byte) (string, error) {
	var r struct {
		Spec struct {
			Image string `json:"image"`
		} `json:"spec"`
	}
	err := yaml.Unmarshal(runFile, &r)
	return r.Spec.Image, err
}

// result is one run's outcome, computed in parallel.
type result struct {
	name     string
	changes  []Change
	problems []error
	resolved *runspec.Resolved
}

// maxOverlayFile bounds a file render reads back from an overlay or the
// root: what it renders is a few KiB.
const maxOverlayFile = 1 << 20

// open opens the jobs directory as a repofile tree: every read, write,
// listing and removal below goes through it, so no symlink, device or path
// outside the directory is ever followed.
func (t *Tree) open() (*repofile.Tree, error) {
	dir := filepath.Clean(t.Dir)
	if fi, err := os.Lstat(dir); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		return nil, fmt.Errorf("%s: is a symlink: aerie run render works only on a real directory: %w", dir, repofile.ErrNotRegular)
	}
	return repofile.Open(dir)
}

// Plan reads the declarations and overlays and computes the changes
// render would make. Invalid declarations and unexpected entries are
// problems, not errors: while there is any, no overlay is pruned or
// dropped from the root kustomization. The error is for an unreadable
// tree.
func (t *Tree) Plan(ctx context.Context) (*Plan, error) {
	root, err := t.open()
	if err != nil {
		return nil, err
	}
	defer root.Close()
	repo, err := repofile.Open(t.repo())
	if err != nil {
		return nil, fmt.Errorf("open the repository's %s/: %w", arch.Dir, err)
	}
	defer repo.Close()
	seen := &manifests{}
	entries, err := root.ReadDir(RunsDir)
	if err != nil {
		return nil, fmt.Errorf("read run declarations: %w", err)
	}
	var names []string
	plan := &Plan{}
	for _, e := range entries {
		n := e.Name()
		name, ok := strings.CutSuffix(n, ".yaml")
		switch {
		case !e.Type().IsRegular():
			plan.Problems = append(plan.Problems, declError{fmt.Errorf("%s: is %s: %s holds only regular files named <name>.yaml",
				t.path(RunsDir, n), repofile.Describe(e.Type()), RunsDir)})
		case !ok || name == "" || strings.HasPrefix(n, "."):
			plan.Problems = append(plan.Problems, declError{fmt.Errorf("%s: unexpected file: %s holds only declarations named <name>.yaml (lowercase, not hidden)",
				t.path(RunsDir, n), RunsDir)})
		default:
			names = append(names, name)
		}
	}
	slices.Sort(names)

	rev := sync.OnceValues(func() (string, error) {
		if t.Revision == nil {
			return render.UnknownRevision, nil
		}
		return t.Revision()
	})
	// A missing record matters only to a run without spec.image that is
	// not rendered yet; an invalid one is always a problem.
	release, releaseErr := t.release(root)
	if releaseErr != nil && !errors.Is(releaseErr, fs.ErrNotExist) {
		plan.Problems = append(plan.Problems, releaseErr)
	}
	latest := func() (*images.Release, error) { return release, releaseErr }
	results := make([]result, len(names))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), max(len(names), 1)) {
		wg.Go(func() {
			k := newKustomizer()
			for i := range jobs {
				results[i] = t.run(ctx, root, repo, seen, names[i], rev, latest, k)
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

	var listed []string
	for _, r := range results {
		plan.Changes = append(plan.Changes, r.changes...)
		plan.Problems = append(plan.Problems, r.problems...)
		if r.resolved != nil {
			plan.Runs = append(plan.Runs, Run{Source: RunsDir + "/" + r.name + ".yaml", Resolved: r.resolved})
		}
		// An invalid declaration keeps its committed overlay listed, so
		// that render does not delete a running job over a typo.
		if !isDeclError(r.problems) || t.exists(root, r.name, render.Kustomization) {
			listed = append(listed, r.name)
		}
	}
	orphans, prune, problems := t.orphans(root, names)
	plan.Problems = append(plan.Problems, problems...)
	// Fail closed: while anything is wrong, a run whose declaration
	// cannot be read looks deleted, so nothing is pruned.
	pruning := len(plan.Problems) == 0
	if !pruning {
		listed = append(listed, orphans...)
		slices.Sort(listed)
	}
	t.rootChanges(root, plan, listed)
	if pruning {
		plan.Changes = append(plan.Changes, prune...)
	}
	slices.SortFunc(plan.Changes, func(a, b Change) int { return strings.Compare(a.Path, b.Path) })
	return plan, nil
}

// declError marks a problem with a declaration or the runs/ directory (as
// opposed to a build).
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

func (t *Tree) exists(root *repofile.Tree, elem ...string) bool {
	fi, err := root.Stat(path.Join(elem...))
	return err == nil && fi.Mode().IsRegular()
}

// readOptional reads a file render generates; a missing one is nil.
func readOptional(root *repofile.Tree, elem ...string) ([]byte, error) {
	b, err := root.ReadFile(path.Join(elem...), maxOverlayFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// run parses, renders, compares and (if asked) builds one run.
func (t *Tree) run(ctx context.Context, root, repo *repofile.Tree, seen *manifests, name string, rev func() (string, error),
	release func() (*images.Release, error), k *krusty.Kustomizer) result {
	res := result{name: name}
	source := RunsDir + "/" + name + ".yaml"
	file := t.path(RunsDir, name+".yaml")
	data, err := root.ReadFile(source, runspec.MaxBytes)
	if err != nil {
		res.problems = append(res.problems, declError{err})
		return res
	}
	resolved, err := runspec.Resolve(ctx, file, data, runspec.Sources{
		Architecture: func(name string) (*arch.Spec, error) { return arch.Load(repo, name) },
		Dataset: func(ctx context.Context, d runspec.Dataset) (*dataset.Manifest, error) {
			return t.manifest(ctx, root, seen, d)
		},
	})
	if err != nil {
		res.problems = append(res.problems, declError{err})
		return res
	}
	r := resolved.Run
	if name == RunsDir || name == DatasetsDir {
		res.problems = append(res.problems, declError{fmt.Errorf("%s:%d: metadata.name: %q is reserved for the %s directory, choose another name",
			file, nameLine(data), name, name)})
		return res
	}
	if r.Metadata.Name != name {
		res.problems = append(res.problems, declError{fmt.Errorf("%s:%d: metadata.name: must be %q, the file's name, got %q",
			file, nameLine(data), name, r.Metadata.Name)})
		return res
	}

	old := make(map[string][]byte, len(render.OverlayFiles))
	for _, f := range render.OverlayFiles {
		if old[f], err = readOptional(root, name, f); err != nil {
			res.problems = append(res.problems, err)
			return res
		}
	}
	if r.Spec.Image == "" {
		if r.Spec.Image, err = t.image(file, name, old[render.RunFile], release); err != nil {
			res.problems = append(res.problems, declError{err})
			return res
		}
	}
	// Keep the committed revision when nothing else changed, so that a
	// render is reproducible and check does not depend on HEAD.
	var files map[string][]byte
	if v := render.Revision(old[render.Job]); v == render.UnknownRevision || render.IsRevision(v) {
		files, err = render.Overlay(r, source, v)
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
	res.resolved = resolved
	if t.Build {
		if err := build(k, name, files); err != nil {
			res.problems = append(res.problems, fmt.Errorf("%s: kustomize build: %w", t.path(name), err))
		}
	}
	return res
}

// release reads and parses the image release record of the jobs directory.
func (t *Tree) release(root *repofile.Tree) (*images.Release, error) {
	b, err := root.ReadFile(images.File, images.MaxBytes)
	if err != nil {
		return nil, err
	}
	return images.Parse(t.path(images.File), b)
}

// image is the trainer image of a run declared without spec.image: the
// one its committed run.yaml pins, so that a new release never changes
// (and so re-runs) a rendered run, or else the newest release's.
func (t *Tree) image(file, name string, committed []byte, release func() (*images.Release, error)) (string, error) {
	if committed != nil {
		img, err := committedImage(committed)
		if err != nil {
			return "", fmt.Errorf("%s: %w; fix it or delete %s to render the run anew", t.path(name, render.RunFile), err, t.path(name))
		}
		if img != "" {
			if msg := runspec.ValidImage(img); msg != "" {
				return "", fmt.Errorf("%s: spec.image: %s, got %q; fix it or delete %s to render the run anew",
					t.path(name, render.RunFile), msg, img, t.path(name))
			}
			return img, nil
		}
	}
	rel, err := release()
	if errors.Is(err, fs.ErrNotExist) {
		err = fmt.Errorf("%s does not exist", t.path(images.File))
	}
	if err != nil {
		return "", fmt.Errorf("%s: spec.image is not set, and the newest release is unknown: %w; "+
			"set spec.image, or merge the images workflow's pull request that writes it", file, err)
	}
	return rel.Trainer, nil
}

func sameFiles(a, b map[string][]byte) bool {
	for _, f := range render.OverlayFiles {
		if !bytes.Equal(a[f], b[f]) || b[f] == nil {
			return false
		}
	}
	return true
}

func (t *Tree) repo() string {
	if t.Repo != "" {
		return t.Repo
	}
	return filepath.Join(t.Dir, "..", "..")
}

// manifest reads the manifest of the dataset d declares, once per Plan:
// the committed copy DatasetsDir/<name>/<digest>.json, or else the store's
// dataset.json, within StoreTimeout. Either is checked against the digest.
// With neither it fails, naming both places and how to commit the copy.
func (t *Tree) manifest(ctx context.Context, root *repofile.Tree, seen *manifests, d runspec.Dataset) (*dataset.Manifest, error) {
	v, _ := seen.LoadOrStore(d.URI+" "+d.SHA256, &manifestResult{})
	mr := v.(*manifestResult)
	mr.once.Do(func() { mr.m, mr.err = t.readManifest(ctx, root, d) })
	return mr.m, mr.err
}

// Manifest reads the manifest of dataset d, checked against its digest: the
// committed copy under DatasetsDir when there is one, else the store's.
func (t *Tree) Manifest(ctx context.Context, d runspec.Dataset) (*dataset.Manifest, error) {
	root, err := t.open()
	if err != nil {
		return nil, err
	}
	defer root.Close()
	return t.readManifest(ctx, root, d)
}

func (t *Tree) readManifest(ctx context.Context, root *repofile.Tree, d runspec.Dataset) (*dataset.Manifest, error) {
	name, uri, err := dataset.Locate(d.URI, d.SHA256)
	if err != nil {
		return nil, err
	}
	rel := DatasetsDir + "/" + dataset.CopyPath(name, d.SHA256)
	copyPath := t.path(filepath.FromSlash(rel))
	b, err := root.ReadFile(rel, dataset.MaxManifestBytes)
	if err == nil {
		m, err := dataset.Check(b, d.SHA256)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", copyPath, err)
		}
		return m, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	m, storeErr := t.storeManifest(ctx, uri, d.SHA256)
	if storeErr == nil {
		return m, nil
	}
	return nil, fmt.Errorf("dataset %s: no copy of its manifest at %s, and the store's %s%s: %w; "+
		"commit the copy: aerie dataset ingest --manifest-copy %s writes it, or copy %s%s to %s",
		name, copyPath, uri, dataset.ManifestFile, storeErr,
		t.path(DatasetsDir), uri, dataset.ManifestFile, copyPath)
}

func (t *Tree) storeManifest(ctx context.Context, uri, digest string) (*dataset.Manifest, error) {
	ctx, cancel := context.WithTimeout(ctx, StoreTimeout)
	defer cancel()
	open := t.OpenStore
	if open == nil {
		open = func(ctx context.Context, uri string) (store.Store, error) { return store.Open(ctx, uri) }
	}
	s, err := open(ctx, uri)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	r, err := s.Get(ctx, dataset.ManifestFile)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, dataset.MaxManifestBytes+1))
	if err != nil {
		return nil, err
	}
	return dataset.Check(b, digest)
}

// nameLine finds the line of metadata.name, for the error message.
func nameLine(data []byte) int {
	inMeta := false
	line := 0
	for l := range bytes.Lines(data) {
		line++
		s := strings.TrimRight(string(l), "\r\n")
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

// rootChanges renders the root files; one that cannot be read (a symlink,
// a directory) is a problem and is left alone.
func (t *Tree) rootChanges(root *repofile.Tree, plan *Plan, runs []string) {
	old, err := readOptional(root, RootKustomization)
	if err != nil {
		plan.Problems = append(plan.Problems, err)
	} else if want := render.Root(runs); !bytes.Equal(old, want) || old == nil {
		plan.Changes = append(plan.Changes, Change{Path: RootKustomization, Old: old, New: want})
	}
	sa, err := readOptional(root, RootServiceAccount)
	if err != nil {
		plan.Problems = append(plan.Problems, err)
	} else if bytes.HasPrefix(sa, []byte(render.GeneratedPrefix)) || bytes.HasPrefix(sa, []byte(render.LegacyGeneratedPrefix)) {
		plan.Changes = append(plan.Changes, Change{Path: RootServiceAccount, Old: sa})
	}
}

// orphans finds the overlays aerie run render (or jobgen before it)
// generated for runs not in names and
// the deletions that would prune them; directories it did not generate are
// left alone. An overlay holding anything but regular files is a problem.
func (t *Tree) orphans(root *repofile.Tree, names []string) (dirs []string, prune []Change, problems []error) {
	entries, err := root.ReadDir(".")
	if err != nil {
		return nil, nil, []error{err}
	}
	for _, e := range entries {
		n := e.Name()
		// A symlink is not an overlay render wrote: it writes none.
		if !e.IsDir() || n == RunsDir || n == DatasetsDir || slices.Contains(names, n) {
			continue
		}
		k, err := readOptional(root, n, render.Kustomization)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		if !bytes.HasPrefix(k, []byte(render.GeneratedPrefix)) && !bytes.HasPrefix(k, []byte(render.LegacyGeneratedPrefix)) {
			continue
		}
		dirs = append(dirs, n)
		files, err := root.ReadDir(n)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		for _, f := range files {
			p := n + "/" + f.Name()
			old, err := root.ReadFile(p, maxOverlayFile)
			if err != nil {
				problems = append(problems, fmt.Errorf("prune %s: %w", t.path(n), err))
				continue
			}
			prune = append(prune, Change{Path: p, Old: old})
		}
	}
	return dirs, prune, problems
}

// Apply writes the plan's changes and removes the directories of pruned
// overlays once empty, through the same checks as Plan: a symlink swapped
// in since is refused, never followed.
func (t *Tree) Apply(plan *Plan) error {
	root, err := t.open()
	if err != nil {
		return err
	}
	defer root.Close()
	emptied := map[string]bool{}
	for _, c := range plan.Changes {
		dir := path.Dir(c.Path)
		if c.New == nil {
			if err := root.Remove(c.Path); err != nil {
				return err
			}
			emptied[dir] = true
			continue
		}
		if dir != "." {
			if err := root.MkdirAll(dir); err != nil {
				return err
			}
		}
		if err := root.WriteFile(c.Path, c.New); err != nil {
			return err
		}
	}
	for d := range emptied {
		if d != "." {
			_ = root.Remove(d) // fails, as it should, when not empty
		}
	}
	return nil
}
