// Package data feeds training from an internal/dataset dataset (what
// ingest writes) without holding it in memory: a replica streams, through
// a dataset.Reader, only the shards that its part of each global batch and
// of each evaluation reads.
//
// # Sets
//
//   - train: the dataset's train split minus the validation samples, in
//     dataset.NewOrder's world-size-independent order;
//   - validation: the train samples j for which a hash of (seed, j) falls
//     below ValFraction, about that fraction of them; a function of the
//     sample index alone, so the same for every world size and every
//     epoch, and without a list in memory;
//   - test: the dataset's test split.
//
// Global training batch s of an epoch is the s-th run of BatchSize
// non-validation samples of the epoch's order; each rank takes a contiguous
// part of it (dataset.Part, in whole ghost batches when the model has batch
// norm). An evaluation gives rank r
// Part(n, r, W) of the set's n samples in index order.
//
// # Memory
//
// What a replica holds does not grow with the dataset: the Reader's cached
// shards are files on disk (at most Config.CacheShards, by default three
// windows: the two one batch can span and the next), plus 2 bytes a sample
// of each cached shard's class list; the Order holds one window's
// permutation, 8 bytes a sample of Window shards; batches are built two
// ahead of the step (three batches of BatchSize/W × H×W×C float32s).
package data

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/aerie-ml/aerie/internal/arch"
	"github.com/aerie-ml/aerie/internal/dataset"
	"github.com/aerie-ml/aerie/internal/exitcode"
	"github.com/aerie-ml/aerie/internal/store"
)

// Splits of a dataset that training reads.
const (
	TrainSplit = "train"
	TestSplit  = "test"
)

// Config says how Open holds out validation and caches shards. Its zero
// value holds out nothing and caches in a temporary directory.
type Config struct {
	// ValFraction of the train split is held out for validation, chosen by
	// Seed and each sample's index.
	ValFraction float64
	Seed        int64
	// Window is the number of shards whose samples an epoch shuffles
	// together (0: dataset.DefaultWindow).
	Window int
	// CacheDir holds verified shards ("" : a temporary directory);
	// CacheShards is how many per split (0: 3×Window).
	CacheDir    string
	CacheShards int
	// FetchTimeout bounds one shard's fetch from the store (0:
	// dataset.DefaultFetchTimeout).
	FetchTimeout time.Duration
}

// Source is an opened dataset that training streams from.
type Source struct {
	Dataset *dataset.Dataset
	// Files maps each shard file to its sha256, for the model's lineage.
	Files map[string]string

	// Normalization is what ReadTrain and Eval normalize by: the model
	// plan's (arch.Plan.Normalization). Zero means the default for the
	// dataset's channels.
	Normalization arch.Normalization

	cfg         Config
	split       *dataset.Split
	train, test *dataset.Reader
	hold        holdout
	nVal        int64
	closeStore  store.Store // closed by Close, when Source opened it
}

// Open opens the dataset in s, checked against digest, for training. It
// checks that every shard is there with its size before training starts.
func Open(ctx context.Context, s store.Store, digest string, cfg Config) (*Source, error) {
	if cfg.ValFraction < 0 || cfg.ValFraction >= 1 {
		return nil, exitcode.Errorf(exitcode.Config, "validation fraction %v is not in [0, 1)", cfg.ValFraction)
	}
	if cfg.Window < 1 {
		cfg.Window = dataset.DefaultWindow
	}
	if cfg.CacheShards < 1 {
		cfg.CacheShards = 3 * cfg.Window
	}
	d, err := dataset.Open(ctx, s, digest)
	if err != nil {
		return nil, err
	}
	if err := d.CheckShards(ctx); err != nil {
		return nil, err
	}
	src := &Source{Dataset: d, Files: map[string]string{}, cfg: cfg, hold: newHoldout(cfg.Seed, cfg.ValFraction)}
	for _, sp := range d.Manifest.Splits {
		for _, sh := range sp.Shards {
			src.Files[sh.File] = sh.SHA256
		}
	}
	if src.split, err = d.Manifest.Split(TrainSplit); err != nil {
		return nil, exitcode.Errorf(exitcode.Data, "dataset %s: %w", s.URI(""), err)
	}
	if _, err := d.Manifest.Split(TestSplit); err != nil {
		return nil, exitcode.Errorf(exitcode.Data, "dataset %s: %w", s.URI(""), err)
	}
	for j := range src.split.Samples {
		if src.hold.has(j) {
			src.nVal++
		}
	}
	if src.TrainLen() < 1 || src.TestLen() < 1 {
		return nil, exitcode.Errorf(exitcode.Data, "dataset %s: %d training and %d test images leave nothing to train or test on", s.URI(""), src.TrainLen(), src.TestLen())
	}
	rc := dataset.Config{CacheShards: cfg.CacheShards, FetchTimeout: cfg.FetchTimeout}
	if cfg.CacheDir != "" {
		rc.CacheDir = cfg.CacheDir
	}
	if src.train, err = d.Reader(TrainSplit, rc); err != nil {
		return nil, err
	}
	if src.test, err = d.Reader(TestSplit, rc); err != nil {
		src.train.Close()
		return nil, err
	}
	return src, nil
}

// Close removes the shard caches that Open made.
func (s *Source) Close() error {
	err := errors.Join(s.train.Close(), s.test.Close())
	if s.closeStore != nil {
		err = errors.Join(err, s.closeStore.Close())
	}
	return err
}

// Shape is the shape of every image.
func (s *Source) Shape() dataset.Shape { return s.Dataset.Manifest.Shape }

// Classes are the class names, in label order.
func (s *Source) Classes() []string { return s.Dataset.Manifest.Classes }

// TrainLen, ValLen and TestLen are the sets' sizes.
func (s *Source) TrainLen() int64 { return s.split.Samples - s.nVal }
func (s *Source) ValLen() int64   { return s.nVal }
func (s *Source) TestLen() int64 {
	sp, _ := s.Dataset.Manifest.Split(TestSplit)
	return sp.Samples
}

// StepsPerEpoch is the number of full global batches of size batch in an
// epoch; the remainder is dropped, so every step has the same size.
func (s *Source) StepsPerEpoch(batch int) int { return int(s.TrainLen() / int64(batch)) }

// Fetched is the number of shards fetched from the store so far.
func (s *Source) Fetched() int { return s.train.Fetched() + s.test.Fetched() }

// Epoch is one epoch's sequence of a rank's parts of the global batches.
type Epoch struct {
	src    *Source
	order  *dataset.Order
	batch  int
	lo, hi int
	pos    int64 // next position in the order
}

// Epoch starts epoch's global batches of size batch, of which this rank
// takes positions [lo, hi) (dataset.Part(batch, rank, world), or whole
// ghost batches of it).
func (s *Source) Epoch(epoch, batch, lo, hi int) *Epoch {
	return &Epoch{src: s, order: dataset.NewOrder(s.split, uint64(s.cfg.Seed), epoch, s.cfg.Window), batch: batch, lo: lo, hi: hi}
}

// Next returns the train-split indices of the rank's part of the next
// global batch. The caller stops after StepsPerEpoch batches.
func (e *Epoch) Next() []int64 {
	out := make([]int64, 0, e.hi-e.lo)
	for k := 0; k < e.batch; {
		j := e.order.At(e.pos)
		e.pos++
		if e.src.hold.has(j) {
			continue
		}
		if k >= e.lo && k < e.hi {
			out = append(out, j)
		}
		k++
	}
	return out
}

// Skip passes over steps global batches (a resumed epoch).
func (e *Epoch) Skip(steps int) {
	for range steps {
		e.Next()
	}
}

// ReadTrain reads the train samples idx, augmented for epoch, into x
// (len(idx)×H×W×C, HWC) and their classes into y.
func (s *Source) ReadTrain(ctx context.Context, idx []int64, aug Augment, epoch int, x []float32, y []int32) error {
	n, norm := s.Shape().Bytes(), s.normalization()
	buf := make([]byte, n)
	for k, j := range idx {
		c, err := s.train.Sample(ctx, j, buf)
		if err != nil {
			return fmt.Errorf("split %s: %w", TrainSplit, err)
		}
		aug.Apply(x[k*n:(k+1)*n], buf, norm, s.cfg.Seed, epoch, j)
		y[k] = int32(c)
	}
	return nil
}

// Eval is one rank's part of an evaluation set, in index order.
type Eval struct {
	src    *Source
	r      *dataset.Reader
	val    bool
	name   string // the split, for errors
	j      int64  // next split index to look at
	ord    int64  // the set ordinal of the next member found
	lo, hi int64  // this rank's ordinals
}

// Val and Test start rank's part of the validation and test sets.
func (s *Source) Val(rank, world int) *Eval { return s.eval(s.train, true, s.nVal, rank, world) }

func (s *Source) Test(rank, world int) *Eval { return s.eval(s.test, false, s.TestLen(), rank, world) }

func (s *Source) eval(r *dataset.Reader, val bool, n int64, rank, world int) *Eval {
	lo, hi := partOf(n, rank, world)
	e := &Eval{src: s, r: r, val: val, name: TestSplit, lo: lo, hi: hi}
	if val {
		e.name = TrainSplit
	} else {
		e.j, e.ord = lo, lo
	}
	return e
}

// partOf is dataset.Part for a set of n samples.
func partOf(n int64, rank, world int) (lo, hi int64) {
	q, r := n/int64(world), n%int64(world)
	lo = int64(rank)*q + min(int64(rank), r)
	hi = lo + q
	if int64(rank) < r {
		hi++
	}
	return lo, hi
}

// Shape is the shape of every image.
func (e *Eval) Shape() dataset.Shape { return e.src.Shape() }

// Len is the number of samples of the rank's part.
func (e *Eval) Len() int64 { return e.hi - e.lo }

// Next reads up to len(y) of the rank's next samples, normalized, into x
// and their classes into y, and returns how many it read (0 at the end).
func (e *Eval) Next(ctx context.Context, x []float32, y []int32) (int, error) {
	n, norm := e.src.Shape().Bytes(), e.src.normalization()
	buf := make([]byte, n)
	k := 0
	for k < len(y) && e.ord < e.hi {
		j := e.j
		e.j++
		if e.val && !e.src.hold.has(j) {
			continue
		}
		e.ord++
		if e.ord <= e.lo {
			continue // a validation sample of a lower rank
		}
		c, err := e.r.Sample(ctx, j, buf)
		if err != nil {
			return k, fmt.Errorf("split %s: %w", e.name, err)
		}
		norm.Apply(x[k*n:(k+1)*n], buf)
		y[k] = int32(c)
		k++
	}
	return k, nil
}

// holdout decides which train samples are validation samples: those whose
// index hashes (with the seed) below threshold.
type holdout struct {
	key       uint64
	threshold uint64 // of 2⁶⁴; 0: none
}

const valStream = 0x5eed_0001

func newHoldout(seed int64, fraction float64) holdout {
	h := holdout{key: splitmix(uint64(seed) ^ valStream)}
	if fraction > 0 {
		h.threshold = uint64(math.Ldexp(fraction, 64))
	}
	return h
}

func (h holdout) has(j int64) bool {
	if h.threshold == 0 {
		return false
	}
	return splitmix(h.key^uint64(j)) < h.threshold
}

// splitmix is SplitMix64's finalizer: a fixed, well-mixed hash of x.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// normalization is Normalization, or the default when it is zero.
func (s *Source) normalization() arch.Normalization {
	if s.Normalization.IsZero() {
		return arch.DefaultNormalization(s.Shape().Channels)
	}
	return s.Normalization
}

// Streams of the seeded generators, so that the holdout, augmentation and
// dropout draw independent numbers from one seed.
const augmentStream = 0x5eed_0003
