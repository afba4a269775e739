package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/aerie-ml/aerie/internal/exitcode"
	"github.com/aerie-ml/aerie/trainer/internal/dist"
)

// runBenchAllReduce measures the ring all-reduce between the ranks the
// environment describes (bench/dist.sh runs it over loopback and between
// network namespaces). Rank 0 prints the median over iterations of the
// ranks' mean time, and the bandwidths as nccl-tests define them.
func runBenchAllReduce(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("trainer bench-allreduce", flag.ContinueOnError)
	fs.SetOutput(stderr)
	floats := fs.Int("floats", 421642, "float32 elements per all-reduce (421,642: the cnn model's gradient)")
	iters := fs.Int("iters", 50, "timed iterations")
	warmup := fs.Int("warmup", 5, "untimed iterations first")
	chunk := fs.Int("chunk-bytes", 0, "data frame payload (0: the default)")
	sockbuf := fs.Int("socket-buffer", 0, "SO_SNDBUF/SO_RCVBUF (0: kernel autotuning)")
	if err := fs.Parse(args); err != nil {
		return exitcode.Wrap(exitcode.Config, err)
	}
	env, err := dist.EnvFrom(os.Getenv)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := dist.Join(ctx, dist.Config{Env: env, ChunkBytes: *chunk, SocketBuffer: *sockbuf, Logger: logger})
	if err != nil {
		return err
	}
	buf := make([]float32, *floats)
	for i := range buf {
		buf[i] = float32(i % 7)
	}
	times := make([]float64, *iters)
	for i := -*warmup; i < *iters; i++ {
		if err := c.Barrier(ctx); err != nil {
			return err
		}
		start := time.Now()
		if err := c.AllReduce(ctx, buf); err != nil {
			return err
		}
		if i >= 0 {
			times[i] = time.Since(start).Seconds()
		}
		// Keep the values bounded: sums of n ranks grow n× per iteration.
		for k := range buf {
			buf[k] = float32(k % 7)
		}
	}
	if err := c.AllReduceFloat64(ctx, times); err != nil {
		return err
	}
	if env.Rank == 0 {
		n := float64(env.WorldSize)
		for i := range times {
			times[i] /= n
		}
		slices.Sort(times)
		med := times[len(times)/2]
		bytes := 4 * float64(*floats)
		alg := bytes / med
		bus := alg * 2 * (n - 1) / n
		fmt.Fprintf(stdout, "allreduce world=%d floats=%d bytes=%.0f iters=%d median_ms=%.3f algbw_MBps=%.1f busbw_MBps=%.1f busbw_Gbps=%.3f\n",
			env.WorldSize, *floats, bytes, *iters, med*1e3, alg/1e6, bus/1e6, bus*8/1e9)
	}
	return c.Close(ctx)
}
