package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/creack/pty"
)

// screenLines replays what a terminal shows for out: "\r" returns to the
// line's start, "\x1b[K" erases to its end, "\n" moves down.
func screenLines(t *testing.T, out []byte) []string {
	t.Helper()
	var lines []string
	var cur []rune
	col := 0
	for s := string(out); len(s) > 0; {
		switch {
		case strings.HasPrefix(s, "\x1b[K"):
			cur, s = cur[:col], s[3:]
		case s[0] == '\x1b':
			t.Fatalf("unexpected escape sequence in %q", s[:min(len(s), 20)])
		case s[0] == '\r':
			col, s = 0, s[1:]
		case s[0] == '\n':
			lines = append(lines, string(cur))
			cur, col, s = nil, 0, s[1:]
		default:
			r, n := utf8.DecodeRuneInString(s)
			if col < len(cur) {
				cur[col] = r
			} else {
				cur = append(cur, r)
			}
			col, s = col+1, s[n:]
		}
	}
	return append(lines, string(cur))
}

// launchArgs are `trainer launch` of two ranks of a small 2-epoch run.
func launchArgs(t *testing.T) []string {
	dataURI, digest := synthetic(t, 160, 60)
	return append([]string{"launch", "--nproc=2", "--"}, smallArgs(dataURI, digest, t.TempDir())...)
}

// TestLaunchOnTerminal: on a terminal (a real pty), two ranks draw one bar
// for the job, with their log lines as text above it and each epoch once.
func TestLaunchOnTerminal(t *testing.T) {
	cmd := exec.CommandContext(t.Context(), os.Args[0], launchArgs(t)...)
	cmd.Env = append(os.Environ(), envAsMain+"=1", "GOMAXPROCS=1")
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 160})
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	var out bytes.Buffer
	// Reading ends with EIO once the launcher exits and closes the pty.
	if _, err := io.Copy(&out, tty); err != nil && !errors.Is(err, os.ErrClosed) && !strings.Contains(err.Error(), "input/output error") {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("trainer launch on a terminal: %v\n%s", err, out.String())
	}

	lines := screenLines(t, out.Bytes())
	var bars, logs []string
	epochs := map[string]int{}
	for _, l := range lines {
		switch {
		case strings.Contains(l, "▕"):
			bars = append(bars, l)
		case strings.HasPrefix(l, "[rank "):
			logs = append(logs, l)
		case strings.HasPrefix(l, "epoch "):
			epochs[strings.Fields(l)[1]]++
		}
		if strings.Contains(l, "{") {
			t.Errorf("a raw JSON line on the terminal: %q", l)
		}
	}
	if len(bars) != 1 || !strings.HasPrefix(bars[0], "2 ranks epoch 2/2 ") || !strings.Contains(bars[0], "img/s") {
		t.Errorf("bars left on the screen %q, want one for the job of 2 ranks, with its rate", bars)
	}
	if len(logs) == 0 {
		t.Error("no rank's log line shown above the bar")
	}
	for _, l := range logs {
		if !strings.Contains(l, " INFO ") {
			t.Errorf("log line %q is not a text record", l)
		}
	}
	if epochs["1/2"] != 1 || epochs["2/2"] != 1 {
		t.Errorf("epoch lines %v, want each epoch once", epochs)
	}
	if t.Failed() {
		t.Logf("screen:\n%s", strings.Join(lines, "\n"))
	}
}

// TestLaunchNotOnTerminal: into a pipe, the launcher draws no bar and logs
// JSON lines, and the ranks write JSON log lines, prefixed with their rank.
func TestLaunchNotOnTerminal(t *testing.T) {
	cmd := exec.CommandContext(t.Context(), os.Args[0], launchArgs(t)...)
	cmd.Env = append(os.Environ(), envAsMain+"=1", "GOMAXPROCS=1")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("trainer launch: %v\n%s", err, stderr.String())
	}
	records := 0
	for _, l := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if strings.ContainsAny(l, "▕\r\x1b") {
			t.Errorf("a bar in piped output: %q", l)
		}
		record, launcher := l, true
		if rest, ok := strings.CutPrefix(l, "[rank "); ok {
			_, record, _ = strings.Cut(rest, "] ")
			launcher = false
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(record), &v); err != nil {
			t.Errorf("line %q is not a JSON record: %v", l, err)
		}
		if !launcher {
			records++
		}
	}
	if records == 0 {
		t.Errorf("no rank's JSON log lines in:\n%s", stderr.String())
	}
}
