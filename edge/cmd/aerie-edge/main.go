// Command aerie-edge is the Raspberry Pi agent: it follows its fleet's model
// pins in Git, installs verified and self-tested model versions, classifies
// camera frames and drives GPIO lines. See edge/README.md.
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

	"gopkg.in/yaml.v3"

	"github.com/aerie-ml/aerie/edge/internal/agent"
	"github.com/aerie-ml/aerie/edge/internal/config"
	"github.com/aerie-ml/aerie/internal/buildinfo"
	"github.com/aerie-ml/aerie/internal/exitcode"
)

func main() {
	configPath := flag.String("config", config.DefaultPath, "device configuration `file`")
	once := flag.Bool("once", false, "restore, reconcile once and exit (non-zero if the pass should be retried)")
	check := flag.Bool("check-config", false, "parse the configuration, print it with defaults and exit")
	level := flag.String("log-level", "info", "debug, info, warn or error")
	version := flag.Bool("version", false, "print the version the agent was built from and exit")
	// -h prints the flags on stdout and exits 0; a bad flag prints them on
	// stderr and exits 2, as aerie and the trainer do.
	flag.CommandLine.Init(os.Args[0], flag.ContinueOnError)
	flag.CommandLine.SetOutput(io.Discard)
	switch err := flag.CommandLine.Parse(os.Args[1:]); {
	case errors.Is(err, flag.ErrHelp):
		flag.CommandLine.SetOutput(os.Stdout)
		flag.Usage()
		return
	case err != nil:
		flag.CommandLine.SetOutput(os.Stderr)
		flag.Usage()
		fmt.Fprintln(os.Stderr, "aerie-edge:", err)
		os.Exit(exitcode.Config)
	}
	if *version {
		fmt.Println("aerie-edge", buildinfo.Read())
		return
	}
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "aerie-edge: unexpected arguments %q (every option is a flag; -h lists them)\n", flag.Args())
		os.Exit(exitcode.Config)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, *configPath, *once, *check, *level)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "aerie-edge:", err)
		os.Exit(exitcode.Of(err))
	}
}

func run(ctx context.Context, configPath string, once, check bool, level string) error {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return exitcode.Wrap(exitcode.Config, fmt.Errorf("-log-level: %w", err))
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))
	data, err := os.ReadFile(configPath)
	if err != nil {
		return exitcode.Wrap(exitcode.Config, err)
	}
	cfg, err := config.Parse(configPath, data)
	if err != nil {
		return exitcode.Wrap(exitcode.Config, err)
	}
	if check {
		// The configuration as the agent will run it: the file's values
		// with every default filled in, in the file's own YAML schema.
		enc := yaml.NewEncoder(os.Stdout)
		enc.SetIndent(2)
		if err := enc.Encode(cfg); err != nil {
			return err
		}
		return enc.Close()
	}
	return agent.Run(ctx, cfg, agent.Options{Log: log, Once: once})
}
