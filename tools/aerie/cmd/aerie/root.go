package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/aerie-ml/aerie/internal/buildinfo"
	"github.com/aerie-ml/aerie/internal/exitcode"
	"github.com/aerie-ml/aerie/tools/aerie/internal/repo"
)

// env is what the commands share: their output, the flags of the root
// command, and whether a command's own work started (so that an error
// before it is a usage error, exit 2).
type env struct {
	stdout, stderr io.Writer
	getwd          func() (string, error)
	now            func() time.Time
	repoFlag       string
	started        bool
}

func newRoot(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "aerie",
		Short: "Train vision models and fly them on a fleet, the GitOps way",
		Long: `aerie renders and checks training runs, ingests datasets, lists and
compares model versions, promotes a version to a fleet and shows what the
fleet runs. It works from any directory of the repository.`,
		Version:       buildinfo.Read().String(),
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	group(root)
	// A group runs only to report a usage error: show it as "aerie run
	// [command]", not also as runnable.
	root.SetUsageTemplate(strings.Replace(root.UsageTemplate(), "{{if .Runnable}}", "{{if and .Runnable (not .HasAvailableSubCommands)}}", 1))
	root.SetVersionTemplate("aerie {{.Version}}\n")
	root.PersistentFlags().StringVar(&e.repoFlag, "repo", "", "repository `root` (default: the first directory above the working directory holding .git and apps/jobs/)")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return err })
	root.AddCommand(runCmd(e), datasetCmd(e), modelCmd(e), promoteCmd(e), fleetCmd(e), siteCmd(e), versionCmd(e))
	return root
}

// group makes c a command that only holds subcommands: run without one,
// or with an unknown one, it is a usage error naming the choices.
func group(c *cobra.Command) {
	c.Args = cobra.ArbitraryArgs
	c.SuggestionsMinimumDistance = 2
	c.RunE = func(c *cobra.Command, args []string) error {
		var names []string
		for _, s := range c.Commands() {
			if s.IsAvailableCommand() {
				names = append(names, s.Name())
			}
		}
		if len(args) == 0 {
			return fmt.Errorf("missing command: want one of %s", strings.Join(names, ", "))
		}
		msg := fmt.Sprintf("unknown command %q: want one of %s", args[0], strings.Join(names, ", "))
		if s := c.SuggestionsFor(args[0]); len(s) > 0 {
			msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(s, ", "))
		}
		return errors.New(msg)
	}
}

// do wraps a command's work: errors from it carry their own exit code
// (exitcode.Of), while errors before it are usage errors.
func (e *env) do(f func(ctx context.Context, args []string) error) func(*cobra.Command, []string) error {
	return func(c *cobra.Command, args []string) error {
		e.started = true
		return f(c.Context(), args)
	}
}

func (e *env) execute(ctx context.Context, root *cobra.Command, args []string) int {
	root.SetArgs(args)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	c, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitcode.OK
	}
	if !e.started {
		fmt.Fprintf(e.stderr, "%s: %v\nRun '%s --help' for usage.\n", c.CommandPath(), err, c.CommandPath())
		return exitcode.Config
	}
	var reported reportedError
	if !errors.As(err, &reported) {
		fmt.Fprintf(e.stderr, "%s: %v\n", c.CommandPath(), err)
	}
	return exitcode.Of(err)
}

// reportedError is an error the command has already written out in full
// (a check report): execute prints nothing more.
type reportedError struct{ error }

func (r reportedError) Unwrap() error { return r.error }

// root is the repository root: --repo, or found from the working directory.
func (e *env) root() (string, error) {
	if e.repoFlag != "" {
		return filepath.Abs(e.repoFlag)
	}
	wd, err := e.getwd()
	if err != nil {
		return "", err
	}
	dir, err := repo.Find(wd)
	return dir, exitcode.Wrap(exitcode.Config, err)
}

// inRepo resolves a path flag: relative paths are relative to the
// repository root, not the working directory.
func (e *env) inRepo(p string) (string, error) {
	if filepath.IsAbs(p) {
		return p, nil
	}
	r, err := e.root()
	if err != nil {
		return "", err
	}
	return filepath.Join(r, p), nil
}

func (e *env) logger() *slog.Logger { return slog.New(slog.NewTextHandler(e.stderr, nil)) }
