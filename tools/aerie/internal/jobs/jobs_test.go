package jobs

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/google/go-cmp/cmp"

	"github.com/aerie-ml/aerie/tools/aerie/internal/images"
	"github.com/aerie-ml/aerie/tools/aerie/internal/render"
)

const (
	revA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	revB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// repoJobs is this repository's apps/jobs.
var repoJobs = filepath.Join("..", "..", "..", "..", "apps", "jobs")

// newTree copies the committed declarations into a temporary jobs
// directory and renders them with revision revA.
func newTree(t *testing.T) *Tree {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "apps", "jobs")
	if err := os.MkdirAll(filepath.Join(dir, RunsDir), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"fmnist-cnn.yaml", "quick.yaml"} {
		b, err := os.ReadFile(filepath.Join(repoJobs, RunsDir, name))
		if err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(dir, RunsDir, name), b)
	}
	copyInputs(t, dir, filepath.Dir(filepath.Dir(dir)))
	tr := &Tree{Dir: dir, Revision: func() (string, error) { return revA, nil }}
	apply(t, tr)
	return tr
}

// copyInputs copies what the committed runs read besides their
// declarations: the repository's models/ into repo, and apps/jobs/datasets
// and the image release record into the jobs directory dir.
func copyInputs(t testing.TB, dir, repo string) {
	t.Helper()
	for from, to := range map[string]string{
		filepath.Join(repoJobs, "..", "..", "models"): filepath.Join(repo, "models"),
		filepath.Join(repoJobs, DatasetsDir):          filepath.Join(dir, DatasetsDir),
	} {
		if err := os.CopyFS(to, os.DirFS(from)); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(filepath.Join(repoJobs, images.File))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, images.File), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func plan(t *testing.T, tr *Tree) *Plan {
	t.Helper()
	p, err := tr.Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func apply(t *testing.T, tr *Tree) *Plan {
	t.Helper()
	p := plan(t, tr)
	if err := p.Err(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Apply(p); err != nil {
		t.Fatal(err)
	}
	return p
}

func paths(p *Plan) []string {
	var ps []string
	for _, c := range p.Changes {
		ps = append(ps, c.Path)
	}
	return ps
}

// check runs aerie run check on tr and returns its report.
func check(t *testing.T, tr *Tree) (string, error) {
	t.Helper()
	c := *tr
	c.Build, c.Revision = true, nil
	var out bytes.Buffer
	err := c.Check(plan(t, &c), &out)
	return out.String(), err
}

// snapshot reads every file under dir.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		files[strings.TrimPrefix(p, dir)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestRenderIsReproducible(t *testing.T) {
	tr := newTree(t)
	before := snapshot(t, tr.Dir)
	// HEAD moved on: nothing changed in the runs, so nothing is rewritten.
	tr.Revision = func() (string, error) { return revB, nil }
	if p := apply(t, tr); len(p.Changes) != 0 {
		t.Errorf("re-render changed %v", paths(p))
	}
	if diff := cmp.Diff(before, snapshot(t, tr.Dir)); diff != "" {
		t.Errorf("re-render is not byte-identical (-before +after):\n%s", diff)
	}
	if out, err := check(t, tr); err != nil {
		t.Errorf("check after render: %v\n%s", err, out)
	}
}

func TestRenderChangedRunGetsNewRevision(t *testing.T) {
	tr := newTree(t)
	run := filepath.Join(tr.Dir, RunsDir, "quick.yaml")
	b, _ := os.ReadFile(run)
	write(t, run, bytes.Replace(b, []byte("epochs: 2"), []byte("epochs: 3"), 1))
	tr.Revision = func() (string, error) { return revB, nil }
	p := apply(t, tr)
	want := []string{"quick/pytorchjob.yaml", "quick/run.yaml"}
	if diff := cmp.Diff(want, paths(p)); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
	job, _ := os.ReadFile(filepath.Join(tr.Dir, "quick", render.Job))
	if !bytes.Contains(job, []byte(render.LabelRevision+": "+revB)) {
		t.Errorf("the changed run is not labelled with the new revision:\n%s", job)
	}
	other, _ := os.ReadFile(filepath.Join(tr.Dir, "fmnist-cnn", render.Job))
	if !bytes.Contains(other, []byte(render.LabelRevision+": "+revA)) {
		t.Errorf("an unchanged run lost its revision")
	}
}

func TestRenderPrunesDeletedRun(t *testing.T) {
	tr := newTree(t)
	if err := os.Remove(filepath.Join(tr.Dir, RunsDir, "quick.yaml")); err != nil {
		t.Fatal(err)
	}
	// A directory render did not generate is left alone.
	if err := os.MkdirAll(filepath.Join(tr.Dir, "handmade"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(tr.Dir, "handmade", "kustomization.yaml"), []byte("resources: []\n"))
	// An overlay jobgen wrote before aerie replaced it is pruned too.
	if err := os.MkdirAll(filepath.Join(tr.Dir, "legacy"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(tr.Dir, "legacy", "kustomization.yaml"), []byte(render.LegacyGeneratedPrefix+" from runs/legacy.yaml. DO NOT EDIT.\nresources: []\n"))
	out, err := check(t, tr)
	if !errors.Is(err, ErrCheck) || !strings.Contains(out, filepath.Join(tr.Dir, "quick", "run.yaml")+": left over from a deleted run") {
		t.Errorf("check = %v\n%s", err, out)
	}
	apply(t, tr)
	for _, gone := range []string{"quick", "legacy"} {
		if _, err := os.Stat(filepath.Join(tr.Dir, gone)); !os.IsNotExist(err) {
			t.Errorf("%s/ still exists: %v", gone, err)
		}
	}
	if _, err := os.Stat(filepath.Join(tr.Dir, "handmade", "kustomization.yaml")); err != nil {
		t.Errorf("handmade/ was pruned: %v", err)
	}
	root, _ := os.ReadFile(filepath.Join(tr.Dir, RootKustomization))
	if want := render.Root([]string{"fmnist-cnn"}); !bytes.Equal(root, want) {
		t.Errorf("root kustomization:\n%s\nwant:\n%s", root, want)
	}
}

func TestRenderPrunesSharedServiceAccount(t *testing.T) {
	tr := newTree(t)
	sa := filepath.Join(tr.Dir, RootServiceAccount)
	write(t, sa, []byte(render.Header+"apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: aerie-trainer, namespace: training}\n"))
	out, err := check(t, tr)
	if want := sa + ": left over: runs use their team's service account"; !errors.Is(err, ErrCheck) || !strings.Contains(out, want) {
		t.Errorf("check = %v\n%s\nwant a line %q", err, out, want)
	}
	apply(t, tr)
	if _, err := os.Stat(sa); !os.IsNotExist(err) {
		t.Errorf("the generated %s was not pruned: %v", RootServiceAccount, err)
	}
	// One a person wrote is theirs.
	write(t, sa, []byte("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: mine}\n"))
	if p := apply(t, tr); len(p.Changes) != 0 {
		t.Errorf("render changed %v, want a hand-written %s left alone", paths(p), RootServiceAccount)
	}
}

// TestCheckFails covers each way aerie run check must fail, with its exact
// report.
func TestCheckFails(t *testing.T) {
	const digest = "b28009423ade7024b7ee2e34661b867eadccec2ebc2e829494036c7adbd59954"
	tests := []struct {
		name   string
		file   string // relative to the jobs directory
		edit   func(string) string
		report func(dir string) string
	}{
		{
			name: "stale overlay",
			file: "quick/pytorchjob.yaml",
			edit: func(s string) string { return strings.Replace(s, `value: "1"`, `value: "2"`, 1) },
			report: func(dir string) string {
				return filepath.Join(dir, "quick", "pytorchjob.yaml") + ": stale: differs from the render of its declaration: run aerie run render (aerie run diff shows how)\n"
			},
		},
		{
			name: "declaration changed without render",
			file: "runs/quick.yaml",
			edit: func(s string) string { return strings.Replace(s, "epochs: 2", "epochs: 5", 1) },
			report: func(dir string) string {
				return filepath.Join(dir, "quick", "run.yaml") + ": stale: differs from the render of its declaration: run aerie run render (aerie run diff shows how)\n"
			},
		},
		{
			name: "missing overlay file",
			file: "quick/kustomizeconfig.yaml",
			edit: nil,
			report: func(dir string) string {
				return filepath.Join(dir, "quick", "kustomizeconfig.yaml") + ": missing: run aerie run render\n"
			},
		},
		{
			name: "unknown field",
			file: "runs/quick.yaml",
			edit: func(s string) string { return strings.Replace(s, "    epochs: 2", "    epoch: 2", 1) },
			report: func(dir string) string {
				return filepath.Join(dir, "runs", "quick.yaml") + ":9: spec.model.epoch: unknown field; allowed fields: architecture, epochs, batchSize, learningRate, optimizer, schedule, seed, dropout, ghostBatch, earlyStoppingPatience, augmentation\n"
			},
		},
		{
			name: "bad value",
			file: "runs/fmnist-cnn.yaml",
			edit: func(s string) string { return strings.Replace(s, "count: 4", "count: 0", 1) },
			report: func(dir string) string {
				return filepath.Join(dir, "runs", "fmnist-cnn.yaml") + ":27: spec.workers.count: must be an integer between 1 and 64, got 0\n"
			},
		},
		{
			name: "release without digest",
			file: images.File,
			edit: func(s string) string { return strings.Replace(s, "@sha256:"+digest, ":latest", 1) },
			report: func(dir string) string {
				return filepath.Join(dir, images.File) + `:8: trainer: must be pinned by digest: <registry>/<repository>@sha256:<64 hex digits>, got "europe-west4-docker.pkg.dev/aerie-dev/aerie/trainer:latest"` + "\n"
			},
		},
		{
			name: "name differs from file",
			file: "runs/quick.yaml",
			edit: func(s string) string { return strings.Replace(s, "name: quick", "name: fast", 1) },
			report: func(dir string) string {
				return filepath.Join(dir, "runs", "quick.yaml") + `:5: metadata.name: must be "quick", the file's name, got "fast"` + "\n"
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTree(t)
			p := filepath.Join(tr.Dir, filepath.FromSlash(tt.file))
			if tt.edit == nil {
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
			} else {
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				edited := tt.edit(string(b))
				if edited == string(b) {
					t.Fatal("the edit changed nothing")
				}
				write(t, p, []byte(edited))
			}
			out, err := check(t, tr)
			if !errors.Is(err, ErrCheck) {
				t.Errorf("check = %v, want ErrCheck", err)
			}
			if diff := cmp.Diff(tt.report(tr.Dir), out); diff != "" {
				t.Errorf("check report (-want +got):\n%s", diff)
			}
		})
	}
}

// TestInvalidRunKeepsItsOverlay: a typo in a running job's declaration must
// not make render delete the job.
func TestInvalidRunKeepsItsOverlay(t *testing.T) {
	tr := newTree(t)
	run := filepath.Join(tr.Dir, RunsDir, "quick.yaml")
	b, _ := os.ReadFile(run)
	write(t, run, bytes.Replace(b, []byte("epochs: 2"), []byte("epochs: two"), 1))
	p := plan(t, tr)
	if p.Err() == nil {
		t.Fatal("no problem reported")
	}
	if len(p.Changes) != 0 {
		t.Errorf("render would change %v", paths(p))
	}
}

func TestBuildFails(t *testing.T) {
	tr := newTree(t)
	k := filepath.Join(tr.Dir, "quick", render.Kustomization)
	b, _ := os.ReadFile(k)
	write(t, k, append(b, "patches:\n- path: ../escape.yaml\n"...))
	out, err := check(t, tr)
	if !errors.Is(err, ErrCheck) || !strings.Contains(out, "stale") {
		t.Fatalf("check = %v\n%s", err, out)
	}
	// The build itself rejects files outside the overlay.
	files := map[string][]byte{}
	for _, f := range render.OverlayFiles {
		files[f], _ = os.ReadFile(filepath.Join(tr.Dir, "quick", f))
	}
	files[render.Kustomization] = append(files[render.Kustomization], "patches:\n- path: ../escape.yaml\n"...)
	c := *tr
	c.Build = true
	if err := build(newKustomizer(), "quick", files); err == nil || !strings.Contains(err.Error(), "escape.yaml") {
		t.Errorf("build with a file outside the overlay = %v", err)
	}
}

func TestDiff(t *testing.T) {
	tr := newTree(t)
	run := filepath.Join(tr.Dir, RunsDir, "quick.yaml")
	b, _ := os.ReadFile(run)
	write(t, run, bytes.Replace(b, []byte("epochs: 2"), []byte("epochs: 3"), 1))
	var out bytes.Buffer
	if err := tr.Diff(plan(t, tr), &out); err != nil {
		t.Fatal(err)
	}
	dir := filepath.ToSlash(tr.Dir)
	for _, want := range []string{
		"--- a/" + dir + "/quick/run.yaml\n+++ b/" + dir + "/quick/run.yaml\n",
		"-    epochs: 2\n+    epochs: 3\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("diff lacks %q:\n%s", want, out.String())
		}
	}
}

func TestHeadRevision(t *testing.T) {
	dir := t.TempDir()
	repo, err := git.PlainInit(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "apps", "jobs")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(sub, "x"), []byte("x"))
	wt, err := repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wt.Add("apps/jobs/x"); err != nil {
		t.Fatal(err)
	}
	sig := &object.Signature{Name: "t", Email: "t@example.com", When: time.Unix(0, 0)}
	h, err := wt.Commit("x", &git.CommitOptions{Author: sig, Committer: sig})
	if err != nil {
		t.Fatal(err)
	}
	got, err := HeadRevision(sub)
	if err != nil || got != h.String() {
		t.Errorf("HeadRevision = %q, %v; want %s", got, err, h)
	}
	if _, err := HeadRevision(t.TempDir()); err == nil {
		t.Error("HeadRevision outside a repository succeeded")
	}
}

// TestCommittedOverlaysUpToDate runs aerie run check on this repository's
// apps/jobs, so CI fails when a declaration changed without a render.
func TestCommittedOverlaysUpToDate(t *testing.T) {
	tr := &Tree{Dir: repoJobs}
	out, err := check(t, tr)
	if err != nil {
		t.Errorf("aerie run check on apps/jobs: %v\n%s(run: aerie run render)", err, out)
	}
}

// TestRenderPinsNewestRelease: a run declared without spec.image gets the
// newest released trainer when first rendered, and keeps it after a newer
// release, even when its declaration changes.
func TestRenderPinsNewestRelease(t *testing.T) {
	tr := newTree(t)
	committed, err := os.ReadFile(filepath.Join(repoJobs, images.File))
	if err != nil {
		t.Fatal(err)
	}
	old, err := committedImage(readFile(t, filepath.Join(tr.Dir, "quick", render.RunFile)))
	if err != nil || old == "" || !strings.Contains(string(committed), "trainer: "+old+"\n") {
		t.Fatalf("quick/run.yaml pins %q (%v), want the committed release's trainer", old, err)
	}
	const newer = "europe-west4-docker.pkg.dev/aerie-dev/aerie/trainer@sha256:1111111111111111111111111111111111111111111111111111111111111111"
	write(t, filepath.Join(tr.Dir, images.File), []byte("apiVersion: aerie.dev/v1alpha1\nkind: ImageRelease\ntrainer: "+newer+"\n"))
	quick := readFile(t, filepath.Join(tr.Dir, RunsDir, "quick.yaml"))
	write(t, filepath.Join(tr.Dir, RunsDir, "fresh.yaml"), []byte(strings.Replace(string(quick), "name: quick", "name: fresh", 1)))
	write(t, filepath.Join(tr.Dir, RunsDir, "quick.yaml"), []byte(strings.Replace(string(quick), "epochs: 2", "epochs: 3", 1)))
	p := apply(t, tr)

	var changed []string
	for _, c := range p.Changes {
		changed = append(changed, c.Path)
	}
	want := []string{"fresh/kustomization.yaml", "fresh/kustomizeconfig.yaml", "fresh/pytorchjob.yaml", "fresh/run.yaml",
		"kustomization.yaml", "quick/run.yaml"}
	if diff := cmp.Diff(want, changed); diff != "" {
		t.Errorf("changed files (-want +got):\n%s", diff)
	}
	for run, image := range map[string]string{"fresh": newer, "quick": old, "fmnist-cnn": old} {
		for _, f := range []string{render.RunFile, render.Job} {
			if b := readFile(t, filepath.Join(tr.Dir, run, f)); !strings.Contains(string(b), "image: "+image+"\n") {
				t.Errorf("%s/%s does not pin %s:\n%s", run, f, image, b)
			}
		}
	}

	// Without the record, a new run cannot render; a rendered one can.
	if err := os.Remove(filepath.Join(tr.Dir, images.File)); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(tr.Dir, RunsDir, "later.yaml"), []byte(strings.Replace(string(quick), "name: quick", "name: later", 1)))
	wantErr := filepath.Join(tr.Dir, RunsDir, "later.yaml") + ": spec.image is not set, and the newest release is unknown: " +
		filepath.Join(tr.Dir, images.File) + " does not exist; set spec.image, or merge the images workflow's pull request that writes it"
	if err := plan(t, tr).Err(); err == nil || err.Error() != wantErr {
		t.Errorf("plan without %s = %v, want %s", images.File, err, wantErr)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
