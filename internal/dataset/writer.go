package dataset

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"slices"
)

// DefaultShardBytes is the shard size Writer aims for: big enough that a
// store request per shard is cheap, small enough that a replica caches a
// few of them.
const DefaultShardBytes = 64 << 20

// Writer builds a dataset's shards in a local directory, then its manifest.
// Samples are written in the order they are added; shuffle them before.
type Writer struct {
	dir        string
	classes    []string
	shape      Shape
	perShard   int
	splits     map[string]*splitWriter
	splitNames []string
}

type splitWriter struct {
	m   Split
	f   *os.File
	buf *bufio.Writer
	h   hash.Hash
	sw  *shardWriter
}

// NewWriter starts a dataset of classes and shape whose shards are written
// into dir (which must exist) and hold about shardBytes each (0: the
// default).
func NewWriter(dir string, classes []string, shape Shape, shardBytes int64) (*Writer, error) {
	probe := Manifest{Schema: Schema, Classes: classes, Shape: shape,
		Splits: []Split{{Name: "x", Samples: 1, ClassCounts: make([]int64, len(classes)), Shards: []Shard{{File: ShardFile("x", 0), Bytes: ShardBytes(shape, 1), SHA256: hex.EncodeToString(make([]byte, 32)), Samples: 1}}}}}
	probe.Splits[0].ClassCounts[0] = 1
	if err := probe.check(); err != nil {
		return nil, err
	}
	if shardBytes <= 0 {
		shardBytes = DefaultShardBytes
	}
	return &Writer{
		dir: dir, classes: slices.Clone(classes), shape: shape,
		perShard: int(max(1, shardBytes/RecordBytes(shape))),
		splits:   map[string]*splitWriter{},
	}, nil
}

// Add appends a sample of class with pixels (Shape.Bytes() bytes) to split.
func (w *Writer) Add(split string, class int, pixels []byte) error {
	if len(pixels) != w.shape.Bytes() {
		return fmt.Errorf("sample of %d bytes, the shape %s takes %d", len(pixels), w.shape, w.shape.Bytes())
	}
	if class < 0 || class >= len(w.classes) {
		return fmt.Errorf("class %d is not below %d", class, len(w.classes))
	}
	s := w.splits[split]
	if s == nil {
		if !splitName.MatchString(split) {
			return fmt.Errorf("split name %q: want [a-z][a-z0-9_]{0,31}", split)
		}
		s = &splitWriter{m: Split{Name: split, ClassCounts: make([]int64, len(w.classes))}}
		w.splits[split] = s
		w.splitNames = append(w.splitNames, split)
	}
	if s.sw != nil && s.sw.n == w.perShard {
		if err := w.closeShard(s); err != nil {
			return err
		}
	}
	if s.sw == nil {
		if s.m.Samples >= MaxSamples {
			return fmt.Errorf("split %s: more than %d samples", split, int64(MaxSamples))
		}
		f, err := os.Create(filepath.Join(w.dir, ShardFile(split, len(s.m.Shards))))
		if err != nil {
			return err
		}
		s.f, s.h = f, sha256.New()
		s.buf = bufio.NewWriterSize(io.MultiWriter(f, s.h), 1<<20)
		s.sw = newShardWriter(s.buf, w.shape, s.m.Samples)
	}
	if err := s.sw.add(class, pixels); err != nil {
		return fmt.Errorf("write %s: %w", s.f.Name(), err)
	}
	s.m.Samples++
	s.m.ClassCounts[class]++
	return nil
}

// closeShard finishes the current shard. It is not fsynced: the files are
// a staging copy that Upload hashes again as it stores them.
func (w *Writer) closeShard(s *splitWriter) error {
	name := s.f.Name()
	err := s.sw.close()
	if err == nil {
		err = s.buf.Flush()
	}
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	s.m.Shards = append(s.m.Shards, Shard{
		File:    filepath.Base(name),
		Bytes:   ShardBytes(w.shape, s.sw.n),
		SHA256:  hex.EncodeToString(s.h.Sum(nil)),
		Samples: s.sw.n,
	})
	s.sw, s.f = nil, nil
	return nil
}

// Finish closes the last shards and returns the manifest and its canonical
// bytes, whose sha256 is the dataset digest.
func (w *Writer) Finish() (*Manifest, []byte, error) {
	m := &Manifest{Schema: Schema, Classes: w.classes, Shape: w.shape}
	names := slices.Sorted(slices.Values(w.splitNames))
	for _, n := range names {
		s := w.splits[n]
		if s.sw != nil {
			if err := w.closeShard(s); err != nil {
				return nil, nil, err
			}
		}
		m.Splits = append(m.Splits, s.m)
	}
	b, err := m.Encode()
	if err != nil {
		return nil, nil, err
	}
	return m, b, nil
}

// Abort closes any open shard file; the caller removes the directory.
func (w *Writer) Abort() {
	for _, s := range w.splits {
		if s.f != nil {
			s.f.Close()
		}
	}
}
