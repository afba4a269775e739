// Command aerie is the one CLI for aerie's users: render and check training
// runs, ingest datasets, list and compare model versions, promote a version
// to a fleet and see what the fleet runs. See cli/README.md.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// execute runs the command line args and returns the process's exit code.
func execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr, getwd: os.Getwd}
	return e.execute(ctx, newRoot(e), args)
}
