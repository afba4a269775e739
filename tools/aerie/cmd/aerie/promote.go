package main

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/aymanbagabas/go-udiff"

	"github.com/spf13/cobra"

	"github.com/aerie-ml/aerie/internal/exitcode"
	"github.com/aerie-ml/aerie/internal/manifest"
	"github.com/aerie-ml/aerie/internal/store"
	"github.com/aerie-ml/aerie/tools/aerie/internal/promote"
	"github.com/aerie-ml/aerie/tools/aerie/internal/registry"
)

func promoteCmd(e *env) *cobra.Command {
	var opts promote.Options
	var signKey, description string
	c := &cobra.Command{
		Use:   "promote --run RUN --fleet FLEET (--version V | --version newest | --model URI) [--canary PERCENT] [--dry-run]",
		Short: "Gate a trained model version and pin it for a fleet",
		Long: `Promote finds the version under the run's spec.output.uri, checks the gates
its manifest records (the run's when it trained), its lineage (git commit,
image and dataset digests) and that it is in a gs:// store (both waived by
--local-fleet), self-tests the weights on the version's self-test set and, if every gate
passes, rewrites fleets/<fleet>.yaml (comments kept) and prints a pull
request description. A failed gate exits 1 with a report of every gate and
its margin.

--version names the version (aerie model list RUN lists them); "newest"
takes the newest and says which. --dry-run prints the gate table and the
pin file's diff, and changes nothing.`,
		Example: `  aerie promote --run fmnist-cnn --fleet quadcopters --version 0123456789abcdef --dry-run
  aerie promote --run fmnist-cnn --fleet quadcopters --version 0123456789abcdef --canary 10
  aerie promote --run quick --fleet demo --version newest --store file:///var/lib/aerie --local-fleet`,
		Args: cobra.NoArgs,
		RunE: e.do(func(ctx context.Context, _ []string) error {
			if opts.CanaryPercent < 0 || opts.CanaryPercent > 100 {
				return exitcode.Errorf(exitcode.Config, "--canary %d: want a percent from 0 to 100", opts.CanaryPercent)
			}
			switch {
			case opts.Model == "" && opts.Version == "":
				return exitcode.Errorf(exitcode.Config, "missing --version: name the version to promote (aerie model list %s lists them), or pass --version newest or --model URI", opts.Run)
			case opts.Model != "" && opts.Version != "":
				return exitcode.Errorf(exitcode.Config, "--model and --version: pass one")
			case opts.Version == "newest":
				s, err := e.runStore(ctx, opts.Run, opts.Output)
				if err != nil {
					return err
				}
				versions, err := registry.List(ctx, s, opts.Run)
				s.Close()
				if err != nil {
					return err
				}
				if len(versions) == 0 {
					return fmt.Errorf("run %q has no model version under %s: train it first", opts.Run, s.URI(store.RunPrefix(opts.Run)))
				}
				newest := versions[0].Manifest
				fmt.Fprintf(e.stderr, "aerie promote: the newest version of %s is %s (created %s, test accuracy %.4f)\n",
					opts.Run, newest.Version, newest.CreatedAt.Format(time.RFC3339), newest.Metrics.TestAccuracy)
				opts.Version = newest.Version
			}
			root, err := e.root()
			if err != nil {
				return err
			}
			opts.RepoDir = root
			opts.Logger = e.logger()
			if signKey != "" {
				key, err := readKey(signKey)
				if err != nil {
					return exitcode.Wrap(exitcode.Config, err)
				}
				opts.SignKey = key
			}
			res, err := promote.Promote(ctx, opts)
			var gateErr *promote.GateError
			if errors.As(err, &gateErr) {
				fmt.Fprintf(e.stderr, "aerie promote: %v\n%s", err, manifest.Report(gateErr.Gates))
				return reportedError{err}
			}
			if err != nil {
				return err
			}
			if opts.DryRun {
				fmt.Fprintf(e.stdout, "Gates of %s/%s (all pass):\n%s\n", res.Manifest.Run, res.Manifest.Version, manifest.Report(res.Gates))
				fmt.Fprint(e.stdout, udiff.Unified("a/"+res.PinFile, "b/"+res.PinFile, string(res.PinBefore), string(res.PinAfter)))
				fmt.Fprintln(e.stderr, "aerie promote: dry run: nothing written")
				return nil
			}
			if description == "" {
				_, err = fmt.Fprint(e.stdout, res.Description())
				return err
			}
			return os.WriteFile(description, []byte(res.Description()), 0o644)
		}),
	}
	fl := c.Flags()
	fl.StringVar(&opts.Run, "run", "", "run `name`: apps/jobs/runs/<run>.yaml (required)")
	fl.StringVar(&opts.Fleet, "fleet", "", "fleet `name`: fleets/<fleet>.yaml (required)")
	fl.StringVar(&opts.Model, "model", "", "store `URI` of a version directory to promote, instead of --version")
	fl.StringVar(&opts.Version, "version", "", "`version` of the run to promote (16 hex digits, under --store), or newest")
	fl.StringVar(&opts.Output, "store", "", "store root `URI` to look for versions in (default: the run's spec.output.uri)")
	fl.BoolVar(&opts.LocalFleet, "local-fleet", false, "the fleet's devices are local demo devices: allow file:// URIs and versions without git commit, image and dataset digests")
	fl.IntVar(&opts.CanaryPercent, "canary", 0, "pin as canary for this `percent` of the fleet (0: pin as stable)")
	fl.StringVar(&signKey, "sign-key", "", "PEM ed25519 private key `file` to sign the manifest with")
	fl.StringVar(&description, "description", "", "write the pull request description to this `file` (default: stdout)")
	fl.BoolVar(&opts.DryRun, "dry-run", false, "print the gate table and the pin file's diff; write nothing")
	c.MarkFlagRequired("run")
	c.MarkFlagRequired("fleet")
	c.RegisterFlagCompletionFunc("run", e.completeRuns)
	c.RegisterFlagCompletionFunc("fleet", e.completeFleets)
	c.MarkFlagFilename("sign-key")
	c.MarkFlagFilename("description")
	return c
}

func readKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s: want a PEM PRIVATE KEY (openssl genpkey -algorithm ed25519)", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: %T is not an ed25519 key", path, k)
	}
	return key, nil
}
