package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aerie-ml/aerie/trainer/internal/dist"
	"github.com/aerie-ml/aerie/trainer/internal/train"
)

// joinJob makes this process a rank of the data-parallel job the
// environment describes (the PyTorchJob contract; without WORLD_SIZE a job
// of one); ranks of another run are refused. It places cfg in the job and
// returns the ring, a context that also ends as soon as the ring breaks (a
// peer died, stalled or left), and the logger with the rank attached so a
// launcher can tell the ranks' lines apart.
func joinJob(ctx context.Context, run string, cfg *train.Config, logger *slog.Logger) (*dist.Comm, context.Context, *slog.Logger, error) {
	env, err := dist.EnvFrom(os.Getenv)
	if err != nil {
		return nil, ctx, logger, err
	}
	cfg.Rank, cfg.WorldSize = env.Rank, env.WorldSize
	if err := cfg.Validate(); err != nil {
		return nil, ctx, logger, err
	}
	if env.WorldSize > 1 {
		logger = logger.With("rank", env.Rank)
	}
	comm, err := dist.Join(ctx, dist.Config{Env: env, Job: run, Logger: logger})
	if err != nil {
		return nil, ctx, logger, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case <-comm.Failed():
			cancel(comm.Err())
		case <-ctx.Done():
		}
	}()
	return comm, ctx, logger, nil
}

// peerErr prefers the ring's error: a computation cancelled because a peer
// was lost must exit with the retryable exitcode.PeerLost.
func peerErr(comm *dist.Comm, err error) error {
	if cerr := comm.Err(); cerr != nil {
		return cerr
	}
	return err
}
