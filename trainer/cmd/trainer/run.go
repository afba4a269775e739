package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/aerie-ml/aerie/internal/arch"
	"github.com/aerie-ml/aerie/internal/exitcode"
	"github.com/aerie-ml/aerie/internal/fmnist"
	"github.com/aerie-ml/aerie/internal/manifest"
	"github.com/aerie-ml/aerie/internal/model"
	"github.com/aerie-ml/aerie/internal/runspec"
	"github.com/aerie-ml/aerie/internal/store"
	"github.com/aerie-ml/aerie/trainer/internal/artifact"
	"github.com/aerie-ml/aerie/trainer/internal/checkpoint"
	"github.com/aerie-ml/aerie/trainer/internal/data"
	"github.com/aerie-ml/aerie/trainer/internal/progress"
	"github.com/aerie-ml/aerie/trainer/internal/sysstat"
	"github.com/aerie-ml/aerie/trainer/internal/train"
)

const usage = `usage: trainer <command> [flags]

commands:
  train   train a model (trainer train -h for flags)
  launch  run a data-parallel job on this machine (trainer launch -h)
  bench-allreduce  time the ring all-reduce between the ranks of the environment
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitcode.Errorf(exitcode.Config, "no command given")
	}
	switch args[0] {
	case "train":
		return runTrain(ctx, args[1:], stdout, stderr)
	case "launch":
		return runLaunch(ctx, args[1:], stdout, stderr)
	case "bench-allreduce":
		return runBenchAllReduce(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return exitcode.Errorf(exitcode.Config, "unknown command %q", args[0])
}

// trainFlags are the train command's settings: the run declaration's, each
// overridable by a flag.
type trainFlags struct {
	runFile     string
	name        string
	arch        string
	cfg         train.Config
	dataURI     string
	digest      string
	valFraction float64
	output      string
	maxSteps    int64
	gates       runspec.Gates
}

func parseTrainFlags(args []string, stderr io.Writer) (*trainFlags, error) {
	// The flags' defaults are a declaration's (runspec.Default), so the same
	// run trains the same way from flags and from a run file.
	d := runspec.Default()
	m := d.Spec.Model
	f := &trainFlags{gates: d.Spec.Gates}
	fs := flag.NewFlagSet("trainer train", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.runFile, "run", "", "TrainingRun declaration (YAML); flags below override it")
	fs.StringVar(&f.name, "name", "local", "run name (the store prefix models/<name>/)")
	fs.StringVar(&f.arch, "arch", "", "architecture: "+strings.Join(arch.BuiltinNames(), ", ")+" (required without --run)")
	fs.IntVar(&f.cfg.Epochs, "epochs", m.Epochs, "epochs")
	fs.IntVar(&f.cfg.BatchSize, "batch-size", runspec.DefaultBatchPerWorker*d.Spec.Workers.Count, "global batch size across all workers")
	fs.Float64Var(&f.cfg.LearningRate, "lr", m.LearningRate, "peak learning rate (Adam)")
	fs.StringVar(&f.cfg.Schedule, "schedule", m.Schedule, "learning-rate schedule: "+strings.Join(train.Schedules, ", "))
	fs.Int64Var(&f.cfg.Seed, "seed", m.Seed, "seed of the split, shuffling, augmentation, dropout and initialization")
	fs.BoolVar(&f.cfg.Dropout, "dropout", m.Dropout, "train with dropout")
	fs.Float64Var(&f.cfg.LabelSmoothing, "label-smoothing", 0, "label smoothing of the training loss")
	fs.IntVar(&f.cfg.Patience, "patience", m.EarlyStoppingPatience, "early stopping patience in epochs (0: off)")
	fs.Float64Var(&f.cfg.Augment.RotationDegrees, "rotation", m.Augmentation.RotationDegrees, "random rotation, ± degrees")
	fs.IntVar(&f.cfg.Augment.CropPadding, "crop-padding", m.Augmentation.CropPadding, "random crop padding, pixels")
	fs.IntVar(&f.cfg.CheckpointEvery, "checkpoint-every", d.Spec.Checkpoint.EverySteps, "checkpoint every N steps besides every epoch (0: epochs only)")
	fs.StringVar(&f.dataURI, "data", "", "dataset: a directory, file:///dir or a store URI (default: Debian's "+fmnist.DebianDir+")")
	fs.StringVar(&f.digest, "dataset-sha256", "", "dataset digest to verify (fmnist.Digest); empty: not checked")
	fs.Float64Var(&f.valFraction, "val-fraction", d.Spec.Dataset.ValidationFraction, "fraction of the 60k training images held out for validation")
	fs.StringVar(&f.output, "output", "", "store root for checkpoints and the model: a directory or file:///dir (required)")
	fs.Int64Var(&f.maxSteps, "max-steps", 0, "stop after N steps and write nothing but a throughput line (benchmarks)")
	if err := fs.Parse(args); err != nil {
		return nil, exitcode.Wrap(exitcode.Config, err)
	}
	if fs.NArg() > 0 {
		return nil, exitcode.Errorf(exitcode.Config, "unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	if f.runFile != "" {
		b, err := readRunFile(f.runFile)
		if err != nil {
			return nil, exitcode.Wrap(exitcode.Config, err)
		}
		r, err := runspec.Parse(f.runFile, b)
		if err != nil {
			return nil, exitcode.Wrap(exitcode.Config, err)
		}
		m := r.Spec.Model
		// The declaration sets what no flag overrides.
		for name, apply := range map[string]func(){
			"name":             func() { f.name = r.Metadata.Name },
			"arch":             func() { f.arch = m.Architecture },
			"epochs":           func() { f.cfg.Epochs = m.Epochs },
			"batch-size":       func() { f.cfg.BatchSize = m.BatchSize },
			"lr":               func() { f.cfg.LearningRate = m.LearningRate },
			"schedule":         func() { f.cfg.Schedule = m.Schedule },
			"seed":             func() { f.cfg.Seed = m.Seed },
			"dropout":          func() { f.cfg.Dropout = m.Dropout },
			"patience":         func() { f.cfg.Patience = m.EarlyStoppingPatience },
			"rotation":         func() { f.cfg.Augment.RotationDegrees = m.Augmentation.RotationDegrees },
			"crop-padding":     func() { f.cfg.Augment.CropPadding = m.Augmentation.CropPadding },
			"checkpoint-every": func() { f.cfg.CheckpointEvery = r.Spec.Checkpoint.EverySteps },
			"data":             func() { f.dataURI = r.Spec.Dataset.URI },
			"dataset-sha256":   func() { f.digest = r.Spec.Dataset.SHA256 },
			"val-fraction":     func() { f.valFraction = r.Spec.Dataset.ValidationFraction },
			"output":           func() { f.output = r.Spec.Output.URI },
		} {
			if !set[name] {
				apply()
			}
		}
		f.gates = r.Spec.Gates
	}
	if f.arch == "" {
		return nil, exitcode.Errorf(exitcode.Config, "--arch (or spec.model.architecture) is required")
	}
	spec, err := arch.Builtin(f.arch)
	if err != nil {
		return nil, exitcode.Wrap(exitcode.Config, err)
	}
	// Planned on Fashion-MNIST's shape until the trainer reads the
	// dataset's manifest first.
	if f.cfg.Plan, err = spec.Plan(arch.Input{H: 28, W: 28, C: 1}, fmnist.NumClasses); err != nil {
		return nil, exitcode.Wrap(exitcode.Config, err)
	}
	if f.output == "" && f.maxSteps == 0 {
		return nil, exitcode.Errorf(exitcode.Config, "--output (or spec.output.uri) is required")
	}
	return f, f.cfg.Validate()
}

// readRunFile reads at most one byte more than runspec.MaxBytes, so that
// Parse refuses an oversized declaration without it being read whole. The
// file is a ConfigMap mount, whose files are symlinks by design.
func readRunFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	return io.ReadAll(io.LimitReader(f, runspec.MaxBytes+1))
}

// loadData loads what --data names: a dataset that ingest wrote, or the
// four IDX files (Debian's Fashion-MNIST when --data is empty).
func loadData(ctx context.Context, f *trainFlags) (*data.Sets, string, error) {
	if f.dataURI != "" {
		s, err := openStore(ctx, f.dataURI)
		if err != nil {
			return nil, "", err
		}
		defer s.Close()
		if ok, err := data.IsDataset(ctx, s); err != nil {
			return nil, "", fmt.Errorf("dataset %s: %w", f.dataURI, err)
		} else if ok {
			sets, err := data.LoadDataset(ctx, s, f.digest, f.valFraction, f.cfg.Seed)
			return sets, s.URI(""), err
		}
	}
	fsys, where, err := data.Open(ctx, f.dataURI, data.OpenStore)
	if err != nil {
		return nil, "", err
	}
	sets, err := data.Load(fsys, where, f.digest, f.valFraction, f.cfg.Seed)
	return sets, where, err
}

// openStore opens the store at uri (gs://bucket[/prefix], file:///dir or a
// directory): the output, or a dataset.
func openStore(ctx context.Context, uri string) (store.Store, error) {
	if !strings.Contains(uri, "://") {
		abs, err := filepath.Abs(uri)
		if err != nil {
			return nil, exitcode.Wrap(exitcode.Config, err)
		}
		uri = "file://" + abs
	}
	return store.Open(ctx, uri)
}

func runTrain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f, err := parseTrainFlags(args, stderr)
	if err != nil {
		return err
	}
	// On a terminal, one bar with the log lines printed above it; in a pod
	// or under a launcher, JSON lines.
	var term *progress.Terminal
	var logger *slog.Logger
	if progress.IsTerminal(stderr) {
		term = progress.NewTerminal(stderr, 0)
		logger = slog.New(slog.NewTextHandler(term.Writer(), nil))
	} else {
		logger = slog.New(slog.NewJSONHandler(stderr, nil))
	}
	comm, ctx, logger, err := joinJob(ctx, f.name, &f.cfg, logger)
	if err != nil {
		return err
	}
	sets, where, err := loadData(ctx, f)
	if err != nil {
		return err
	}
	logger.Info("dataset", "source", where, "digest", sets.Digest, "train", sets.Train.Len(), "validation", sets.Val.Len(), "test", sets.Test.Len())

	opts := train.Options{Log: logger, MaxSteps: f.maxSteps, Reducer: comm}
	var out store.Store
	if f.maxSteps == 0 {
		if out, err = openStore(ctx, f.output); err != nil {
			return err
		}
		defer out.Close()
		opts.Checkpoints = &checkpoint.Checkpoints{Store: checkpoint.FromStore(out), Run: f.name, Log: logger}
	}
	steps := int64(data.StepsPerEpoch(sets.Train.Len(), f.cfg.BatchSize))
	total := steps * int64(f.cfg.Epochs)
	if f.maxSteps > 0 {
		total = min(total, f.maxSteps)
	}
	pcfg := progress.Config{Total: total, Epochs: f.cfg.Epochs, StepsPerEpoch: steps, BatchSize: f.cfg.BatchSize}
	if os.Getenv(progress.EnvLauncherBar) != "" {
		pcfg.LogInterval = progress.LauncherLogInterval
	}
	rep := progress.New(term, logger, pcfg)
	defer rep.Close()
	var epochLoss, epochAcc, epochN float64
	opts.OnStep = func(s train.Step) {
		if s.StepInEpoch == 1 {
			epochLoss, epochAcc, epochN = 0, 0, 0
		}
		n := float64(s.Images)
		epochLoss, epochAcc, epochN = epochLoss+s.Loss*n, epochAcc+s.Accuracy*n, epochN+n
		rep.Step(s.Step, epochLoss/epochN, epochAcc/epochN)
	}
	opts.OnEpoch = rep.Epoch

	meter, err := sysstat.Start()
	if err != nil {
		return err
	}
	res, err := train.Run(ctx, f.cfg, sets, opts)
	if err != nil {
		return peerErr(comm, err)
	}
	usage, err := meter.Stop()
	if err != nil {
		return err
	}
	rep.Close()
	if f.maxSteps > 0 {
		fmt.Fprintf(stdout, "arch=%s batch=%d steps=%d images_per_second=%.1f cpu_utilization=%.2f gomaxprocs=%d peak_rss_mb=%d\n",
			f.cfg.Plan.Name, f.cfg.BatchSize, res.Steps, res.ImagesPerSecond, usage.Utilization, runtime.GOMAXPROCS(0), usage.PeakRSSBytes>>20)
		return peerErr(comm, comm.Close(ctx))
	}
	// Rank 0 alone writes the artifact; the others wait for it in Close.
	if f.cfg.Rank == 0 {
		v, err := writeModel(ctx, out, f, sets, res, usage)
		if err != nil {
			return peerErr(comm, err)
		}
		if v.Existed {
			logger.Warn("model version already written, not overwritten", "uri", v.URI, "manifestDigest", v.ManifestDigest)
		}
		logger.Info("model", "uri", v.URI, "manifestDigest", v.ManifestDigest, "testAccuracy", res.TestAccuracy, "testLoss", res.TestLoss)
		for _, g := range v.Manifest.Gates {
			logger.Info("gate", "gate", g.Name, "passed", g.Passed, "value", g.Value, "comparison", g.Comparison, "threshold", g.Threshold)
		}
	}
	return peerErr(comm, comm.Close(ctx))
}

// writeModel writes the model version (see trainer/internal/artifact): the
// weights, metrics, pictures and model card, then manifest.json last.
func writeModel(ctx context.Context, out store.Store, f *trainFlags, sets *data.Sets, res *train.Result, usage sysstat.Usage) (*artifact.Version, error) {
	plan := f.cfg.Plan
	var weights bytes.Buffer
	if err := model.Encode(&weights, res.Weights, model.Metadata(plan)); err != nil {
		return nil, err
	}
	return artifact.Write(ctx, out, artifact.Model{
		Run:          f.name,
		Architecture: plan.Name,
		Parameters:   int(plan.NumParams),
		Weights:      weights.Bytes(),
		Dataset:      manifest.Dataset{URI: f.dataURI, Digest: sets.Digest, Files: sets.Files},
		Lineage:      artifact.LineageFromEnv(os.Getenv, f.cfg.WorldSize, res.ResumedFrom),
		Hyperparameters: manifest.Hyperparameters{Epochs: f.cfg.Epochs, BatchSize: f.cfg.BatchSize, LearningRate: f.cfg.LearningRate,
			Schedule: f.cfg.Schedule, Optimizer: "adam", Seed: f.cfg.Seed, RotationDegrees: f.cfg.Augment.RotationDegrees,
			CropPadding: f.cfg.Augment.CropPadding, Dropout: f.cfg.Dropout, LabelSmoothing: f.cfg.LabelSmoothing,
			EarlyStoppingPatience: f.cfg.Patience, ValidationFraction: f.valFraction},
		Metrics: manifest.Metrics{Epochs: res.Epochs, TestLoss: res.TestLoss, TestAccuracy: res.TestAccuracy,
			ClassAccuracy: res.ClassAccuracy, Confusion: res.Confusion,
			ImagesPerSecond: res.ImagesPerSecond, CPUUtilization: usage.Utilization, PeakRSSBytes: usage.PeakRSSBytes,
			WallSeconds: usage.Wall.Seconds()},
		Gates: manifest.Gates{MinTestAccuracy: f.gates.MinTestAccuracy, MinClassAccuracy: f.gates.MinClassAccuracy,
			MaxModelBytes: f.gates.MaxModelBytes},
	})
}
