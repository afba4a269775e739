package jobs

import (
	"errors"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"strings"

	"github.com/aymanbagabas/go-udiff"
	"github.com/go-git/go-git/v5"

	"github.com/aerie-ml/aerie/internal/runspec"
)

// ErrCheck is returned by Check when the tree is not as render would leave
// it or a run is invalid.
var ErrCheck = errors.New("aerie run check failed")

// Check reports every stale, missing or left-over file and every problem
// of plan, one per line, and returns ErrCheck if there is any.
func (t *Tree) Check(plan *Plan, w io.Writer) error {
	for _, c := range plan.Changes {
		p := filepath.Join(t.Dir, filepath.FromSlash(c.Path))
		switch {
		case c.Old == nil:
			fmt.Fprintf(w, "%s: missing: run aerie run render\n", p)
		case c.New == nil && c.Path == RootServiceAccount:
			fmt.Fprintf(w, "%s: left over: runs use their team's service account (apps/teams/<team>/namespace/serviceaccount.yaml): run aerie run render to prune it\n", p)
		case c.New == nil:
			fmt.Fprintf(w, "%s: left over from a deleted run: run aerie run render to prune it\n", p)
		default:
			fmt.Fprintf(w, "%s: stale: differs from the render of its declaration: run aerie run render (aerie run diff shows how)\n", p)
		}
	}
	for _, err := range plan.Problems {
		fmt.Fprintln(w, err)
	}
	if len(plan.Changes) > 0 || len(plan.Problems) > 0 {
		return ErrCheck
	}
	return nil
}

// PrintPlans writes, for every run that resolved, its architecture's plan
// on its dataset (per layer: output shape, parameters, FLOPs and
// activation KiB per image; then the totals) and the resources it gets.
func (t *Tree) PrintPlans(plan *Plan, w io.Writer) error {
	for i, r := range plan.Runs {
		if i > 0 {
			fmt.Fprintln(w)
		}
		s := r.Run.Spec
		perReplica := s.Model.BatchSize / s.Workers.Count
		if _, err := fmt.Fprintf(w, "%s: layers of %s\n%sper replica: %d cpu, memory %s (working set %s at %d images a step)\n",
			filepath.Join(t.Dir, r.Source), s.Model.Architecture.Spec.File, r.Plan, s.Resources.CPU, s.Resources.Memory,
			runspec.Bytes(s.WorkingSet(r.Plan)>>20<<20), perReplica); err != nil {
			return err
		}
	}
	return nil
}

// Diff writes the unified diff of plan's changes, paths as in the
// repository (a/apps/jobs/..., b/apps/jobs/...), so that git apply and
// patch -p1 take it at the repository's root.
func (t *Tree) Diff(plan *Plan, w io.Writer) error {
	dir := filepath.Clean(t.Dir)
	if t.Repo != "" {
		if rel, err := filepath.Rel(t.Repo, dir); err == nil && filepath.IsLocal(rel) {
			dir = rel
		}
	}
	dir = filepath.ToSlash(dir)
	for _, c := range plan.Changes {
		p := path.Join(dir, c.Path)
		if _, err := io.WriteString(w, unifiedDiff("a/"+p, c.Old, "b/"+p, c.New)); err != nil {
			return err
		}
	}
	return nil
}

// unifiedDiff is the diff from old to new; a nil side is an absent file.
func unifiedDiff(oldName string, old []byte, newName string, new []byte) string {
	if old == nil {
		oldName = "/dev/null"
	}
	if new == nil {
		newName = "/dev/null"
	}
	return udiff.Unified(oldName, newName, string(old), string(new))
}

// HeadRevision returns the commit HEAD points at in the git repository
// that contains dir.
func HeadRevision(dir string) (string, error) {
	repo, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true, EnableDotGitCommonDir: true})
	if err != nil {
		return "", fmt.Errorf("open the git repository of %s (or pass --revision): %w", dir, err)
	}
	head, err := repo.Head()
	if err != nil {
		return "", fmt.Errorf("read HEAD of the repository of %s (or pass --revision): %w", dir, err)
	}
	return strings.ToLower(head.Hash().String()), nil
}
