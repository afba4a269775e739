// Package checkpoint writes and finds training checkpoints in a store.
//
// A checkpoint of run at global step S is two objects under
// checkpoints/<run>/<S, 12 digits>/:
//
//	state-<sha256[:16]>.safetensors   every variable (weights, optimizer
//	                                  state, counters) and, in its metadata,
//	                                  the trainer's progress
//	COMMITTED                         written last: "<state file> sha256:<hex> <size>\n"
//
// Both are created with if-not-exists semantics, so nothing valid is ever
// overwritten; saving a step whose existing checkpoint does not verify
// replaces it, so after Save returns a valid checkpoint exists for the step.
// A checkpoint without COMMITTED, or whose state does not match
// the digest and size COMMITTED records or does not decode, is skipped with
// a warning and never loaded. The state file is named by its content, so a
// retried write of the same step after a crash finds its own bytes.
package checkpoint

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"slices"
	"strconv"
	"strings"

	"github.com/aerie-ml/aerie/internal/model"
)

// Store is the part of internal/store's Store that checkpoints need.
type Store interface {
	// Create stores r's content under key atomically, failing with an error
	// that matches fs.ErrExist if key exists.
	Create(ctx context.Context, key string, r io.Reader) error
	// Get opens key; an error matching fs.ErrNotExist if it is missing.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// List returns the keys that start with prefix, sorted.
	List(ctx context.Context, prefix string) ([]string, error)
	// Delete removes key.
	Delete(ctx context.Context, key string) error
	// URI names key for people.
	URI(key string) string
}

// State is what a checkpoint holds.
type State struct {
	Step    int64
	Tensors []model.Tensor
	// Meta is free-form progress the trainer records (JSON values).
	Meta map[string]string
}

// Committed is the name of the marker written last.
const Committed = "COMMITTED"

// Prefix is the key prefix of run's checkpoint at step (store.CheckpointPrefix).
func Prefix(run string, step int64) string {
	return "checkpoints/" + run + "/" + fmt.Sprintf("%012d", step) + "/"
}

// Checkpoints saves and finds one run's checkpoints.
type Checkpoints struct {
	Store Store
	Run   string
	Log   *slog.Logger
	// Keep is how many of the newest checkpoints Save leaves in place; it
	// deletes older ones (default 3, negative: keep all).
	Keep int
}

func (c *Checkpoints) log() *slog.Logger {
	if c.Log != nil {
		return c.Log
	}
	return slog.Default()
}

// Save writes s as the checkpoint at s.Step and returns its URI.
func (c *Checkpoints) Save(ctx context.Context, s *State) (string, error) {
	var buf bytes.Buffer
	meta := map[string]string{"step": strconv.FormatInt(s.Step, 10)}
	for k, v := range s.Meta {
		meta[k] = v
	}
	if err := model.Encode(&buf, s.Tensors, meta); err != nil {
		return "", fmt.Errorf("encode checkpoint at step %d: %w", s.Step, err)
	}
	sum := sha256.Sum256(buf.Bytes())
	hexsum := hex.EncodeToString(sum[:])
	prefix := Prefix(c.Run, s.Step)
	name := "state-" + hexsum[:16] + ".safetensors"
	if err := c.putState(ctx, prefix, name, buf.Bytes(), sum); err != nil {
		return "", err
	}
	marker := fmt.Sprintf("%s sha256:%s %d\n", name, hexsum, buf.Len())
	err := c.Store.Create(ctx, prefix+Committed, strings.NewReader(marker))
	if errors.Is(err, fs.ErrExist) {
		// An earlier attempt committed this step. Keep that checkpoint only
		// if it still verifies: else every later resume would fall back
		// past it and train the same interval again.
		_, lerr := c.load(ctx, prefix)
		var invalid *invalidError
		switch {
		case lerr == nil:
			c.log().Info("checkpoint already committed", "checkpoint", c.Store.URI(prefix))
			err = nil
		case errors.As(lerr, &invalid):
			c.log().Warn("replacing invalid checkpoint", "checkpoint", c.Store.URI(prefix), "reason", invalid.Err.Error())
			// Without its marker the step is merely uncommitted, so a crash
			// before the new marker lands loses nothing that was valid.
			if err = c.Store.Delete(ctx, prefix+Committed); err == nil || errors.Is(err, fs.ErrNotExist) {
				err = c.Store.Create(ctx, prefix+Committed, strings.NewReader(marker))
			}
		default:
			return "", fmt.Errorf("verify committed checkpoint %s: %w", c.Store.URI(prefix), lerr)
		}
	}
	if err != nil {
		return "", fmt.Errorf("commit checkpoint %s: %w", c.Store.URI(prefix), err)
	}
	if err := c.prune(ctx, s.Step); err != nil {
		// Old checkpoints cost space, not correctness.
		c.log().Warn("pruning old checkpoints", "err", err)
	}
	return c.Store.URI(prefix), nil
}

// putState stores the state object. The name is a prefix of the content's
// digest, so an existing object is normally this state from an earlier
// attempt; one whose bytes differ (corrupted in place) is replaced, marker
// first, so no marker ever points at it while it is rewritten.
func (c *Checkpoints) putState(ctx context.Context, prefix, name string, b []byte, sum [sha256.Size]byte) error {
	key := prefix + name
	err := c.Store.Create(ctx, key, bytes.NewReader(b))
	if !errors.Is(err, fs.ErrExist) {
		if err != nil {
			return fmt.Errorf("write checkpoint %s: %w", c.Store.URI(key), err)
		}
		return nil
	}
	old, err := c.read(ctx, key, int64(len(b)))
	var invalid *invalidError
	if err != nil && !errors.As(err, &invalid) {
		return fmt.Errorf("verify existing checkpoint state %s: %w", c.Store.URI(key), err)
	}
	if err == nil && sha256.Sum256(old) == sum {
		return nil
	}
	c.log().Warn("replacing corrupt checkpoint state", "object", c.Store.URI(key))
	for _, k := range []string{prefix + Committed, key} {
		if err := c.Store.Delete(ctx, k); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete corrupt checkpoint %s: %w", c.Store.URI(k), err)
		}
	}
	if err := c.Store.Create(ctx, key, bytes.NewReader(b)); err != nil {
		return fmt.Errorf("write checkpoint %s: %w", c.Store.URI(key), err)
	}
	return nil
}

// prune deletes all but the newest Keep checkpoints up to step.
func (c *Checkpoints) prune(ctx context.Context, step int64) error {
	keep := c.Keep
	if keep == 0 {
		keep = 3
	}
	if keep < 0 {
		return nil
	}
	keys, steps, err := c.list(ctx)
	if err != nil {
		return err
	}
	var older []int64
	for _, s := range steps {
		if s <= step {
			older = append(older, s)
		}
	}
	if len(older) <= keep {
		return nil
	}
	doomed := map[string]bool{}
	for _, s := range older[:len(older)-keep] {
		doomed[Prefix(c.Run, s)] = true
	}
	// Delete the marker first, so that a half-deleted checkpoint is never
	// mistaken for a valid one.
	for _, k := range keys {
		if dir := k[:strings.LastIndex(k, "/")+1]; doomed[dir] && strings.HasSuffix(k, "/"+Committed) {
			if err := c.Store.Delete(ctx, k); err != nil {
				return err
			}
		}
	}
	for _, k := range keys {
		if dir := k[:strings.LastIndex(k, "/")+1]; doomed[dir] && !strings.HasSuffix(k, "/"+Committed) {
			if err := c.Store.Delete(ctx, k); err != nil {
				return err
			}
		}
	}
	return nil
}

// list returns the keys under the run's checkpoints and their steps, sorted.
func (c *Checkpoints) list(ctx context.Context) ([]string, []int64, error) {
	root := "checkpoints/" + c.Run + "/"
	keys, err := c.Store.List(ctx, root)
	if err != nil {
		return nil, nil, fmt.Errorf("list checkpoints %s: %w", c.Store.URI(root), err)
	}
	var steps []int64
	seen := map[int64]bool{}
	for _, k := range keys {
		dir, _, ok := strings.Cut(strings.TrimPrefix(k, root), "/")
		step, err := strconv.ParseInt(dir, 10, 64)
		if !ok || err != nil || len(dir) != 12 || seen[step] {
			continue
		}
		seen[step] = true
		steps = append(steps, step)
	}
	slices.Sort(steps)
	return keys, steps, nil
}

// Latest returns the newest valid checkpoint and its URI, or nil when there
// is none. Invalid ones are skipped with a warning; store failures other
// than a missing object are returned.
func (c *Checkpoints) Latest(ctx context.Context) (*State, string, error) {
	_, steps, err := c.list(ctx)
	if err != nil {
		return nil, "", err
	}
	for _, step := range slices.Backward(steps) {
		prefix := Prefix(c.Run, step)
		s, err := c.load(ctx, prefix)
		if err == nil && s.Step != step {
			err = fmt.Errorf("state is of step %d", s.Step)
		}
		if err == nil {
			return s, c.Store.URI(prefix), nil
		}
		var invalid *invalidError
		if !errors.As(err, &invalid) {
			return nil, "", err
		}
		c.log().Warn("skipping invalid checkpoint", "checkpoint", c.Store.URI(prefix), "reason", invalid.Err.Error())
	}
	return nil, "", nil
}

type invalidError struct{ Err error }

func (e *invalidError) Error() string { return e.Err.Error() }

func (c *Checkpoints) read(ctx context.Context, key string, limit int64) ([]byte, error) {
	r, err := c.Store.Get(ctx, key)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &invalidError{fmt.Errorf("%s is missing", key[strings.LastIndex(key, "/")+1:])}
		}
		return nil, fmt.Errorf("read %s: %w", c.Store.URI(key), err)
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		// A checksum failure at the end of the object: corrupt, skip it.
		return nil, &invalidError{fmt.Errorf("read %s: %w", key, err)}
	}
	if int64(len(b)) > limit {
		return nil, &invalidError{fmt.Errorf("%s is larger than %d bytes", key, limit)}
	}
	return b, nil
}

func (c *Checkpoints) load(ctx context.Context, prefix string) (*State, error) {
	marker, err := c.read(ctx, prefix+Committed, 4096)
	if err != nil {
		return nil, err
	}
	var name, digest string
	var size int64
	if n, err := fmt.Sscanf(string(marker), "%s %s %d\n", &name, &digest, &size); n != 3 || err != nil ||
		strings.Contains(name, "/") || !strings.HasPrefix(digest, "sha256:") {
		return nil, &invalidError{fmt.Errorf("%s is malformed: %q", Committed, marker)}
	}
	b, err := c.read(ctx, prefix+name, model.MaxHeaderBytes+model.MaxDataBytes+8)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != digest || int64(len(b)) != size {
		return nil, &invalidError{fmt.Errorf("%s is %d bytes with %s, %s says %d bytes with %s", name, len(b), got, Committed, size, digest)}
	}
	ts, meta, err := model.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, &invalidError{fmt.Errorf("%s: %w", name, err)}
	}
	step, err := strconv.ParseInt(meta["step"], 10, 64)
	if err != nil {
		return nil, &invalidError{fmt.Errorf("%s: metadata step %q", name, meta["step"])}
	}
	delete(meta, "step")
	return &State{Step: step, Tensors: ts, Meta: meta}, nil
}
