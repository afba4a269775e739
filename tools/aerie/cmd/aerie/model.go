package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/aerie-ml/aerie/internal/exitcode"
	"github.com/aerie-ml/aerie/internal/manifest"
	"github.com/aerie-ml/aerie/internal/repofile"
	"github.com/aerie-ml/aerie/internal/runspec"
	"github.com/aerie-ml/aerie/internal/store"
	"github.com/aerie-ml/aerie/tools/aerie/internal/registry"
)

func modelCmd(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "model",
		Short: "List, show and compare the model versions a run trained",
	}
	group(c)
	var listOut, showOut, compareOut *outputFormat
	var storeURI string
	c.PersistentFlags().StringVar(&storeURI, "store", "", "store root `URI` holding models/<run>/ (default: the run's spec.output.uri)")

	list := &cobra.Command{
		Use:               "list RUN",
		Short:             "List a run's versions, newest first, with their test accuracy and gates",
		Example:           "  aerie model list fmnist-cnn\n  aerie model list quick --store file:///var/lib/aerie -o json",
		Args:              exactArgs("RUN"),
		ValidArgsFunction: e.completeRuns,
		RunE: e.do(func(ctx context.Context, args []string) error {
			s, err := e.runStore(ctx, args[0], storeURI)
			if err != nil {
				return err
			}
			defer s.Close()
			versions, err := registry.List(ctx, s, args[0])
			if err != nil {
				return err
			}
			rows := make([]versionSummary, len(versions))
			for i, v := range versions {
				rows[i] = summarize(v)
			}
			return listOut.print(e.stdout, rows, func(w io.Writer) {
				fmt.Fprintln(w, "VERSION\tCREATED\tARCH\tTEST ACC\tWORST CLASS\tGATES\tBYTES")
				for _, r := range rows {
					fmt.Fprintf(w, "%s\t%s\t%s\t%.4f\t%s %.4f\t%s\t%d\n", r.Version, r.Created.Format(time.DateTime), r.Architecture,
						r.TestAccuracy, r.WorstClass, r.WorstClassAccuracy, r.Gates, r.ModelBytes)
				}
			})
		}),
	}
	listOut = addOutput(list)

	show := &cobra.Command{
		Use:               "show RUN VERSION",
		Short:             "Show a version: lineage, hyperparameters, headline and per-class test metrics",
		Args:              exactArgs("RUN", "VERSION"),
		ValidArgsFunction: e.completeVersions(&storeURI),
		RunE: e.do(func(ctx context.Context, args []string) error {
			s, err := e.runStore(ctx, args[0], storeURI)
			if err != nil {
				return err
			}
			defer s.Close()
			v, err := registry.Get(ctx, s, args[0], args[1])
			if err != nil {
				return err
			}
			return showOut.print(e.stdout, v, func(w io.Writer) { writeVersion(w, v) })
		}),
	}
	showOut = addOutput(show)

	compare := &cobra.Command{
		Use:               "compare RUN VERSION_A VERSION_B",
		Short:             "Compare two versions: headline figures and per-class test accuracy, B minus A",
		Args:              exactArgs("RUN", "VERSION_A", "VERSION_B"),
		ValidArgsFunction: e.completeVersions(&storeURI),
		RunE: e.do(func(ctx context.Context, args []string) error {
			s, err := e.runStore(ctx, args[0], storeURI)
			if err != nil {
				return err
			}
			defer s.Close()
			a, err := registry.Get(ctx, s, args[0], args[1])
			if err != nil {
				return err
			}
			b, err := registry.Get(ctx, s, args[0], args[2])
			if err != nil {
				return err
			}
			out := comparison{A: summarize(a), B: summarize(b), Classes: registry.Compare(a.Manifest, b.Manifest)}
			return compareOut.print(e.stdout, out, func(w io.Writer) {
				fmt.Fprintf(w, "\tA %s\tB %s\tB-A\n", a.Manifest.Version, b.Manifest.Version)
				fmt.Fprintf(w, "test accuracy\t%.4f\t%.4f\t%+.4f\n", out.A.TestAccuracy, out.B.TestAccuracy, out.B.TestAccuracy-out.A.TestAccuracy)
				fmt.Fprintf(w, "test loss\t%.4f\t%.4f\t%+.4f\n", a.Manifest.Metrics.TestLoss, b.Manifest.Metrics.TestLoss, b.Manifest.Metrics.TestLoss-a.Manifest.Metrics.TestLoss)
				fmt.Fprintf(w, "model bytes\t%d\t%d\t%+d\n", out.A.ModelBytes, out.B.ModelBytes, out.B.ModelBytes-out.A.ModelBytes)
				fmt.Fprintf(w, "epochs\t%d\t%d\t\n", len(a.Manifest.Metrics.Epochs), len(b.Manifest.Metrics.Epochs))
				fmt.Fprintln(w, "CLASS\tA\tB\tB-A")
				for _, d := range out.Classes {
					fmt.Fprintf(w, "%s\t%.4f\t%.4f\t%+.4f\n", d.Class, d.A, d.B, d.Delta)
				}
			})
		}),
	}
	compareOut = addOutput(compare)
	c.AddCommand(list, show, compare)
	return c
}

type versionSummary struct {
	Version            string    `json:"version"`
	URI                string    `json:"uri"`
	Created            time.Time `json:"createdAt"`
	Architecture       string    `json:"architecture"`
	TestAccuracy       float64   `json:"testAccuracy"`
	WorstClass         string    `json:"worstClass"`
	WorstClassAccuracy float64   `json:"worstClassAccuracy"`
	Gates              string    `json:"gates"`
	ModelBytes         int64     `json:"modelBytes"`
}

type comparison struct {
	A       versionSummary        `json:"a"`
	B       versionSummary        `json:"b"`
	Classes []registry.ClassDelta `json:"classes"`
}

func summarize(v registry.Version) versionSummary {
	m := v.Manifest
	s := versionSummary{Version: m.Version, URI: v.URI, Created: m.CreatedAt, Architecture: m.Model.Architecture,
		TestAccuracy: m.Metrics.TestAccuracy, ModelBytes: m.Metrics.ModelBytes, WorstClass: "-"}
	for i, acc := range m.Metrics.ClassAccuracy {
		if s.WorstClass == "-" || acc < s.WorstClassAccuracy {
			s.WorstClass, s.WorstClassAccuracy = className(m, i), acc
		}
	}
	failed := len(manifest.Failed(m.Gates))
	switch {
	case len(m.Gates) == 0:
		s.Gates = "none"
	case failed == 0:
		s.Gates = fmt.Sprintf("pass %d/%d", len(m.Gates), len(m.Gates))
	default:
		s.Gates = fmt.Sprintf("FAIL %d/%d", failed, len(m.Gates))
	}
	return s
}

func className(m *manifest.Manifest, i int) string {
	if i < len(m.Model.Classes) {
		return m.Model.Classes[i]
	}
	return fmt.Sprint(i)
}

func writeVersion(w io.Writer, v registry.Version) {
	m := v.Manifest
	h := m.Hyperparameters
	fmt.Fprintf(w, "Version:\t%s/%s\n", m.Run, m.Version)
	fmt.Fprintf(w, "URI:\t%s\n", v.URI)
	fmt.Fprintf(w, "Manifest digest:\t%s\n", v.Digest)
	fmt.Fprintf(w, "Created:\t%s\n", m.CreatedAt.Format(time.RFC3339))
	fmt.Fprintf(w, "Architecture:\t%s, %d parameters, input %v, %d bytes\n", m.Model.Architecture, m.Model.Parameters, m.Model.Input, m.Metrics.ModelBytes)
	fmt.Fprintf(w, "Dataset:\t%s (%s)\n", m.Dataset.URI, m.Dataset.Digest)
	fmt.Fprintf(w, "Lineage:\tcommit %s, image %s, %d workers\n", cmp.Or(m.Lineage.GitCommit, "-"), cmp.Or(m.Lineage.ImageDigest, "-"), m.Lineage.WorldSize)
	fmt.Fprintf(w, "Training:\t%d epochs, batch %d, lr %g %s, %s, seed %d\n", h.Epochs, h.BatchSize, h.LearningRate, h.Schedule, h.Optimizer, h.Seed)
	fmt.Fprintf(w, "Test:\taccuracy %.4f, loss %.4f\n", m.Metrics.TestAccuracy, m.Metrics.TestLoss)
	fmt.Fprintf(w, "Speed:\t%.0f img/s, %.0f s wall\n", m.Metrics.ImagesPerSecond, m.Metrics.WallSeconds)
	fmt.Fprintln(w, "\nCLASS\tTEST ACC")
	for i, acc := range m.Metrics.ClassAccuracy {
		fmt.Fprintf(w, "%s\t%.4f\n", className(m, i), acc)
	}
	if len(m.Gates) > 0 {
		fmt.Fprintln(w, "\nGATE\tVALUE\tTHRESHOLD\tRESULT")
		for _, g := range m.Gates {
			res := "pass"
			if !g.Passed {
				res = "FAIL"
			}
			if g.Missing != "" {
				fmt.Fprintf(w, "%s\t-\tmissing: %s\t%s\n", g.Name, g.Missing, res)
				continue
			}
			fmt.Fprintf(w, "%s\t%.4g\t%s %.4g\t%s\n", g.Name, g.Value, g.Comparison, g.Threshold, res)
		}
	}
}

// exactArgs requires the named positional arguments and names the missing
// ones in its error.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		switch {
		case len(args) < len(names):
			return fmt.Errorf("missing %s", strings.Join(names[len(args):], " and "))
		case len(args) > len(names):
			return fmt.Errorf("unexpected arguments %q after %s", args[len(names):], strings.Join(names, " "))
		}
		return nil
	}
}

// runSpec reads apps/jobs/runs/<run>.yaml.
func (e *env) runSpec(run string) (*runspec.TrainingRun, error) {
	root, err := e.root()
	if err != nil {
		return nil, err
	}
	t, err := repofile.Open(root)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	name := path.Join("apps", "jobs", "runs", run+".yaml")
	b, err := t.ReadFile(name, runspec.MaxBytes)
	if err != nil {
		return nil, exitcode.Wrap(exitcode.Config, fmt.Errorf("run %q: %w (aerie run render lists the runs)", run, err))
	}
	return runspec.Parse(t.Path(name), b)
}

// runStore opens the store holding run's versions: its team's part of
// root, or else of the run's spec.output.uri.
func (e *env) runStore(ctx context.Context, run, root string) (store.Store, error) {
	spec, err := e.runSpec(run)
	if err != nil {
		return nil, err
	}
	return store.Open(ctx, spec.TeamStore(root))
}

// completeRuns completes run names from apps/jobs/runs.
func (e *env) completeRuns(c *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	root, err := e.root()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	t, err := repofile.Open(root)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	defer t.Close()
	entries, err := t.ReadDir(path.Join("apps", "jobs", "runs"))
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var runs []string
	for _, en := range entries {
		if name, ok := strings.CutSuffix(en.Name(), ".yaml"); ok {
			runs = append(runs, name)
		}
	}
	return runs, cobra.ShellCompDirectiveNoFileComp
}

// completeVersions completes a run, then its versions from the store.
func (e *env) completeVersions(storeURI *string) cobra.CompletionFunc {
	return func(c *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) == 0 {
			return e.completeRuns(c, args, "")
		}
		s, err := e.runStore(c.Context(), args[0], *storeURI)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		defer s.Close()
		versions, err := registry.List(c.Context(), s, args[0])
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []string
		for _, v := range versions {
			out = append(out, v.Manifest.Version+"\t"+v.Manifest.CreatedAt.Format(time.DateTime))
		}
		return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveKeepOrder
	}
}
