// Command promote gates a trained model version and pins it for a fleet.
//
//	promote --run fmnist-cnn --fleet quadcopters [--canary 10] [--version V | --model URI] [--description pr.md] [--local-fleet]
//
// It finds the version under the run's spec.output.uri, checks the gates
// its manifest records (the run's when it trained), its lineage (git
// commit, image and dataset digests) and that it is in a gs:// store (both
// waived by --local-fleet), self-tests the weights on the golden set and,
// if every gate passes, rewrites edge/fleets/<fleet>.yaml (comments kept)
// and prints a pull request description. A failed gate exits 1 with a
// report of every gate and its margin.
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/aerie-ml/aerie/internal/manifest"
	"github.com/aerie-ml/aerie/tools/promote/internal/promote"
)

func main() {
	var opts promote.Options
	var signKey, description string
	flag.StringVar(&opts.RepoDir, "repo", ".", "repository root")
	flag.StringVar(&opts.Run, "run", "", "run name: apps/jobs/runs/<run>.yaml (required)")
	flag.StringVar(&opts.Fleet, "fleet", "", "fleet name: edge/fleets/<fleet>.yaml (required)")
	flag.StringVar(&opts.Model, "model", "", "store URI of the version to promote (default: --version, else the run's newest)")
	flag.StringVar(&opts.Version, "version", "", "version of the run to promote (16 hex digits, under --output)")
	flag.StringVar(&opts.Output, "output", "", "store root to look for versions in (default: the run's spec.output.uri)")
	flag.BoolVar(&opts.LocalFleet, "local-fleet", false, "the fleet's devices are local demo devices: allow file:// URIs and versions without git commit, image and dataset digests")
	flag.IntVar(&opts.CanaryPercent, "canary", 0, "pin as canary for this percent of the fleet (0: pin as stable)")
	flag.StringVar(&signKey, "sign-key", "", "PEM ed25519 private key to sign the manifest with")
	flag.StringVar(&description, "description", "", "write the pull request description to this file (default: stdout)")
	flag.Parse()
	if opts.Run == "" || opts.Fleet == "" || flag.NArg() > 0 || opts.CanaryPercent < 0 || opts.CanaryPercent > 100 {
		flag.Usage()
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	err := run(ctx, opts, signKey, description)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "promote:", err)
		var gateErr *promote.GateError
		if errors.As(err, &gateErr) {
			fmt.Fprint(os.Stderr, manifest.Report(gateErr.Gates))
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, opts promote.Options, signKey, description string) error {
	if signKey != "" {
		key, err := readKey(signKey)
		if err != nil {
			return err
		}
		opts.SignKey = key
	}
	res, err := promote.Promote(ctx, opts)
	if err != nil {
		return err
	}
	if description == "" {
		_, err = fmt.Print(res.Description())
		return err
	}
	return os.WriteFile(description, []byte(res.Description()), 0o644)
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
