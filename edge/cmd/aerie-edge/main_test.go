package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/aerie-ml/aerie/edge/internal/emulation"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// envAsMain makes the test binary run main(), so the tests exercise the
// real command line: flag parsing, output and exit codes.
const envAsMain = "AERIE_EDGE_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(envAsMain) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// aerieEdge runs the command with args and returns its output and exit code.
func aerieEdge(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	emulation.SkipChildProcesses(t)
	cmd := exec.CommandContext(t.Context(), os.Args[0], args...)
	cmd.Env = append(os.Environ(), envAsMain+"=1")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("run aerie-edge %v: %v", args, err)
	}
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}

// TestCheckConfig: -check-config prints the configuration with every
// default filled in, as YAML in the file's own schema.
func TestCheckConfig(t *testing.T) {
	for _, tt := range []struct{ name, config string }{
		{"minimal", filepath.Join("testdata", "minimal.yaml")},
		{"deploy", filepath.Join("..", "..", "deploy", "edge.yaml")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := aerieEdge(t, "-check-config", "-config", tt.config)
			if code != 0 {
				t.Fatalf("aerie-edge -check-config -config %s exited %d:\n%s", tt.config, code, stderr)
			}
			golden := filepath.Join("testdata", "check-config-"+tt.name+".golden.yaml")
			if *update {
				if err := os.WriteFile(golden, []byte(stdout), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (go test -update writes it)", err)
			}
			if diff := cmp.Diff(string(want), stdout); diff != "" {
				t.Errorf("-check-config output differs from %s (go test -update rewrites it) (-want +got):\n%s", golden, diff)
			}
		})
	}
}

// TestExitCodes: help and the version exit 0; a usage or configuration
// error exits 2 and says what is wrong.
func TestExitCodes(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   string // a prefix of stdout
		stderr   string // a part of stderr
		noOutput bool   // nothing on stdout
		noStderr bool   // nothing on stderr
	}{
		{name: "version", args: []string{"--version"}, stdout: "aerie-edge "},
		{name: "-version", args: []string{"-version"}, stdout: "aerie-edge "},
		{name: "-h", args: []string{"-h"}, stdout: "Usage of ", noStderr: true},
		{name: "--help", args: []string{"--help"}, stdout: "Usage of ", noStderr: true},
		{name: "unknown flag", args: []string{"-colour"}, code: 2, stderr: "flag provided but not defined: -colour", noOutput: true},
		{name: "stray argument", args: []string{"run"}, code: 2, stderr: `unexpected arguments ["run"]`, noOutput: true},
		{name: "missing config", args: []string{"-check-config", "-config", "testdata/absent.yaml"}, code: 2, stderr: "testdata/absent.yaml", noOutput: true},
		{name: "bad config", args: []string{"-check-config", "-config", "testdata/bad.yaml"}, code: 2, stderr: `testdata/bad.yaml:4: device.id: "Pi_0002" is not a DNS label`, noOutput: true},
		{name: "bad log level", args: []string{"-check-config", "-config", "testdata/minimal.yaml", "-log-level", "loud"}, code: 2, stderr: "-log-level", noOutput: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := aerieEdge(t, tt.args...)
			if code != tt.code {
				t.Errorf("aerie-edge %v exited %d, want %d; stderr:\n%s", tt.args, code, tt.code, stderr)
			}
			if !strings.HasPrefix(stdout, tt.stdout) || tt.noOutput && stdout != "" {
				t.Errorf("aerie-edge %v stdout = %q, want it to start with %q", tt.args, stdout, tt.stdout)
			}
			if tt.noStderr && stderr != "" {
				t.Errorf("aerie-edge %v stderr = %q, want nothing", tt.args, stderr)
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Errorf("aerie-edge %v stderr = %q, want it to contain %q", tt.args, stderr, tt.stderr)
			}
		})
	}
}
