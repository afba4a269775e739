package jobs

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/aerie-ml/aerie/tools/aerie/internal/render"
)

// renderTree does what aerie run render does: plan, then apply whatever the
// plan holds, problems or not.
func renderTree(t *testing.T, tr *Tree) *Plan {
	t.Helper()
	p := plan(t, tr)
	if err := tr.Apply(p); err != nil {
		t.Fatalf("apply: %v", err)
	}
	return p
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.RemoveAll(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// editRun changes quick's declaration so that render rewrites its overlay.
func editRun(t *testing.T, tr *Tree) {
	t.Helper()
	run := filepath.Join(tr.Dir, RunsDir, "quick.yaml")
	b, err := os.ReadFile(run)
	if err != nil {
		t.Fatal(err)
	}
	write(t, run, bytes.Replace(b, []byte("epochs: 2"), []byte("epochs: 3"), 1))
}

// TestRenderRefusesSymlinks: render never writes through a symlinked
// overlay file, overlay directory or root file into a file outside the
// tree; each is a problem naming the path.
func TestRenderRefusesSymlinks(t *testing.T) {
	tests := []struct {
		name  string
		path  string // the entry that is refused, relative to the jobs directory
		setup func(t *testing.T, tr *Tree, outside string)
		want  string
	}{
		{"overlay file", "quick/" + render.Job, func(t *testing.T, tr *Tree, outside string) {
			write(t, filepath.Join(outside, "target"), []byte("outside\n"))
			symlink(t, filepath.Join(outside, "target"), filepath.Join(tr.Dir, "quick", render.Job))
			editRun(t, tr)
		}, "is a symlink"},
		{"overlay directory", "quick", func(t *testing.T, tr *Tree, outside string) {
			if err := os.Rename(filepath.Join(tr.Dir, "quick"), filepath.Join(outside, "quick")); err != nil {
				t.Fatal(err)
			}
			symlink(t, filepath.Join(outside, "quick"), filepath.Join(tr.Dir, "quick"))
			editRun(t, tr)
		}, "is a symlink"},
		{"root kustomization", RootKustomization, func(t *testing.T, tr *Tree, outside string) {
			write(t, filepath.Join(outside, "target"), []byte("outside\n"))
			symlink(t, filepath.Join(outside, "target"), filepath.Join(tr.Dir, RootKustomization))
		}, "is a symlink"},
		{"overlay file that is a directory", "quick/" + render.Config, func(t *testing.T, tr *Tree, outside string) {
			if err := os.Remove(filepath.Join(tr.Dir, "quick", render.Config)); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(filepath.Join(tr.Dir, "quick", render.Config), 0o755); err != nil {
				t.Fatal(err)
			}
		}, "is a directory"},
		{"oversized overlay file", "quick/" + render.RunFile, func(t *testing.T, tr *Tree, outside string) {
			write(t, filepath.Join(tr.Dir, "quick", render.RunFile), bytes.Repeat([]byte("# x\n"), maxOverlayFile/2))
		}, "2097152 bytes, more than the limit of 1048576"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTree(t)
			outside := t.TempDir()
			tt.setup(t, tr, outside)
			before := snapshot(t, outside)
			p := renderTree(t, tr)
			err := p.Err()
			if err == nil || !strings.Contains(err.Error(), filepath.Join(tr.Dir, tt.path)+": "+tt.want) {
				t.Errorf("problems = %v, want %s: %s", err, filepath.Join(tr.Dir, tt.path), tt.want)
			}
			for _, c := range p.Changes {
				if c.New == nil {
					t.Errorf("render prunes %s while the tree has problems", c.Path)
				}
			}
			if diff := diffSnapshots(before, snapshot(t, outside)); diff != "" {
				t.Errorf("render wrote outside the tree: %s", diff)
			}
			if out, err := check(t, tr); !errors.Is(err, ErrCheck) {
				t.Errorf("check = %v, want ErrCheck\n%s", err, out)
			}
		})
	}
}

func diffSnapshots(a, b map[string]string) string {
	for k, v := range a {
		if b[k] != v {
			return k + " changed"
		}
	}
	if len(a) != len(b) {
		return "files added"
	}
	return ""
}

// TestRunsEntriesAreProblems: anything in runs/ but a regular
// <name>.yaml file is a problem naming it, its content is never read
// (nor echoed), and while it is there render prunes nothing: quick's
// overlay and its line in the root kustomization stay.
func TestRunsEntriesAreProblems(t *testing.T) {
	secret := strings.Repeat("SECRET-LINE\n", 1000)
	tests := []struct {
		name  string
		entry string // in runs/
		setup func(t *testing.T, runs, outside string)
		want  string
	}{
		{"other extension", "quick.yml", func(t *testing.T, runs, _ string) { rename(t, runs, "quick.yaml", "quick.yml") }, "unexpected file"},
		{"other case", "quick.YAML", func(t *testing.T, runs, _ string) { rename(t, runs, "quick.yaml", "quick.YAML") }, "unexpected file"},
		{"hidden file", ".quick.yaml", func(t *testing.T, runs, _ string) { rename(t, runs, "quick.yaml", ".quick.yaml") }, "unexpected file"},
		{"other file", "README.md", func(t *testing.T, runs, _ string) {
			remove(t, runs, "quick.yaml")
			write(t, filepath.Join(runs, "README.md"), []byte("notes\n"))
		}, "unexpected file"},
		{"subdirectory", "quick", func(t *testing.T, runs, _ string) {
			if err := os.Mkdir(filepath.Join(runs, "quick"), 0o755); err != nil {
				t.Fatal(err)
			}
			rename(t, runs, "quick.yaml", "quick/quick.yaml")
		}, "is a directory"},
		{"symlink to a device", "zero.yaml", func(t *testing.T, runs, _ string) {
			remove(t, runs, "quick.yaml")
			symlink(t, "/dev/zero", filepath.Join(runs, "zero.yaml"))
		}, "is a symlink"},
		{"symlink to a foreign file", "passwd.yaml", func(t *testing.T, runs, outside string) {
			remove(t, runs, "quick.yaml")
			write(t, filepath.Join(outside, "passwd"), []byte(secret))
			symlink(t, filepath.Join(outside, "passwd"), filepath.Join(runs, "passwd.yaml"))
		}, "is a symlink"},
		{"device", "dev.yaml", func(t *testing.T, runs, _ string) {
			remove(t, runs, "quick.yaml")
			// /dev/zero's numbers; needs root (CAP_MKNOD).
			if err := syscall.Mknod(filepath.Join(runs, "dev.yaml"), syscall.S_IFCHR|0o644, 1<<8|5); err != nil {
				t.Skipf("mknod: %v", err)
			}
		}, "is a device"},
		{"too large", "big.yaml", func(t *testing.T, runs, _ string) {
			remove(t, runs, "quick.yaml")
			write(t, filepath.Join(runs, "big.yaml"), bytes.Repeat([]byte("k: 1\n"), 2<<20))
		}, "10485760 bytes, more than the limit of 262144"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTree(t)
			runs := filepath.Join(tr.Dir, RunsDir)
			tt.setup(t, runs, t.TempDir())
			rootBefore, _ := os.ReadFile(filepath.Join(tr.Dir, RootKustomization))
			p := renderTree(t, tr)
			err := p.Err()
			if err == nil || !strings.Contains(err.Error(), filepath.Join(runs, tt.entry)+": "+tt.want) {
				t.Fatalf("problems = %v, want %s: %s", err, filepath.Join(runs, tt.entry), tt.want)
			}
			if msg := err.Error(); strings.Contains(msg, "SECRET") || len(msg) > 1000 {
				t.Errorf("the problem quotes the file's content (%d bytes): %.200s", len(msg), msg)
			}
			for _, c := range p.Changes {
				if c.New == nil || c.Path == RootKustomization {
					t.Errorf("render changes %s while runs/ has a problem", c.Path)
				}
			}
			if _, err := os.Stat(filepath.Join(tr.Dir, "quick", render.Job)); err != nil {
				t.Errorf("quick's overlay is gone: %v", err)
			}
			if root, _ := os.ReadFile(filepath.Join(tr.Dir, RootKustomization)); !bytes.Equal(root, rootBefore) {
				t.Errorf("root kustomization changed:\n%s", root)
			}
		})
	}
}

func rename(t *testing.T, dir, from, to string) {
	t.Helper()
	if err := os.Rename(filepath.Join(dir, from), filepath.Join(dir, to)); err != nil {
		t.Fatal(err)
	}
}

func remove(t *testing.T, dir, name string) {
	t.Helper()
	if err := os.Remove(filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// TestJobsDirSymlink: a jobs directory that is itself a symlink is
// refused, so render cannot be pointed out of the repository.
func TestJobsDirSymlink(t *testing.T) {
	tr := newTree(t)
	link := filepath.Join(t.TempDir(), "jobs")
	symlink(t, tr.Dir, link)
	if _, err := (&Tree{Dir: link}).Plan(t.Context()); err == nil || !strings.Contains(err.Error(), link+": is a symlink") {
		t.Errorf("Plan on a symlinked jobs directory = %v, want an error naming it", err)
	}
}
