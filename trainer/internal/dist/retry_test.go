package dist

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aerie-ml/aerie/internal/exitcode"
)

// TestRetry: a rank dials a peer that is not listening yet until it is,
// gives up when its context ends, and stops at a permanent error.
func TestRetry(t *testing.T) {
	newJoiner := func(logs *syncLog) *joiner {
		cfg := Config{Env: Env{MasterAddr: "127.0.0.1", WorldSize: 2, Rank: 1, Token: "test-token"}, RendezvousTimeout: time.Minute}
		cfg.setDefaults()
		return &joiner{cfg: &cfg, log: slog.New(slog.NewTextHandler(logs, nil))}
	}

	t.Run("late peer", func(t *testing.T) {
		var logs syncLog
		j := newJoiner(&logs)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		attempts := 0
		done := make(chan error, 1)
		go func() {
			done <- j.retry(ctx, addr, func(*net.TCPConn) error { attempts++; return nil })
		}()
		// The peer listens only after the first failed dial.
		for !strings.Contains(logs.String(), "peer not reachable yet") {
			select {
			case <-ctx.Done():
				t.Fatalf("no failed dial logged:\n%s", logs.String())
			case <-time.After(5 * time.Millisecond):
			}
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		if err := <-done; err != nil || attempts != 1 {
			t.Errorf("retry() = %v after %d attempts, want nil after 1", err, attempts)
		}
	})

	t.Run("gives up", func(t *testing.T) {
		var logs syncLog
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		err := newJoiner(&logs).retry(ctx, net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t))), func(*net.TCPConn) error { return nil })
		var dial *net.OpError
		if err == nil || !strings.Contains(err.Error(), "gave up dialing") || !errors.As(err, &dial) {
			t.Errorf("retry() with its context over = %v, want it to give up with the last dial error", err)
		}
	})

	t.Run("permanent error", func(t *testing.T) {
		var logs syncLog
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		attempts := 0
		permanent := exitcode.Errorf(exitcode.Config, "token mismatch")
		err = newJoiner(&logs).retry(t.Context(), ln.Addr().String(), func(*net.TCPConn) error { attempts++; return permanent })
		if !errors.Is(err, permanent) || attempts != 1 {
			t.Errorf("retry() = %v after %d attempts, want the permanent error after 1", err, attempts)
		}
	})
}
