package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/aerie-ml/aerie/tools/aerie/internal/site"
)

func siteCmd(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "site",
		Short: "Build the web view of runs, versions and fleets as a static site",
	}
	group(c)
	var o site.Options
	build := &cobra.Command{
		Use:   "build --out DIR [--store URI] [--status-store URI]",
		Short: "Write the web view: runs and versions, comparisons, fleets",
		Long: `Build writes a static site: every run with its versions and their headline
and per-class test metrics, a page per version (curves, per-class table,
confusion matrix), comparisons of two versions (per-class deltas, curves
overlaid, both confusion matrices), and each fleet's pins, devices by
version and condition, and rollout. Links are relative: open index.html
from the directory, or publish it as a bucket website
(gcloud storage rsync --recursive DIR gs://BUCKET).`,
		Example: "  aerie site build --out out/site --status-store gs://aerie-models\n  aerie site build --out out/site --store file:///var/lib/aerie --status-store file:///var/lib/aerie",
		Args:    cobra.NoArgs,
		RunE: e.do(func(ctx context.Context, _ []string) error {
			root, err := e.root()
			if err != nil {
				return err
			}
			o.Repo, o.Now = root, e.now
			if o.Out, err = filepath.Abs(o.Out); err != nil {
				return err
			}
			pages, err := site.Build(ctx, o)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stderr, "wrote %d pages to %s\n", len(pages), o.Out)
			fmt.Fprintln(e.stdout, filepath.Join(o.Out, "index.html"))
			return nil
		}),
	}
	build.Flags().StringVar(&o.Out, "out", "", "`directory` to write the site into (required)")
	build.Flags().StringVar(&o.Store, "store", "", "store root `URI` of every run's versions (default: each run's spec.output.uri)")
	build.Flags().StringVar(&o.StatusStore, "status-store", "", "store root `URI` the devices upload status to (default: fleets show their pins only)")
	build.MarkFlagRequired("out")
	build.MarkFlagDirname("out")
	c.AddCommand(build)
	return c
}
