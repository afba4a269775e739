// Command ingest uploads Fashion-MNIST into a store, under
// datasets/<name>/<digest>/, and prints the dataset URI and digest to paste
// into a run declaration (spec.dataset.uri and spec.dataset.sha256).
//
//	ingest -to gs://aerie-data                    # from Debian's dataset-fashion-mnist
//	ingest -from ./idx -to file:///var/lib/aerie  # any directory of IDX files, gzipped or not
//
// Re-ingesting the same data is a no-op; it is safe to run again.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/aerie-ml/aerie/internal/exitcode"
	"github.com/aerie-ml/aerie/internal/fmnist"
	"github.com/aerie-ml/aerie/internal/store"
	"github.com/aerie-ml/aerie/tools/ingest/internal/ingest"
)

func main() {
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	from := fs.String("from", fmnist.DebianDir, "`directory` holding the four IDX files (Debian's dataset-fashion-mnist by default)")
	to := fs.String("to", "", "store `URI`: gs://bucket[/prefix] or file:///absolute/path (required)")
	name := fs.String("name", "fashion-mnist", "dataset `name` in the store layout")
	want := fs.String("sha256", "", "expected dataset `digest`; fail if the files hash otherwise")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(exitcode.Config)
	}
	if *to == "" || fs.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "ingest: -to is required and no arguments are taken")
		fs.Usage()
		os.Exit(exitcode.Config)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Stdout, slog.New(slog.NewTextHandler(os.Stderr, nil)), *from, *to, *name, *want)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ingest:", err)
	}
	os.Exit(exitcode.Of(err))
}

func run(ctx context.Context, stdout io.Writer, log *slog.Logger, from, to, name, want string) error {
	if fi, err := os.Stat(from); err != nil {
		return exitcode.Wrap(exitcode.Config, fmt.Errorf("-from: %w (install Debian's dataset-fashion-mnist or pass a directory of IDX files)", err))
	} else if !fi.IsDir() {
		return exitcode.Errorf(exitcode.Config, "-from: %s is not a directory", from)
	}
	s, err := store.Open(ctx, to)
	if err != nil {
		return err
	}
	defer s.Close()
	res, err := ingest.Dataset(ctx, log, s, os.DirFS(from), name, want)
	if err != nil {
		return err
	}
	stored := 0
	for _, f := range res.Files {
		if !f.Present {
			stored++
		}
	}
	fmt.Fprintf(stdout, "# %s from %s: %d files stored, %d already present.\n", name, from, stored, len(res.Files)-stored)
	fmt.Fprintf(stdout, "# Paste into the run declaration:\nspec:\n  dataset:\n    uri: %s\n    sha256: %s\n", res.URI, res.Digest)
	return nil
}
