package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/aerie-ml/aerie/trainer/internal/dist"
)

// runBenchAllReduce measures the ring all-reduce between the ranks the
// environment describes (bench/dist.sh runs it over loopback and between
// network namespaces). Rank 0 prints the median over iterations of the
// ranks' mean time, and the bandwidths as nccl-tests define them.
func runBenchAllReduce(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("trainer bench-allreduce", flag.ContinueOnError)
	floats := fs.Int("floats", 421642, "float32 elements per all-reduce (421,642: the cnn model's gradient)")
	iters := fs.Int("iters", 50, "timed iterations")
	warmup := fs.Int("warmup", 5, "untimed iterations first")
	chunk := fs.Int("chunk-bytes", 0, "data frame payload (0: the default)")
	sockbuf := fs.Int("socket-buffer", 0, "SO_SNDBUF/SO_RCVBUF (0: kernel autotuning)")
	streamMB := fs.Int("stream-mb", 0, "then time one plain TCP stream of this many MB from rank 1 to rank 0: what the link carries without the collective")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
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
	if *streamMB > 0 && env.WorldSize > 1 {
		if err := timeStream(ctx, c, env, *streamMB<<20, stdout); err != nil {
			return err
		}
	}
	return c.Close(ctx)
}

// timeStream sends n bytes over one TCP connection from rank 1 to rank 0,
// on MASTER_PORT+1, and rank 0 prints the rate from the first byte to the
// last.
func timeStream(ctx context.Context, c *dist.Comm, env dist.Env, n int, stdout io.Writer) error {
	addr := net.JoinHostPort(env.MasterAddr, strconv.Itoa(env.MasterPort+1))
	var ln net.Listener
	if env.Rank == 0 {
		var err error
		if ln, err = net.Listen("tcp", addr); err != nil {
			return fmt.Errorf("stream: %w", err)
		}
		defer ln.Close()
	}
	if err := c.Barrier(ctx); err != nil { // rank 0 listens
		return err
	}
	switch env.Rank {
	case 0:
		conn, err := ln.Accept()
		if err != nil {
			return fmt.Errorf("stream: %w", err)
		}
		defer conn.Close()
		buf := make([]byte, 1<<20)
		first, err := io.ReadAtLeast(conn, buf, 1)
		got, start := first, time.Now()
		for err == nil {
			var k int
			k, err = conn.Read(buf)
			got += k
		}
		secs := time.Since(start).Seconds()
		if err != io.EOF || got != n {
			return fmt.Errorf("stream: received %d of %d bytes: %v", got, n, err)
		}
		fmt.Fprintf(stdout, "tcp_stream bytes=%d seconds=%.3f Gbps=%.3f\n", n, secs, float64(n-first)*8/secs/1e9)
	case 1:
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return fmt.Errorf("stream: %w", err)
		}
		chunk := make([]byte, 1<<20)
		for sent := 0; sent < n; sent += len(chunk) {
			if _, err := conn.Write(chunk[:min(len(chunk), n-sent)]); err != nil {
				conn.Close()
				return fmt.Errorf("stream: %w", err)
			}
		}
		if err := conn.Close(); err != nil {
			return fmt.Errorf("stream: %w", err)
		}
	}
	return c.Barrier(ctx)
}
