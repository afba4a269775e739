package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/aerie-ml/aerie/internal/arch"
	"github.com/aerie-ml/aerie/internal/buildinfo"
	"github.com/aerie-ml/aerie/internal/exitcode"
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
  version  print the version the trainer was built from (also --version)
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	err := dispatch(ctx, args, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil // -h printed the command's flags: asked for, so not an error
	}
	return err
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
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
	case "--version", "-version", "version":
		_, err := fmt.Fprintln(stdout, "trainer", buildinfo.Read())
		return err
	}
	fmt.Fprint(stderr, usage)
	return exitcode.Errorf(exitcode.Config, "unknown command %q", args[0])
}

// parseFlags parses args into fs as aerie's commands do: -h prints the
// flags on stdout and returns flag.ErrHelp, which run turns into exit 0; a
// bad flag prints them on stderr and is a usage error (exit 2).
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(stdout)
		fs.Usage()
		return err
	case err != nil:
		fs.SetOutput(stderr)
		fs.Usage()
		return exitcode.Wrap(exitcode.Config, err)
	}
	fs.SetOutput(stderr)
	return nil
}

// trainFlags are the train command's settings: the run declaration's, each
// overridable by a flag.
type trainFlags struct {
	runFile     string
	name        string
	arch        string
	spec        *arch.Spec // planned on the dataset's shape and classes
	inline      *arch.Spec // the run's architecture, when it holds it
	cfg         train.Config
	dataURI     string
	digest      string
	cacheDir    string
	valFraction float64
	output      string
	maxSteps    int64
	gates       runspec.Gates
}

func parseTrainFlags(args []string, stdout, stderr io.Writer) (*trainFlags, error) {
	// The flags' defaults are a declaration's (runspec.Default), so the same
	// run trains the same way from flags and from a run file.
	d := runspec.Default()
	m := d.Spec.Model
	f := &trainFlags{gates: d.Spec.Gates}
	fs := flag.NewFlagSet("trainer train", flag.ContinueOnError)
	fs.StringVar(&f.runFile, "run", "", "TrainingRun declaration (YAML); flags below override it")
	fs.StringVar(&f.name, "name", "local", "run name (the store prefix models/<name>/)")
	fs.StringVar(&f.arch, "arch", "", "architecture: a models file (path/<name>.yaml) or a built-in name: "+strings.Join(arch.BuiltinNames(), ", ")+" (required without --run)")
	fs.IntVar(&f.cfg.Epochs, "epochs", m.Epochs, "epochs")
	fs.IntVar(&f.cfg.BatchSize, "batch-size", runspec.DefaultBatchPerWorker*d.Spec.Workers.Count, "global batch size across all workers")
	fs.Float64Var(&f.cfg.LearningRate, "lr", m.LearningRate, "peak learning rate (Adam)")
	fs.StringVar(&f.cfg.Schedule, "schedule", m.Schedule, "learning-rate schedule: "+strings.Join(runspec.Schedules, ", "))
	fs.Int64Var(&f.cfg.Seed, "seed", m.Seed, "seed of the split, shuffling, augmentation, dropout and initialization")
	fs.BoolVar(&f.cfg.Dropout, "dropout", m.Dropout, "train with dropout")
	fs.IntVar(&f.cfg.GhostBatch, "ghost-batch", m.GhostBatch, "images per batch-norm statistics group; the global batch must be whole ghost batches")
	fs.Float64Var(&f.cfg.LabelSmoothing, "label-smoothing", 0, "label smoothing of the training loss")
	fs.IntVar(&f.cfg.Patience, "patience", m.EarlyStoppingPatience, "early stopping patience in epochs (0: off)")
	fs.Float64Var(&f.cfg.Augment.RotationDegrees, "rotation", m.Augmentation.RotationDegrees, "random rotation, ± degrees")
	fs.IntVar(&f.cfg.Augment.CropPadding, "crop-padding", m.Augmentation.CropPadding, "random crop padding, pixels")
	fs.BoolVar(&f.cfg.Augment.HorizontalFlip, "flip", m.Augmentation.HorizontalFlip, "random horizontal flip")
	fs.Float64Var(&f.cfg.Augment.Brightness, "brightness", m.Augmentation.Brightness, "random brightness shift, ± fraction of the range")
	fs.Float64Var(&f.cfg.Augment.Contrast, "contrast", m.Augmentation.Contrast, "random contrast factor, 1 ± this")
	fs.Float64Var(&f.cfg.Augment.Erasing, "erasing", m.Augmentation.Erasing, "probability of random erasing")
	fs.IntVar(&f.cfg.CheckpointEvery, "checkpoint-every", d.Spec.Checkpoint.EverySteps, "checkpoint every N steps besides every epoch (0: epochs only)")
	fs.StringVar(&f.dataURI, "data", "", "dataset that ingest wrote: its URI (gs://…/datasets/<name>/<digest>/, file:///…) or directory (required without --run)")
	fs.StringVar(&f.digest, "dataset-sha256", "", "the dataset's digest, which ingest printed (required without --run)")
	fs.StringVar(&f.cacheDir, "cache-dir", "", "directory for the dataset's verified shards (default: a temporary one)")
	fs.Float64Var(&f.valFraction, "val-fraction", d.Spec.Dataset.ValidationFraction, "fraction of the train split held out for validation")
	fs.StringVar(&f.output, "output", "", "store root for checkpoints and the model: a directory or file:///dir (required)")
	fs.Int64Var(&f.maxSteps, "max-steps", 0, "stop after N steps and write nothing but a throughput line (benchmarks)")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return nil, err
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
			"arch":             func() { f.arch, f.inline = m.Architecture.Name, m.Architecture.Spec },
			"epochs":           func() { f.cfg.Epochs = m.Epochs },
			"batch-size":       func() { f.cfg.BatchSize = m.BatchSize },
			"lr":               func() { f.cfg.LearningRate = m.LearningRate },
			"schedule":         func() { f.cfg.Schedule = m.Schedule },
			"seed":             func() { f.cfg.Seed = m.Seed },
			"dropout":          func() { f.cfg.Dropout = m.Dropout },
			"ghost-batch":      func() { f.cfg.GhostBatch = m.GhostBatch },
			"patience":         func() { f.cfg.Patience = m.EarlyStoppingPatience },
			"rotation":         func() { f.cfg.Augment.RotationDegrees = m.Augmentation.RotationDegrees },
			"crop-padding":     func() { f.cfg.Augment.CropPadding = m.Augmentation.CropPadding },
			"flip":             func() { f.cfg.Augment.HorizontalFlip = m.Augmentation.HorizontalFlip },
			"brightness":       func() { f.cfg.Augment.Brightness = m.Augmentation.Brightness },
			"contrast":         func() { f.cfg.Augment.Contrast = m.Augmentation.Contrast },
			"erasing":          func() { f.cfg.Augment.Erasing = m.Augmentation.Erasing },
			"checkpoint-every": func() { f.cfg.CheckpointEvery = r.Spec.Checkpoint.EverySteps },
			"data":             func() { f.dataURI = r.Spec.Dataset.URI },
			"dataset-sha256":   func() { f.digest = r.Spec.Dataset.SHA256 },
			"val-fraction":     func() { f.valFraction = r.Spec.Dataset.ValidationFraction },
			"output":           func() { f.output = r.TeamStore("") },
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
	if err := runspec.Ranges.Validation.Check("--val-fraction", f.valFraction); err != nil {
		return nil, exitcode.Errorf(exitcode.Config, "%w", err)
	}
	if f.cfg.Patience > 0 && f.valFraction == 0 {
		return nil, exitcode.Errorf(exitcode.Config, "--patience %d needs a validation set to watch: set --val-fraction above 0", f.cfg.Patience)
	}
	f.spec = f.inline
	if f.spec == nil {
		var err error
		if f.spec, err = arch.Open(f.arch); err != nil {
			return nil, exitcode.Wrap(exitcode.Config, err)
		}
	}
	if f.dataURI == "" || f.digest == "" {
		return nil, exitcode.Errorf(exitcode.Config, "--data and --dataset-sha256 (or spec.dataset) are required: ingest the images first (aerie dataset ingest), which prints both")
	}
	if f.output == "" && f.maxSteps == 0 {
		return nil, exitcode.Errorf(exitcode.Config, "--output (or spec.output.uri) is required")
	}
	return f, nil
}

// plan plans the architecture on src's image shape and classes, has src
// normalize by the plan, and checks the training config (joinJob checks it
// again in the job).
func (f *trainFlags) plan(src *data.Source) error {
	sh := src.Shape()
	p, err := f.spec.Plan(arch.Input{H: sh.Height, W: sh.Width, C: sh.Channels}, len(src.Classes()))
	if err != nil {
		return exitcode.Wrap(exitcode.Config, fmt.Errorf("dataset %s: %w", f.dataURI, err))
	}
	f.cfg.Plan = p
	src.Normalization = p.Normalization
	return f.cfg.Validate()
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

// openData opens the dataset --data names, checked against
// --dataset-sha256, for streaming.
func openData(ctx context.Context, f *trainFlags) (*data.Source, error) {
	s, err := openStore(ctx, f.dataURI)
	if err != nil {
		return nil, err
	}
	src, err := data.Open(ctx, s, f.digest, data.Config{ValFraction: f.valFraction, Seed: f.cfg.Seed, CacheDir: f.cacheDir})
	if err != nil {
		s.Close()
		return nil, err
	}
	return src, nil
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
	f, err := parseTrainFlags(args, stdout, stderr)
	if err != nil {
		return err
	}
	if p, ok := trainGCPercent(os.Getenv); ok {
		debug.SetGCPercent(p)
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
	// The architecture is planned on the dataset's manifest before the job
	// is joined, which checks the config against the world size.
	src, err := openData(ctx, f)
	if err != nil {
		return err
	}
	defer src.Close()
	if err := f.plan(src); err != nil {
		return err
	}
	comm, ctx, logger, err := joinJob(ctx, f.name, &f.cfg, logger)
	if err != nil {
		return err
	}
	logger.Info("dataset", "source", f.dataURI, "digest", src.Dataset.Digest, "shape", src.Shape().String(), "classes", len(src.Classes()),
		"train", src.TrainLen(), "validation", src.ValLen(), "test", src.TestLen())

	opts := train.Options{Log: logger, MaxSteps: f.maxSteps, Reducer: comm}
	var out store.Store
	if f.maxSteps == 0 {
		if out, err = openStore(ctx, f.output); err != nil {
			return err
		}
		defer out.Close()
		opts.Checkpoints = &checkpoint.Checkpoints{Store: checkpoint.FromStore(out), Run: f.name, Log: logger}
	}
	steps := int64(src.StepsPerEpoch(f.cfg.BatchSize))
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
	// The throughput window starts after the first step, which compiles
	// the graphs: the benchmark line's utilization is over it too.
	var window *sysstat.Meter
	onStep := opts.OnStep
	opts.OnStep = func(s train.Step) {
		onStep(s)
		if window == nil {
			window, _ = sysstat.Start() // nil on error: the whole run's
		}
	}
	res, err := train.Run(ctx, f.cfg, src, opts)
	if err != nil {
		return peerErr(comm, err)
	}
	usage, err := meter.Stop()
	if err != nil {
		return err
	}
	rep.Close()
	if f.maxSteps > 0 {
		steps := usage
		if window != nil {
			if steps, err = window.Stop(); err != nil {
				return err
			}
		}
		ph, n := res.Phases, float64(max(res.Phases.Steps, 1))
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 / n }
		fmt.Fprintf(stdout, "arch=%s batch=%d steps=%d images_per_second=%.1f cpu_utilization=%.2f gomaxprocs=%d peak_rss_mb=%d gradients_ms=%.1f allreduce_ms=%.2f update_ms=%.2f\n",
			f.cfg.Plan.Name, f.cfg.BatchSize, res.Steps, res.ImagesPerSecond, steps.Utilization, runtime.GOMAXPROCS(0), usage.PeakRSSBytes>>20,
			ms(ph.Gradients), ms(ph.AllReduce), ms(ph.Update))
		return peerErr(comm, comm.Close(ctx))
	}
	// Rank 0 alone writes the artifact; the others wait for it in Close.
	if f.cfg.Rank == 0 {
		v, err := writeModel(ctx, out, f, src, res, usage)
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
func writeModel(ctx context.Context, out store.Store, f *trainFlags, src *data.Source, res *train.Result, usage sysstat.Usage) (*artifact.Version, error) {
	plan := f.cfg.Plan
	spec, err := arch.Marshal(f.spec)
	if err != nil {
		return nil, exitcode.Wrap(exitcode.Internal, err)
	}
	var weights bytes.Buffer
	if err := model.Encode(&weights, res.Weights, model.Metadata(plan)); err != nil {
		return nil, err
	}
	set, err := packSelfTest(ctx, src, f.cfg.Seed)
	if err != nil {
		return nil, err
	}
	return artifact.Write(ctx, out, artifact.Model{
		Run:        f.name,
		Spec:       string(spec),
		Parameters: int(plan.NumParams),
		Weights:    weights.Bytes(),
		Classes:    src.Classes(),
		Input: manifest.Input{Height: plan.Input.H, Width: plan.Input.W, Channels: plan.Input.C,
			Mean: plan.Normalization.Mean, Std: plan.Normalization.Std},
		SelfTest: set,
		Dataset:  manifest.Dataset{URI: f.dataURI, Digest: src.Dataset.Digest, Files: src.Files},
		Lineage:  artifact.LineageFromEnv(os.Getenv, f.cfg.WorldSize, res.ResumedFrom),
		Hyperparameters: manifest.Hyperparameters{Epochs: f.cfg.Epochs, BatchSize: f.cfg.BatchSize, GhostBatch: f.cfg.GhostBatch, LearningRate: f.cfg.LearningRate,
			Schedule: f.cfg.Schedule, Optimizer: "adam", Seed: f.cfg.Seed, RotationDegrees: f.cfg.Augment.RotationDegrees,
			CropPadding: f.cfg.Augment.CropPadding, HorizontalFlip: f.cfg.Augment.HorizontalFlip, Brightness: f.cfg.Augment.Brightness,
			Contrast: f.cfg.Augment.Contrast, Erasing: f.cfg.Augment.Erasing, Dropout: f.cfg.Dropout, LabelSmoothing: f.cfg.LabelSmoothing,
			EarlyStoppingPatience: f.cfg.Patience, ValidationFraction: f.valFraction},
		Metrics: manifest.Metrics{Epochs: res.Epochs, TestLoss: res.TestLoss, TestAccuracy: res.TestAccuracy,
			ClassAccuracy: res.ClassAccuracy, Confusion: res.Confusion,
			ImagesPerSecond: res.ImagesPerSecond, CPUUtilization: usage.Utilization, PeakRSSBytes: usage.PeakRSSBytes,
			WallSeconds: usage.Wall.Seconds()},
		Gates: manifest.Gates{MinTestAccuracy: f.gates.MinTestAccuracy, MinClassAccuracy: f.gates.MinClassAccuracy,
			MaxModelBytes: f.gates.MaxModelBytes},
	})
}

// trainGCPercent is the trainer's garbage-collection target when neither
// GOGC nor GOMEMLIMIT is set. A step allocates about the same every time
// and frees it, so collecting at half the live heap's growth instead of
// Go's default of as much again lowers the peak RSS (cnn, 1 process × 2
// cores: 270 → 220 MB) at no measurable cost. With GOMEMLIMIT (a pod's,
// from its memory request) the runtime collects toward the limit.
func trainGCPercent(getenv func(string) string) (int, bool) {
	if getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" {
		return 0, false
	}
	return 50, true
}
