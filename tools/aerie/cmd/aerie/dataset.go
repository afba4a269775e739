package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/aerie-ml/aerie/internal/dataset"
	"github.com/aerie-ml/aerie/internal/exitcode"
	"github.com/aerie-ml/aerie/internal/repofile"
	"github.com/aerie-ml/aerie/internal/store"
	"github.com/aerie-ml/aerie/tools/aerie/internal/ingest"
	"github.com/aerie-ml/aerie/tools/aerie/internal/jobs"
	"github.com/aerie-ml/aerie/tools/aerie/internal/shapes"
)

func datasetCmd(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "dataset",
		Short: "Ingest labelled images into a dataset in a store, and show one",
	}
	group(c)
	c.AddCommand(ingestCmd(e), datasetShowCmd(e), generateCmd(e))
	return c
}

func generateCmd(e *env) *cobra.Command {
	var o shapes.Options
	c := &cobra.Command{
		Use:   "generate shapes DIR",
		Short: "Write a colour ImageFolder of coloured shapes (6 classes, PNG and JPEG, 64–96 pixels) into a new directory",
		Long: `Generate writes DIR/{train,test}/<class>/*.{png,jpg}: coloured shapes on a
noisy background, in classes that take both colour and shape to tell apart
(` + strings.Join(shapeNames(), ", ") + `).
The same --seed writes the same bytes. Ingest it with --size 64x64 --channels 3.`,
		Example: "  aerie dataset generate shapes ./shapes\n  aerie dataset ingest --from ./shapes --name shapes --size 64x64 --channels 3 --to file://$PWD/store",
		Args:    exactArgs("the generator (shapes)", "DIR"),
		RunE: e.do(func(ctx context.Context, args []string) error {
			if args[0] != "shapes" {
				return exitcode.Errorf(exitcode.Config, "generator %q: the one generator is shapes", args[0])
			}
			n, err := shapes.Generate(args[1], o)
			if err != nil {
				return exitcode.Wrap(exitcode.Config, err)
			}
			fmt.Fprintf(e.stdout, "# %d images in %s, %d classes.\n", n, args[1], len(shapes.Classes))
			return nil
		}),
	}
	fl := c.Flags()
	fl.Uint64Var(&o.Seed, "seed", 1, "`seed` of the images")
	fl.IntVar(&o.TrainPerClass, "train", shapes.DefaultTrainPerClass, "training images per class")
	fl.IntVar(&o.TestPerClass, "test", shapes.DefaultTestPerClass, "test images per class")
	return c
}

func shapeNames() []string {
	var names []string
	for _, c := range shapes.Classes {
		names = append(names, c.Name)
	}
	return names
}

func datasetShowCmd(e *env) *cobra.Command {
	var out *outputFormat
	c := &cobra.Command{
		Use:   "show (RUN | URI)",
		Short: "Show a dataset's shape, classes and splits: a run's (spec.dataset), or the one at URI",
		Long: `Show reads a dataset's dataset.json and checks its digest: the run's
spec.dataset.uri against spec.dataset.sha256 (its committed copy under
apps/jobs/datasets/ when there is one, as aerie run check reads it), or, for
a URI (…/datasets/<name>/<digest>/), against the digest the URI names.`,
		Example:           "  aerie dataset show fmnist-cnn\n  aerie dataset show file:///var/lib/aerie/datasets/fashion-mnist/<digest>/ -o json",
		Args:              exactArgs("RUN or URI"),
		ValidArgsFunction: e.completeRuns,
		RunE: e.do(func(ctx context.Context, args []string) error {
			var info datasetInfo
			var m *dataset.Manifest
			if uri := args[0]; strings.Contains(uri, "://") {
				s, err := store.Open(ctx, uri)
				if err != nil {
					return err
				}
				defer s.Close()
				d, err := dataset.Open(ctx, s, path.Base(strings.TrimSuffix(uri, "/")))
				if err != nil {
					return err
				}
				info.URI, info.Digest, m = s.URI(""), d.Digest, d.Manifest
			} else {
				spec, err := e.runSpec(uri)
				if err != nil {
					return err
				}
				dir, err := e.inRepo(path.Join("apps", "jobs"))
				if err != nil {
					return err
				}
				if m, err = (&jobs.Tree{Dir: dir}).Manifest(ctx, spec.Spec.Dataset); err != nil {
					return err
				}
				info.URI, info.Digest = strings.TrimSuffix(spec.Spec.Dataset.URI, "/"), spec.Spec.Dataset.SHA256
			}
			info.Classes, info.Shape = m.Classes, m.Shape.String()
			for _, sp := range m.Splits {
				info.Splits = append(info.Splits, splitInfo{Name: sp.Name, Samples: sp.Samples, Shards: len(sp.Shards), ClassCounts: sp.ClassCounts})
			}
			return out.print(e.stdout, info, func(w io.Writer) {
				fmt.Fprintf(w, "URI:\t%s\nDigest:\t%s\nShape:\t%s (height x width x channels)\nClasses:\t%d\n\n", info.URI, info.Digest, info.Shape, len(info.Classes))
				fmt.Fprint(w, "CLASS")
				for _, sp := range info.Splits {
					fmt.Fprintf(w, "\t%s", strings.ToUpper(sp.Name))
				}
				fmt.Fprintln(w)
				for i, cl := range info.Classes {
					fmt.Fprint(w, cl)
					for _, sp := range info.Splits {
						fmt.Fprintf(w, "\t%d", at(sp.ClassCounts, i))
					}
					fmt.Fprintln(w)
				}
				fmt.Fprint(w, "total")
				for _, sp := range info.Splits {
					fmt.Fprintf(w, "\t%d (%d shards)", sp.Samples, sp.Shards)
				}
				fmt.Fprintln(w)
			})
		}),
	}
	out = addOutput(c)
	return c
}

type datasetInfo struct {
	URI     string      `json:"uri"`
	Digest  string      `json:"digest"`
	Shape   string      `json:"shape"`
	Classes []string    `json:"classes"`
	Splits  []splitInfo `json:"splits"`
}

type splitInfo struct {
	Name        string  `json:"name"`
	Samples     int64   `json:"samples"`
	Shards      int     `json:"shards"`
	ClassCounts []int64 `json:"classCounts"`
}

func at(v []int64, i int) int64 {
	if i < len(v) {
		return v[i]
	}
	return 0
}

type ingestFlags struct {
	from, to, size, classes, classesFile string
	manifestCopy                         string // datasets directory of a repo
	opts                                 ingest.Options
}

func ingestCmd(e *env) *cobra.Command {
	var f ingestFlags
	c := &cobra.Command{
		Use:   "ingest --to URI [--from DIR]",
		Short: "Turn IDX files or an ImageFolder tree into a sharded dataset in a store",
		Long: `Ingest turns labelled images into an aerie dataset in a store, under
datasets/<name>/<digest>/, and prints the dataset URI and digest to paste
into a run declaration (spec.dataset.uri and spec.dataset.sha256).

--from is a directory of IDX files (train-images-idx3-ubyte[.gz] and its
three siblings) or an ImageFolder tree: <root>/{train,test}/<class>/*.png|jpg,
or <root>/<class>/... with --test-fraction of each class held out, seeded.
Re-ingesting the same data is a no-op, and finishes an interrupted ingest.`,
		Example: `  aerie dataset ingest --to gs://aerie-data        # Fashion-MNIST from Debian's dataset-fashion-mnist
  aerie dataset ingest --from ./mnist --name mnist --classes 0,1,2,3,4,5,6,7,8,9 --to file:///var/lib/aerie
  aerie dataset ingest --from ./flowers --name flowers --size 64x64 --channels 3 --to gs://aerie-data`,
		Args: cobra.NoArgs,
		RunE: e.do(func(ctx context.Context, _ []string) error {
			return runIngest(ctx, e.stdout, e.logger(), f)
		}),
	}
	fl := c.Flags()
	fl.StringVar(&f.from, "from", ingest.DebianDir, "`directory`: IDX files or an ImageFolder tree (Debian's dataset-fashion-mnist by default)")
	fl.StringVar(&f.to, "to", "", "store `URI`: gs://bucket[/prefix] or file:///absolute/path (required)")
	fl.StringVar(&f.opts.Name, "name", "fashion-mnist", "dataset `name` in the store layout")
	fl.StringVar(&f.opts.Want, "sha256", "", "expected dataset `digest`; fail, storing nothing, if the dataset hashes otherwise")
	fl.StringVar(&f.size, "size", "", "resize every image to `HxW` (shorter side, then centre crop); default: keep the sources' size")
	fl.IntVar(&f.opts.Channels, "channels", 0, "`1` (grey) or 3 (RGB); default: the sources', which must agree")
	fl.StringVar(&f.classes, "classes", "", "comma-separated class `names` of IDX labels 0, 1, ... (default: Fashion-MNIST's)")
	fl.StringVar(&f.classesFile, "classes-file", "", "`file` of IDX class names, one a line")
	fl.Float64Var(&f.opts.TestFraction, "test-fraction", 0.1, "`fraction` of each class held out as test, for an ImageFolder tree without train/ and test/")
	fl.Uint64Var(&f.opts.Seed, "seed", 1, "`seed` of the sample shuffle and the test split")
	fl.Int64Var(&f.opts.ShardBytes, "shard-bytes", 0, "target shard `size` in bytes (default 64 MiB)")
	fl.Int64Var(&f.opts.MaxImageBytes, "max-image-bytes", ingest.DefaultMaxImageBytes, "refuse source images over `n` bytes")
	fl.StringVar(&f.manifestCopy, "manifest-copy", "", "also write the manifest's committed copy under this datasets `directory` (apps/jobs/datasets), as <name>/<digest>.json")
	fl.StringVar(&f.opts.WorkDir, "work-dir", "", "`directory` for the staging copy of the dataset (default: $TMPDIR)")
	c.MarkFlagRequired("to")
	c.MarkFlagDirname("from")
	c.MarkFlagDirname("work-dir")
	c.MarkFlagDirname("manifest-copy")
	c.MarkFlagFilename("classes-file")
	return c
}

// parseSize parses "HxW".
func parseSize(s string) (h, w int, err error) {
	hs, ws, ok := strings.Cut(s, "x")
	if ok {
		h, err = strconv.Atoi(hs)
		if err == nil {
			w, err = strconv.Atoi(ws)
		}
	}
	if !ok || err != nil || h < 1 || w < 1 {
		return 0, 0, exitcode.Errorf(exitcode.Config, "--size %q: want HxW, e.g. 32x32", s)
	}
	return h, w, nil
}

func runIngest(ctx context.Context, stdout io.Writer, log *slog.Logger, f ingestFlags) error {
	if fi, err := os.Stat(f.from); err != nil {
		return exitcode.Wrap(exitcode.Config, fmt.Errorf("--from: %w (install Debian's dataset-fashion-mnist or pass a directory of IDX files or images)", err))
	} else if !fi.IsDir() {
		return exitcode.Errorf(exitcode.Config, "--from: %s is not a directory", f.from)
	}
	o := f.opts
	if f.size != "" {
		var err error
		if o.Height, o.Width, err = parseSize(f.size); err != nil {
			return err
		}
	}
	switch {
	case f.classes != "" && f.classesFile != "":
		return exitcode.Errorf(exitcode.Config, "--classes and --classes-file: pass one")
	case f.classes != "":
		o.Classes = strings.Split(f.classes, ",")
	case f.classesFile != "":
		b, err := readClassesFile(f.classesFile)
		if err != nil {
			return exitcode.Wrap(exitcode.Config, fmt.Errorf("--classes-file: %w", err))
		}
		o.Classes = b
	}
	if ingest.IsIDX(f.from) {
		if len(o.Classes) == 0 && o.Name != "fashion-mnist" {
			return exitcode.Errorf(exitcode.Config, "%s holds IDX files, which carry no class names: pass --classes or --classes-file (Fashion-MNIST's are the default only for --name fashion-mnist)", f.from)
		}
	} else if len(o.Classes) > 0 {
		return exitcode.Errorf(exitcode.Config, "--classes: an ImageFolder tree's classes are its directory names")
	}
	s, err := store.Open(ctx, f.to)
	if err != nil {
		return err
	}
	defer s.Close()
	res, err := ingest.Dataset(ctx, log, s, f.from, o)
	if err != nil {
		return err
	}
	stored := 0
	for _, f := range res.Files {
		if !f.Present {
			stored++
		}
	}
	fmt.Fprintf(stdout, "# %s from %s: %d files stored, %d already present.\n", o.Name, f.from, stored, len(res.Files)-stored)
	if f.manifestCopy != "" {
		path, err := writeManifestCopy(f.manifestCopy, o.Name, res)
		if err != nil {
			return exitcode.Wrap(exitcode.Config, fmt.Errorf("--manifest-copy: %w", err))
		}
		fmt.Fprintf(stdout, "# Commit the manifest's copy: %s\n", path)
	}
	fmt.Fprintf(stdout, "# Paste into the run declaration:\nspec:\n  dataset:\n    uri: %s\n    sha256: %s\n", res.URI, res.Digest)
	return nil
}

// writeManifestCopy writes the committed copy of res's manifest that
// `aerie run check` reads, atomically and only inside dir.
func writeManifestCopy(dir, name string, res *ingest.Result) (string, error) {
	b, err := res.Manifest.Encode()
	if err != nil {
		return "", err
	}
	if _, err := dataset.Check(b, res.Digest); err != nil {
		return "", err
	}
	t, err := repofile.Open(dir)
	if err != nil {
		return "", err
	}
	defer t.Close()
	rel := dataset.CopyPath(name, res.Digest)
	if err := t.MkdirAll(filepath.Dir(rel)); err != nil {
		return "", err
	}
	if err := t.WriteFile(rel, b); err != nil {
		return "", err
	}
	return filepath.Join(dir, rel), nil
}

// readClassesFile reads one class name a line, ignoring a final newline.
func readClassesFile(path string) ([]string, error) {
	t, err := repofile.Open(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	defer t.Close()
	b, err := t.ReadFile(filepath.Base(path), 1<<20)
	if err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimSuffix(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n"), "\n"), nil
}
