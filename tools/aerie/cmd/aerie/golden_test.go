package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"

	"github.com/aerie-ml/aerie/internal/exitcode"
	"github.com/aerie-ml/aerie/tools/aerie/internal/fixture"
	"github.com/aerie-ml/aerie/tools/aerie/internal/shapes"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs (-want +got; go test -update rewrites it):\n%s", path, diff)
	}
}

// commands lists every command of the tree under c, c included.
func commands(c *cobra.Command) []*cobra.Command {
	out := []*cobra.Command{c}
	for _, s := range c.Commands() {
		if s.Name() == "completion" {
			out = append(out, s) // its subcommands are cobra's, not ours
			continue
		}
		out = append(out, commands(s)...)
	}
	return out
}

// TestHelp: every command's --help and -h print the same help, on stdout,
// and exit 0.
func TestHelp(t *testing.T) {
	for _, c := range commands(newRoot(newEnv(nil, nil))) {
		path := strings.Fields(c.CommandPath())[1:]
		name := strings.Join(append([]string{"aerie"}, path...), "_")
		t.Run(name, func(t *testing.T) {
			var out, errs bytes.Buffer
			if code := execute(t.Context(), append(path, "--help"), &out, &errs); code != 0 || errs.Len() > 0 {
				t.Errorf("aerie %s --help = exit %d, stderr %q; want exit 0, no stderr", strings.Join(path, " "), code, errs.String())
			}
			golden(t, filepath.Join("help", name+".txt"), out.String())
			var short bytes.Buffer
			if code := execute(t.Context(), append(path, "-h"), &short, &errs); code != 0 || short.String() != out.String() {
				t.Errorf("aerie %s -h = exit %d, and differs from --help", strings.Join(path, " "), code)
			}
		})
	}
}

// TestUsageErrors: a usage error exits 2 and names what is wrong.
func TestUsageErrors(t *testing.T) {
	w := fixture.New(t)
	tests := []struct {
		name string
		args []string
	}{
		{"no command", nil},
		{"unknown command", []string{"rnu"}},
		{"group without command", []string{"model"}},
		{"unknown subcommand", []string{"run", "rendr"}},
		{"unknown flag", []string{"run", "check", "--bogus"}},
		{"missing flags", []string{"promote"}},
		{"missing version", []string{"promote", "--run", "quick", "--fleet", "quadcopters"}},
		{"missing argument", []string{"model", "show", "quick"}},
		{"extra argument", []string{"model", "list", "quick", "extra"}},
		{"bad output format", []string{"model", "list", "quick", "-o", "xml"}},
		{"missing store", []string{"fleet", "status", "quadcopters"}},
		{"bad canary", []string{"promote", "--run", "quick", "--fleet", "quadcopters", "--version", "newest", "--canary", "101"}},
		{"unknown run", []string{"model", "list", "nope"}},
	}
	var all strings.Builder
	for _, tt := range tests {
		var out, errs bytes.Buffer
		code := execute(t.Context(), append([]string{"--repo", w.Repo}, tt.args...), &out, &errs)
		if code != exitcode.Config {
			t.Errorf("%s: aerie %q = exit %d, want %d\n%s", tt.name, tt.args, code, exitcode.Config, errs.String())
		}
		fmt.Fprintf(&all, "$ aerie %s\n%s(exit %d)\n\n", strings.Join(tt.args, " "), scrub(errs.String(), w), code)
	}
	golden(t, "usage-errors.txt", all.String())
}

// scrub replaces the fixture's temporary paths, and the manifest digests
// that hash them, so the output is stable.
func scrub(s string, w *fixture.World) string {
	return strings.NewReplacer(w.StoreDir, "$STORE", w.Repo, "$REPO", w.OldDigest, "$OLD_DIGEST", w.NewDigest, "$NEW_DIGEST").Replace(s)
}

// TestUse: one real use of every data command against the fixture, in
// every output format where it has one.
func TestUse(t *testing.T) {
	w := fixture.New(t)
	// The use tests run in order on one World: the diff before the render
	// shows the whole overlay, and promote after its dry run.
	tests := []struct {
		name  string
		args  []string
		setup func(t *testing.T, out string) // prepares $OUT
	}{
		{name: "version", args: []string{"version"}},
		{name: "run_diff", args: []string{"run", "diff", "--revision", "0123456"},
			setup: func(t *testing.T, _ string) {
				// The run's architecture, models/small.yaml, as this checkout has it.
				b, err := os.ReadFile(filepath.Join(repoRoot, "models", "small.yaml"))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.MkdirAll(filepath.Join(w.Repo, "models"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(w.Repo, "models", "small.yaml"), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "run_render", args: []string{"run", "render", "--revision", "0123456"}},
		{name: "run_check", args: []string{"run", "check"}},
		{name: "dataset_generate", args: []string{"dataset", "generate", "shapes", "$OUT/shapes", "--train", "1", "--test", "1"}},
		{name: "dataset_ingest", args: []string{"dataset", "ingest", "--from", "$OUT/shapes", "--name", "shapes", "--size", "16x16", "--channels", "3", "--to", "file://$OUT/store"},
			setup: func(t *testing.T, out string) {
				if _, err := shapes.Generate(filepath.Join(out, "shapes"), shapes.Options{Seed: 1, TrainPerClass: 1, TestPerClass: 1}); err != nil {
					t.Fatal(err)
				}
			}},
		{"model_list", []string{"model", "list", fixture.Run}, nil},
		{"model_list_json", []string{"model", "list", fixture.Run, "-o", "json"}, nil},
		{"model_show", []string{"model", "show", fixture.Run, w.New.Version}, nil},
		{"model_show_yaml", []string{"model", "show", fixture.Run, w.Old.Version, "-o", "yaml"}, nil},
		{"model_compare", []string{"model", "compare", fixture.Run, w.Old.Version, w.New.Version}, nil},
		{"fleet_status", []string{"fleet", "status", fixture.Fleet, "--store", w.Store}, nil},
		{"fleet_status_json", []string{"fleet", "status", fixture.Fleet, "--store", w.Store, "-o", "json"}, nil},
		{"dataset_show", []string{"dataset", "show", fixture.Run}, nil},
		{"dataset_show_uri_json", []string{"dataset", "show", w.DatasetURI, "-o", "json"}, nil},
		{"site_build", []string{"site", "build", "--out", "$OUT", "--status-store", w.Store}, nil},
		{"promote_dry_run", []string{"promote", "--run", fixture.Run, "--fleet", fixture.Fleet, "--version", "newest", "--local-fleet", "--dry-run"}, nil},
		{"promote", []string{"promote", "--run", fixture.Run, "--fleet", fixture.Fleet, "--version", w.New.Version, "--local-fleet"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, errs bytes.Buffer
			e := newEnv(&stdout, &errs)
			e.now = func() time.Time { return fixture.Now }
			out := t.TempDir()
			for i := range tt.args {
				tt.args[i] = strings.ReplaceAll(tt.args[i], "$OUT", out)
			}
			if tt.setup != nil {
				tt.setup(t, out)
			}
			if code := e.run(t.Context(), append([]string{"--repo", w.Repo}, tt.args...)); code != 0 {
				t.Fatalf("aerie %q = exit %d\n%s", tt.args, code, errs.String())
			}
			got := strings.ReplaceAll(scrub(stdout.String(), w), out, "$OUT")
			golden(t, filepath.Join("use", tt.name+".txt"), strings.ReplaceAll(got, runtime.Version(), "$GO_VERSION"))
		})
	}
}
