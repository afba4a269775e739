package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/aerie-ml/aerie/internal/exitcode"
	"github.com/aerie-ml/aerie/tools/aerie/internal/jobs"
	"github.com/aerie-ml/aerie/tools/aerie/internal/render"
	"github.com/aerie-ml/aerie/tools/aerie/internal/status"
)

type runFlags struct {
	jobs, revision              string
	kubeconfig, namespace, team string
}

func runCmd(e *env) *cobra.Command {
	var f runFlags
	var statusOut *outputFormat
	c := &cobra.Command{
		Use:   "run",
		Short: "Render, check and diff the training runs under apps/jobs/runs, and show them on a cluster",
	}
	group(c)
	c.PersistentFlags().StringVar(&f.jobs, "jobs", "apps/jobs", "the jobs `directory` (runs/ and the rendered overlays), relative to the repository root")
	tree := func(ctx context.Context) (*jobs.Tree, error) {
		if f.revision != "" && !render.IsRevision(f.revision) {
			return nil, exitcode.Errorf(exitcode.Config, "--revision: must be 7 to 64 lowercase hex digits, got %q", f.revision)
		}
		dir, err := e.inRepo(f.jobs)
		if err != nil {
			return nil, err
		}
		// The architectures are models/ at the repository's root; an
		// absolute --jobs outside a repository takes the one two levels
		// above it.
		repo, err := e.inRepo(".")
		if err != nil && !filepath.IsAbs(f.jobs) {
			return nil, err
		}
		return &jobs.Tree{
			Dir:  dir,
			Repo: repo,
			Revision: func() (string, error) {
				if f.revision != "" {
					return f.revision, nil
				}
				return jobs.HeadRevision(dir)
			},
		}, nil
	}
	// renderFlags are the flags of the commands that render; labelled ones
	// (render, diff) also label what changed with a revision, while check
	// only compares.
	renderFlags := func(c *cobra.Command, labelled bool) {
		if labelled {
			c.Flags().StringVar(&f.revision, "revision", "", "git `revision` to label changed overlays with (default: HEAD of the repository)")
		}
	}

	renderCmd := &cobra.Command{
		Use:   "render",
		Short: "Write apps/jobs/<run>/ for every run, update apps/jobs/kustomization.yaml, prune deleted runs",
		Long: `Render writes apps/jobs/<run>/ for every apps/jobs/runs/<run>.yaml, updates
apps/jobs/kustomization.yaml and prunes the overlays of deleted runs. On any
problem it exits 2 and prunes nothing.`,
		Args: cobra.NoArgs,
		RunE: e.do(func(ctx context.Context, _ []string) error {
			t, err := tree(ctx)
			if err != nil {
				return err
			}
			plan, err := t.Plan(ctx)
			if err != nil {
				return err
			}
			if err := t.Apply(plan); err != nil {
				return err
			}
			for _, ch := range plan.Changes {
				verb := "wrote"
				if ch.New == nil {
					verb = "removed"
				}
				fmt.Fprintln(e.stderr, verb, filepath.Join(f.jobs, ch.Path))
			}
			return exitcode.Wrap(exitcode.Config, plan.Err())
		}),
	}
	renderFlags(renderCmd, true)

	checkCmd := &cobra.Command{
		Use:   "check",
		Short: "Fail on a stale overlay, an invalid run or an overlay that does not build",
		Args:  cobra.NoArgs,
		RunE: e.do(func(ctx context.Context, _ []string) error {
			t, err := tree(ctx)
			if err != nil {
				return err
			}
			t.Build = true
			t.Revision = nil // a stale overlay is reported, not rendered
			plan, err := t.Plan(ctx)
			if err != nil {
				return err
			}
			if err := t.PrintPlans(plan, e.stdout); err != nil {
				return err
			}
			if err := t.Check(plan, e.stderr); err != nil {
				if errors.Is(err, jobs.ErrCheck) {
					return reportedError{err}
				}
				return err
			}
			return nil
		}),
	}
	renderFlags(checkCmd, false)

	diffCmd := &cobra.Command{
		Use:   "diff",
		Short: "Print the unified diff of what render would change",
		Args:  cobra.NoArgs,
		RunE: e.do(func(ctx context.Context, _ []string) error {
			t, err := tree(ctx)
			if err != nil {
				return err
			}
			plan, err := t.Plan(ctx)
			if err != nil {
				return err
			}
			if err := t.Diff(plan, e.stdout); err != nil {
				return err
			}
			return exitcode.Wrap(exitcode.Config, plan.Err())
		}),
	}
	renderFlags(diffCmd, true)

	statusCmd := &cobra.Command{
		Use:   "status",
		Short: "List the runs on a cluster: team, phase, replicas (active/desired) and age",
		Args:  cobra.NoArgs,
		RunE: e.do(func(ctx context.Context, _ []string) error {
			runs, err := status.Get(ctx, status.Options{Kubeconfig: f.kubeconfig, Namespace: f.namespace, Team: f.team}, e.now())
			if err != nil {
				return err
			}
			return statusOut.print(e.stdout, runs, func(w io.Writer) { status.Write(w, runs) })
		}),
	}
	statusOut = addOutput(statusCmd)
	statusCmd.Flags().StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig `path` (default $KUBECONFIG or ~/.kube/config)")
	statusCmd.Flags().StringVarP(&f.namespace, "namespace", "n", "", "`namespace` of the runs (default: every team's)")
	statusCmd.Flags().StringVar(&f.team, "team", "", "only the runs of `team` (its namespace team-<team>)")

	c.AddCommand(renderCmd, checkCmd, diffCmd, statusCmd)
	return c
}
