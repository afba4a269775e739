// Command jobgen renders the TrainingRun declarations under apps/jobs/runs
// into Kustomize overlays, checks that the committed overlays are current,
// and shows what a render would change.
//
//	jobgen render   write apps/jobs/<run>/ for every run, prune deleted runs
//	jobgen check    fail on a stale overlay, an invalid run or a failed build
//	jobgen diff     print the unified diff render would apply
//	jobgen status   list the runs on a cluster: phase, replicas, age
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"syscall"
	"time"

	"github.com/aerie-ml/aerie/internal/exitcode"
	"github.com/aerie-ml/aerie/tools/jobgen/internal/jobs"
	"github.com/aerie-ml/aerie/tools/jobgen/internal/render"
	"github.com/aerie-ml/aerie/tools/jobgen/internal/status"
)

const usage = `usage: jobgen <render|check|diff|status> [flags]

  render  write apps/jobs/<run>/ for every apps/jobs/runs/<run>.yaml, update
          apps/jobs/kustomization.yaml and prune the overlays of deleted runs
  check   exit non-zero on a stale overlay, an invalid declaration or an
          overlay that does not build with kustomize
  diff    print the unified diff of what render would change
  status  list the PyTorchJobs on a cluster with their phase, replicas
          (active/desired) and age

flags:
`

func main() {
	fs := flag.NewFlagSet("jobgen", flag.ContinueOnError)
	dir := fs.String("jobs", "apps/jobs", "the jobs `directory`: runs/ and the rendered overlays")
	revision := fs.String("revision", "", "git `revision` to label changed overlays with (default: HEAD of the repository holding -jobs)")
	gsa := fs.String("gcp-service-account", render.DefaultGCPServiceAccount, "Google service account `email` the trainer's Kubernetes service account maps to (Workload Identity)")
	kubeconfig := fs.String("kubeconfig", "", "status: kubeconfig `path` (default $KUBECONFIG or ~/.kube/config)")
	namespace := fs.String("namespace", "training", "status: `namespace` of the runs")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	if len(os.Args) < 2 {
		fs.Usage()
		os.Exit(exitcode.Config)
	}
	cmd := os.Args[1]
	if err := fs.Parse(os.Args[2:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(exitcode.Config)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "jobgen: unexpected arguments %q\n", fs.Args())
		os.Exit(exitcode.Config)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, cmd, config{dir: *dir, revision: *revision, gsa: *gsa, kubeconfig: *kubeconfig, namespace: *namespace}, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, jobs.ErrCheck) {
			fmt.Fprintf(os.Stderr, "jobgen %s: %v\n", cmd, err)
		}
		os.Exit(exitcode.Of(err))
	}
}

type config struct {
	dir, revision, gsa    string
	kubeconfig, namespace string
}

var revisionRE = regexp.MustCompile(`^[0-9a-f]{7,64}$`)

func run(ctx context.Context, cmd string, c config, stdout, stderr io.Writer) error {
	if c.revision != "" && !revisionRE.MatchString(c.revision) {
		return exitcode.Errorf(exitcode.Config, "--revision: must be 7 to 64 lowercase hex digits, got %q", c.revision)
	}
	t := &jobs.Tree{
		Dir:     c.dir,
		Options: render.Options{GCPServiceAccount: c.gsa},
		Revision: func() (string, error) {
			if c.revision != "" {
				return c.revision, nil
			}
			return jobs.HeadRevision(c.dir)
		},
	}
	switch cmd {
	case "status":
		return status.Print(ctx, status.Options{Kubeconfig: c.kubeconfig, Namespace: c.namespace}, stdout, time.Now())
	case "render":
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
			fmt.Fprintln(stderr, "jobgen:", verb, filepath.Join(c.dir, ch.Path))
		}
		return exitcode.Wrap(exitcode.Config, plan.Err())
	case "check":
		t.Build = true
		t.Revision = nil // a stale overlay is reported, not rendered
		plan, err := t.Plan(ctx)
		if err != nil {
			return err
		}
		return t.Check(plan, stderr)
	case "diff":
		plan, err := t.Plan(ctx)
		if err != nil {
			return err
		}
		if err := t.Diff(plan, stdout); err != nil {
			return err
		}
		return exitcode.Wrap(exitcode.Config, plan.Err())
	}
	return exitcode.Errorf(exitcode.Config, "unknown command %q: want render, check, diff or status", cmd)
}
