// Command aerie is the one CLI for aerie's users: render and check training
// runs, ingest datasets, list and compare model versions, promote a version
// to a fleet and see what the fleet runs. See tools/aerie/README.md.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// execute runs the command line args and returns the process's exit code.
func execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return newEnv(stdout, stderr).run(ctx, args)
}

func newEnv(stdout, stderr io.Writer) *env {
	return &env{stdout: stdout, stderr: stderr, getwd: os.Getwd, now: time.Now}
}

func (e *env) run(ctx context.Context, args []string) int {
	return e.execute(ctx, newRoot(e), args)
}
