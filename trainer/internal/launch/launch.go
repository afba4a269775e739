// Package launch runs a data-parallel job on this machine, the way torchrun
// does: one process per rank with the Kubeflow training operator's
// environment contract on 127.0.0.1, output prefixed with the rank, one
// progress bar for the whole job, signals forwarded, and the first failure
// ending the job with that rank's exit code.
package launch

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/aerie-ml/aerie/internal/exitcode"
	"github.com/aerie-ml/aerie/trainer/internal/dist"
	"github.com/aerie-ml/aerie/trainer/internal/progress"
)

// Replica is one process of the job.
type Replica struct {
	Rank int
	Args []string // after the executable
	Env  []string // KEY=VALUE, added to the launcher's environment
}

// Contract returns the operator's environment for rank of world on
// 127.0.0.1:port.
func Contract(rank, world, port int, token string) []string {
	return dist.Env{MasterAddr: "127.0.0.1", MasterPort: port, WorldSize: world, Rank: rank, Token: token}.Environ()
}

// Local plans n replicas that all run args.
func Local(n int, args []string) ([]Replica, error) {
	if n < 1 {
		return nil, exitcode.Errorf(exitcode.Config, "launch: --nproc %d, want at least 1", n)
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	tok := Token()
	reps := make([]Replica, n)
	for r := range reps {
		reps[r] = Replica{Rank: r, Args: args, Env: Contract(r, n, port, tok)}
	}
	return reps, nil
}

// FreePort asks the kernel for a free TCP port on 127.0.0.1.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("launch: find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Token is the job's rendezvous token: the launcher's own
// AERIE_RENDEZVOUS_TOKEN if set, else a fresh random one.
func Token() string {
	if t := os.Getenv(dist.EnvToken); t != "" {
		return t
	}
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Options tunes Run. The zero value works.
type Options struct {
	// Exe is the program every replica runs (default: this executable).
	Exe string
	// Dir is the replicas' working directory (default: the launcher's).
	Dir string
	// Stdout and Stderr receive the replicas' output, each line prefixed
	// with "[rank k] " (default: discarded).
	Stdout, Stderr io.Writer
	// Bar, when set, draws one bar for the whole job from the replicas'
	// JSON step lines and prints their other lines above it, in place of
	// Stdout and Stderr; Run closes it. Log should then write through
	// Bar.Writer(-1), so that its lines do not tear the bar.
	Bar *progress.Aggregate
	// Grace is how long replicas get to exit after SIGTERM before SIGKILL
	// (default 10s).
	Grace time.Duration
	Log   *slog.Logger
}

// ExitError is the failure of one replica.
type ExitError struct {
	Rank int
	Code int
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("rank %d exited with code %d", e.Rank, e.Code)
}

// Run starts every replica and waits for all of them. When one fails, the
// others get SIGTERM (then SIGKILL after Grace), and Run returns the first
// failure with that replica's exit code (exitcode.Of gives it back). When
// ctx ends (the launcher got a signal), every replica gets SIGTERM.
func Run(ctx context.Context, replicas []Replica, o Options) error {
	if o.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("launch: find this executable: %w", err)
		}
		o.Exe = exe
	}
	if o.Stdout == nil {
		o.Stdout = io.Discard
	}
	if o.Stderr == nil {
		o.Stderr = io.Discard
	}
	if o.Grace <= 0 {
		o.Grace = 10 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	agg := o.Bar
	if agg != nil {
		agg.Expect(len(replicas))
		defer agg.Close()
	}
	// Replicas' lines must not interleave mid-line: one lock per stream.
	var outMu, errMu sync.Mutex

	type exit struct {
		rank int
		err  error
	}
	exits := make(chan exit, len(replicas))
	var procs []*exec.Cmd
	alive := map[int]*exec.Cmd{}
	var closers []io.Closer
	for _, rep := range replicas {
		cmd := exec.Command(o.Exe, rep.Args...)
		cmd.Dir = o.Dir
		cmd.Env = append(os.Environ(), rep.Env...)
		if agg != nil {
			cmd.Env = append(cmd.Env, progress.EnvLauncherBar+"=1")
		}
		setProcAttr(cmd)
		var stdout, stderr io.WriteCloser
		if agg != nil {
			stdout, stderr = agg.Writer(rep.Rank), agg.Writer(rep.Rank)
		} else {
			stdout = &prefixWriter{prefix: fmt.Appendf(nil, "[rank %d] ", rep.Rank), w: o.Stdout, mu: &outMu}
			stderr = &prefixWriter{prefix: fmt.Appendf(nil, "[rank %d] ", rep.Rank), w: o.Stderr, mu: &errMu}
		}
		cmd.Stdout, cmd.Stderr = stdout, stderr
		closers = append(closers, stdout, stderr)
		if err := cmd.Start(); err != nil {
			for _, p := range procs {
				_ = p.Process.Kill()
				_ = p.Wait()
			}
			return exitcode.Errorf(exitcode.Config, "launch rank %d (%s): %w", rep.Rank, o.Exe, err)
		}
		o.Log.Debug("started", "rank", rep.Rank, "pid", cmd.Process.Pid)
		procs = append(procs, cmd)
		alive[rep.Rank] = cmd
		go func() { exits <- exit{rank: rep.Rank, err: cmd.Wait()} }()
	}
	defer func() {
		for _, c := range closers {
			_ = c.Close()
		}
	}()

	signalAll := func(sig os.Signal) {
		for _, p := range alive {
			_ = p.Process.Signal(sig)
		}
	}
	var first error
	var kill <-chan time.Time
	stopping := false
	done := ctx.Done()
	for range procs {
		var e exit
		for received := false; !received; {
			select {
			case e = <-exits:
				received = true
			case <-done:
				done = nil
				first = errors.Join(first, exitcode.Wrap(exitcode.Interrupted, fmt.Errorf("launch: interrupted: %w", ctx.Err())))
				o.Log.Info("interrupted; stopping every rank")
				signalAll(syscall.SIGTERM)
				stopping, kill = true, time.After(o.Grace)
			case <-kill:
				o.Log.Warn("ranks ignored SIGTERM; killing them", "grace", o.Grace)
				signalAll(syscall.SIGKILL)
				kill = nil
			}
		}
		delete(alive, e.rank)
		if e.err == nil {
			continue
		}
		code := exitCode(e.err)
		if first == nil {
			first = exitcode.Wrap(code, &ExitError{Rank: e.rank, Code: code})
		}
		if !stopping {
			o.Log.Info("a rank failed; stopping the others", "rank", e.rank, "code", code)
			signalAll(syscall.SIGTERM)
			stopping, kill = true, time.After(o.Grace)
		}
	}
	return first
}

// exitCode maps a replica's Wait error to a process exit code, 128+n for
// death by signal n as a shell reports it.
func exitCode(err error) int {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return exitcode.Internal
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	if c := ee.ExitCode(); c > 0 {
		return c
	}
	return exitcode.Internal
}

// prefixWriter writes each complete line with a prefix, holding a partial
// line until its end arrives (or Close).
type prefixWriter struct {
	prefix []byte
	w      io.Writer
	mu     *sync.Mutex // shared by the writers of one stream
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		p.emit(p.buf[:i+1])
		p.buf = p.buf[i+1:]
	}
}

func (p *prefixWriter) emit(line []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, _ = p.w.Write(append(append([]byte{}, p.prefix...), line...))
}

func (p *prefixWriter) Close() error {
	if len(p.buf) > 0 {
		p.emit(append(p.buf, '\n'))
		p.buf = nil
	}
	return nil
}
