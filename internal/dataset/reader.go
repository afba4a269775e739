package dataset

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/aerie-ml/aerie/internal/exitcode"
	"github.com/aerie-ml/aerie/internal/store"
)

// Dataset is an opened, verified manifest and the store its shards are in.
type Dataset struct {
	Manifest *Manifest
	Digest   string
	s        store.Store
	uri      string
}

// Open reads the manifest of the dataset rooted at s (the store opened at
// the dataset's URI, datasets/<name>/<digest>/) and checks that its sha256
// is digest. Errors carry exit codes: exitcode.Data for a missing, corrupt
// or mismatching manifest, the store's own code (StorageDown, retryable)
// when the store fails.
func Open(ctx context.Context, s store.Store, digest string) (*Dataset, error) {
	uri := s.URI(ManifestFile)
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, ManifestTimeout)
	defer cancel()
	b, err := readManifest(ctx, s)
	if err != nil {
		return nil, timedOut(parent, err, "read "+uri, ManifestTimeout)
	}
	if got := Digest(b); got != digest {
		return nil, exitcode.Errorf(exitcode.Data, "dataset %s: manifest sha256 is %s, the run declares %s", uri, got, digest)
	}
	m, err := Parse(b)
	if err != nil {
		return nil, exitcode.Errorf(exitcode.Data, "dataset %s: %w", uri, err)
	}
	return &Dataset{Manifest: m, Digest: digest, s: s, uri: s.URI("")}, nil
}

// timedOut turns err into a retryable StorageDown error when the call's own
// deadline, not the parent context, ended it.
func timedOut(parent context.Context, err error, what string, d time.Duration) error {
	if errors.Is(err, context.DeadlineExceeded) && parent.Err() == nil {
		return exitcode.Wrap(exitcode.StorageDown, fmt.Errorf("%s: no answer within %s: %w", what, d, err))
	}
	return err
}

func readManifest(ctx context.Context, s store.Store) ([]byte, error) {
	r, err := s.Get(ctx, ManifestFile)
	if err != nil {
		if errors.Is(err, store.ErrNotExist) {
			return nil, exitcode.Errorf(exitcode.Data, "dataset %s: no %s: not a dataset, or its ingest was interrupted (re-run ingest): %w", s.URI(""), ManifestFile, err)
		}
		return nil, fmt.Errorf("dataset %s: %w", s.URI(""), err)
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, MaxManifestBytes+1))
	if err != nil {
		return nil, fmt.Errorf("dataset %s: %w", s.URI(""), err)
	}
	return b, nil
}

// Deadlines of single store calls: a store that stops answering fails the
// call (retryably) instead of hanging the replica.
const (
	// DefaultFetchTimeout is a shard's: 64 MiB at 1 MiB/s.
	DefaultFetchTimeout = 64 * time.Second
	// ManifestTimeout is Open's read of the manifest.
	ManifestTimeout = 30 * time.Second
)

// CheckShards makes sure, without reading them, that every shard of the
// dataset is in the store with the size the manifest gives, so that a run
// that would meet a missing or truncated shard late fails before it
// starts: an exitcode.Data error naming the shard. Each Stat has
// ManifestTimeout.
func (d *Dataset) CheckShards(ctx context.Context) error {
	for _, sp := range d.Manifest.Splits {
		for _, sh := range sp.Shards {
			cctx, cancel := context.WithTimeout(ctx, ManifestTimeout)
			o, err := d.s.Stat(cctx, sh.File)
			cancel()
			switch {
			case errors.Is(err, store.ErrNotExist):
				return exitcode.Wrap(exitcode.Data, fmt.Errorf("dataset %s is missing shard %s (re-run ingest): %w", d.uri, sh.File, err))
			case err != nil:
				return timedOut(ctx, err, "dataset "+d.uri+": stat "+sh.File, ManifestTimeout)
			case o.Size != sh.Bytes:
				return exitcode.Errorf(exitcode.Data, "dataset %s: shard %s is %d bytes, the manifest says %d (truncated or replaced; re-run ingest)", d.uri, sh.File, o.Size, sh.Bytes)
			}
		}
	}
	return nil
}

// Config configures a Reader. Its zero value works.
type Config struct {
	// CacheDir holds the verified shards a Reader has fetched, as
	// <sha256>.tar; "" means a temporary directory removed by Close. A
	// shard found there is verified again before use.
	CacheDir string
	// CacheShards is how many shards are kept, on disk, at once (least
	// recently used goes first); 0 means 2×DefaultWindow, enough for the
	// two windows one batch can span.
	CacheShards int
	// FetchTimeout bounds one shard's fetch from the store, request and
	// body (0: DefaultFetchTimeout); a fetch that runs out is a retryable
	// exitcode.StorageDown error.
	FetchTimeout time.Duration
	// Mean and Std normalize each channel after scaling to [0, 1]:
	// x = (p/255 - Mean[c]) / Std[c]. Empty means x = p/255.
	Mean, Std []float32
}

// Reader reads one split's samples by split index, fetching each shard from
// the store once into a local cache of at most CacheShards files. Its memory
// is one record buffer and each cached shard's class list (2 bytes a
// sample), whatever the dataset's size. It is safe for concurrent use.
type Reader struct {
	d     *Dataset
	split *Split
	cfg   Config
	tmp   string // CacheDir we made, removed by Close
	scale [][2]float32

	mu     sync.Mutex
	starts []int64
	cached map[int]*cachedShard
	tick   int64
	fetch  int // shards fetched, for tests and logs
}

type cachedShard struct {
	f       *os.File
	classes []uint16
	used    int64
}

// Reader opens split for reading.
func (d *Dataset) Reader(split string, cfg Config) (*Reader, error) {
	sp, err := d.Manifest.Split(split)
	if err != nil {
		return nil, exitcode.Errorf(exitcode.Config, "dataset %s: %w", d.uri, err)
	}
	ch := d.Manifest.Shape.Channels
	if len(cfg.Mean) != len(cfg.Std) || (len(cfg.Mean) != 0 && len(cfg.Mean) != ch) {
		return nil, exitcode.Errorf(exitcode.Config, "normalization: %d means and %d deviations for %d channels", len(cfg.Mean), len(cfg.Std), ch)
	}
	r := &Reader{d: d, split: sp, cfg: cfg, cached: map[int]*cachedShard{}}
	for c := range ch {
		mean, std := float32(0), float32(1)
		if len(cfg.Mean) > 0 {
			mean, std = cfg.Mean[c], cfg.Std[c]
			if std == 0 {
				return nil, exitcode.Errorf(exitcode.Config, "normalization: channel %d has deviation 0", c)
			}
		}
		// x = p*a + b
		r.scale = append(r.scale, [2]float32{1 / (255 * std), -mean / std})
	}
	if r.cfg.FetchTimeout <= 0 {
		r.cfg.FetchTimeout = DefaultFetchTimeout
	}
	if r.cfg.CacheShards < 1 {
		r.cfg.CacheShards = 2 * DefaultWindow
	}
	if r.cfg.CacheDir == "" {
		if r.tmp, err = os.MkdirTemp("", "aerie-dataset-*"); err != nil {
			return nil, exitcode.Wrap(exitcode.Internal, err)
		}
		r.cfg.CacheDir = r.tmp
	} else if err := os.MkdirAll(r.cfg.CacheDir, 0o755); err != nil {
		return nil, exitcode.Wrap(exitcode.Config, fmt.Errorf("dataset cache: %w", err))
	}
	var start int64
	for _, s := range sp.Shards {
		r.starts = append(r.starts, start)
		start += int64(s.Samples)
	}
	return r, nil
}

// Len is the number of samples in the split.
func (r *Reader) Len() int64 { return r.split.Samples }

// Shape is the shape of every sample.
func (r *Reader) Shape() Shape { return r.d.Manifest.Shape }

// Fetched is the number of shards fetched from the store so far.
func (r *Reader) Fetched() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fetch
}

// Close closes the cached shards, and removes the cache if Reader made it.
func (r *Reader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, c := range r.cached {
		c.f.Close()
		delete(r.cached, k)
	}
	if r.tmp != "" {
		return os.RemoveAll(r.tmp)
	}
	return nil
}

func (r *Reader) shardOf(j int64) int { return shardAt(r.starts, j) }

// Sample reads sample j's pixels into dst (Shape().Bytes() bytes) and
// returns its class.
func (r *Reader) Sample(ctx context.Context, j int64, dst []byte) (int, error) {
	if j < 0 || j >= r.split.Samples {
		return 0, exitcode.Errorf(exitcode.Internal, "sample %d outside split %s of %d samples", j, r.split.Name, r.split.Samples)
	}
	sh := r.shardOf(j)
	// The read happens under the lock so that another goroutine cannot
	// evict (and close) the shard meanwhile.
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := r.shardLocked(ctx, sh, j)
	if err != nil {
		return 0, err
	}
	i := int(j - r.starts[sh])
	if _, err := c.f.ReadAt(dst[:r.Shape().Bytes()], pixelOffset(r.Shape(), i)); err != nil {
		return 0, exitcode.Wrap(exitcode.Data, &SampleError{Shard: r.split.Shards[sh].File, Sample: j, Err: fmt.Errorf("read cached %s: %w", c.f.Name(), err)})
	}
	return int(c.classes[i]), nil
}

// Batch reads the samples idx into x (len(idx)×H×W×C floats, normalized per
// Config, HWC order) and their classes into y.
func (r *Reader) Batch(ctx context.Context, idx []int64, x []float32, y []int32) error {
	sh := r.Shape()
	n := sh.Bytes()
	if len(x) != len(idx)*n || len(y) != len(idx) {
		return exitcode.Errorf(exitcode.Internal, "batch of %d samples into %d floats and %d labels", len(idx), len(x), len(y))
	}
	buf := make([]byte, n)
	for k, j := range idx {
		class, err := r.Sample(ctx, j, buf)
		if err != nil {
			return err
		}
		y[k] = int32(class)
		out := x[k*n : (k+1)*n]
		if sh.Channels == 1 {
			a, b := r.scale[0][0], r.scale[0][1]
			for i, p := range buf {
				out[i] = float32(p)*a + b
			}
			continue
		}
		for i, p := range buf {
			s := r.scale[i%3]
			out[i] = float32(p)*s[0] + s[1]
		}
	}
	return nil
}

// Prefetch fetches the shards that rank's part of global batch step of o
// reads, so that Batch then finds them cached.
func (r *Reader) Prefetch(ctx context.Context, o *Order, step int64, batch, rank, world int) error {
	for _, sh := range o.Shards(step, batch, rank, world) {
		r.mu.Lock()
		_, err := r.shardLocked(ctx, sh, r.starts[sh])
		r.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// shardLocked returns shard sh from the cache, fetching and verifying it
// first if needed; j is the sample that asked, for errors. r.mu is held.
func (r *Reader) shardLocked(ctx context.Context, sh int, j int64) (*cachedShard, error) {
	r.tick++
	if c := r.cached[sh]; c != nil {
		c.used = r.tick
		return c, nil
	}
	for len(r.cached) >= r.cfg.CacheShards {
		r.evict()
	}
	c, err := r.load(ctx, sh, j)
	if err != nil {
		return nil, err
	}
	c.used = r.tick
	r.cached[sh] = c
	return c, nil
}

func (r *Reader) evict() {
	oldest := -1
	for k, c := range r.cached {
		if oldest < 0 || c.used < r.cached[oldest].used {
			oldest = k
		}
	}
	c := r.cached[oldest]
	c.f.Close()
	os.Remove(c.f.Name())
	delete(r.cached, oldest)
}

func (r *Reader) info(sh int) ShardInfo {
	return ShardInfo{Shape: r.Shape(), NumClasses: len(r.d.Manifest.Classes), Shard: r.split.Shards[sh], First: r.starts[sh]}
}

// load verifies shard sh, from the cache directory if it is there, else
// from the store through a temporary file renamed into the cache only once
// every byte checked out.
func (r *Reader) load(ctx context.Context, sh int, j int64) (*cachedShard, error) {
	info := r.info(sh)
	s := info.Shard
	path := filepath.Join(r.cfg.CacheDir, s.SHA256+".tar")
	if f, err := os.Open(path); err == nil {
		classes, err := ReadShard(bufioReader(f), info, nil)
		if err == nil {
			if _, err = f.Seek(0, io.SeekStart); err == nil {
				return &cachedShard{f: f, classes: classes}, nil
			}
		}
		// A damaged cache entry is fetched again.
		f.Close()
		os.Remove(path)
	}
	r.fetch++
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, r.cfg.FetchTimeout)
	defer cancel()
	c, err := r.download(ctx, sh, j, path)
	if err != nil {
		return nil, timedOut(parent, err, "dataset "+r.d.uri+": fetch "+s.File, r.cfg.FetchTimeout)
	}
	return c, nil
}

// download fetches shard sh from the store into the cache at path.
func (r *Reader) download(ctx context.Context, sh int, j int64, path string) (*cachedShard, error) {
	info := r.info(sh)
	s := info.Shard
	key := s.File
	rc, err := r.d.s.Get(ctx, key)
	if err != nil {
		e := &SampleError{Shard: s.File, Sample: j, Err: fmt.Errorf("fetch %s: %w", r.d.s.URI(key), err)}
		if errors.Is(err, store.ErrNotExist) {
			return nil, exitcode.Wrap(exitcode.Data, fmt.Errorf("dataset %s is missing a shard (re-run ingest): %w", r.d.uri, e))
		}
		return nil, e // keeps the store's code: retryable when the store is down
	}
	defer rc.Close()
	// Not fsynced: a cache entry is verified again before it is used after a
	// restart, so a torn one is only fetched again.
	pf, err := os.CreateTemp(r.cfg.CacheDir, ".fetch-*")
	if err != nil {
		return nil, exitcode.Wrap(exitcode.Internal, fmt.Errorf("dataset cache: %w", err))
	}
	defer func() {
		pf.Close()
		os.Remove(pf.Name())
	}()
	classes, err := ReadShard(bufioReader(io.TeeReader(rc, pf)), info, nil)
	if err != nil {
		if se, ok := errors.AsType[*SampleError](err); ok && !errors.Is(err, ErrShard) {
			// The store failed while streaming: keep its code.
			return nil, fmt.Errorf("dataset %s: %w", r.d.uri, se)
		}
		return nil, exitcode.Wrap(exitcode.Data, fmt.Errorf("dataset %s: %w", r.d.uri, err))
	}
	if err := pf.Close(); err != nil {
		return nil, exitcode.Wrap(exitcode.Internal, fmt.Errorf("dataset cache: %w", err))
	}
	if err := os.Rename(pf.Name(), path); err != nil {
		return nil, exitcode.Wrap(exitcode.Internal, fmt.Errorf("dataset cache: %w", err))
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, exitcode.Wrap(exitcode.Internal, fmt.Errorf("dataset cache: %w", err))
	}
	return &cachedShard{f: f, classes: classes}, nil
}
