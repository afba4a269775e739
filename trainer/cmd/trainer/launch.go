package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/aerie-ml/aerie/internal/exitcode"
	"github.com/aerie-ml/aerie/trainer/internal/launch"
	"github.com/aerie-ml/aerie/trainer/internal/progress"
)

const launchUsage = `usage:
  trainer launch --nproc N -- [train] TRAIN_FLAGS...   N ranks of "trainer train" on 127.0.0.1
  trainer launch OVERLAY_DIR [-- EXTRA_TRAIN_FLAGS...]  the replicas of a rendered PyTorchJob
                                                        (apps/jobs/<name>/), flags appended

flags:
`

// runLaunch is the torchrun equivalent: see trainer/internal/launch.
func runLaunch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var trainArgs []string
	if i := slices.Index(args, "--"); i >= 0 {
		args, trainArgs = args[:i], args[i+1:]
	}
	fs := flag.NewFlagSet("trainer launch", flag.ContinueOnError)
	fs.Usage = func() {
		io.WriteString(fs.Output(), launchUsage)
		fs.PrintDefaults()
	}
	nproc := fs.Int("nproc", 0, "number of local ranks (without OVERLAY_DIR)")
	grace := fs.Duration("grace", 10*time.Second, "how long ranks get to exit after SIGTERM before SIGKILL")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	// JSON lines; on a terminal, one bar for the job with every record,
	// the launcher's own too, printed above it as the ranks' text.
	var bar *progress.Aggregate
	logTo := stderr
	if progress.IsTerminal(stderr) {
		bar = progress.NewAggregate(stderr, 0)
		logTo = bar.Writer(-1)
	}
	logger := slog.New(slog.NewJSONHandler(logTo, nil))
	var replicas []launch.Replica
	switch {
	case fs.NArg() == 1 && *nproc == 0:
		job, err := launch.Overlay(fs.Arg(0), trainArgs)
		if err != nil {
			return err
		}
		defer os.RemoveAll(job.Dir)
		logger.Info("launching PyTorchJob", "name", job.Name, "overlay", fs.Arg(0), "replicas", len(job.Replicas))
		replicas = job.Replicas
	case fs.NArg() == 0 && *nproc > 0:
		if len(trainArgs) == 0 || strings.HasPrefix(trainArgs[0], "-") {
			trainArgs = append([]string{"train"}, trainArgs...)
		}
		var err error
		if replicas, err = launch.Local(*nproc, trainArgs); err != nil {
			return err
		}
	default:
		fs.Usage()
		return exitcode.Errorf(exitcode.Config, "launch: give either --nproc N or one overlay directory")
	}
	return launch.Run(ctx, replicas, launch.Options{
		Stdout: stdout,
		Stderr: stderr,
		Bar:    bar,
		Grace:  *grace,
		Log:    logger,
	})
}
