// Command demo runs aerie's whole mission on this machine (make demo):
// train, store, promote and fly, then print a summary.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/aerie-ml/aerie/tools/demo/internal/demo"
)

func main() {
	var c demo.Config
	flag.StringVar(&c.RepoDir, "repo", ".", "aerie checkout to build and clone")
	flag.StringVar(&c.OutDir, "out", "out/demo", "directory for everything the demo writes (emptied first)")
	flag.StringVar(&c.Arch, "arch", "cnn", "architecture to train")
	flag.IntVar(&c.Epochs, "epochs", 1, "epochs")
	flag.IntVar(&c.Workers, "workers", 2, "local workers (WORLD_SIZE)")
	flag.Float64Var(&c.MinTestAccuracy, "min-test-accuracy", 0.8, "the run's test accuracy gate")
	flag.Float64Var(&c.MinClassAccuracy, "min-class-accuracy", 0.4, "the run's per-class accuracy gate")
	flag.DurationVar(&c.Fly, "fly", 10*time.Second, "how long the edge agent classifies frames")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	c.Stdout, c.Stderr = os.Stdout, os.Stderr
	_, err := demo.Run(ctx, c)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}
