// Package frames reads camera frames and turns them into what the active
// model was trained on: Preprocess resizes and converts a decoded frame to
// the model's input shape exactly as ingest converted the training images
// (internal/pixels). Normalization happens in model.Classify.
package frames

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	_ "image/png" // directory sources hold PNGs too
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/aerie-ml/aerie/internal/dataset"
	"github.com/aerie-ml/aerie/internal/pixels"
	"github.com/aerie-ml/aerie/internal/store"
)

// Frame is one decoded frame, of whatever size the source gives.
type Frame struct {
	Image image.Image
	// Name says where the frame came from (file name or frame number).
	Name string
}

// Source yields frames until io.EOF.
type Source interface {
	Next(ctx context.Context) (Frame, error)
	Close() error
}

// Options shape every source.
type Options struct {
	// Loop restarts file sources at their end instead of returning io.EOF.
	Loop bool
	// Interval paces frames; 0 yields them as fast as asked.
	Interval time.Duration
}

// Preprocess writes img into dst (shape.Bytes() long) as a model of input
// shape takes it: resized and converted to grey or RGB as ingest does,
// inverted (255 - p) when asked, for dark-on-light scenes shown to a model
// trained on light-on-dark images.
func Preprocess(dst []byte, img image.Image, shape dataset.Shape, invert bool) {
	pixels.Convert(dst, img, shape)
	if invert {
		for i, p := range dst {
			dst[i] = 255 - p
		}
	}
}

// pacer sleeps between frames.
type pacer struct {
	interval time.Duration
	last     time.Time
}

func (p *pacer) wait(ctx context.Context) error {
	if p.interval <= 0 {
		return ctx.Err()
	}
	if !p.last.IsZero() {
		t := time.NewTimer(time.Until(p.last.Add(p.interval)))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	p.last = time.Now()
	return nil
}

// Dir yields the PNG and JPEG files of a directory in name order.
type Dir struct {
	dir   string
	names []string
	i     int
	opts  Options
	pace  pacer
}

// OpenDir lists dir's images.
func OpenDir(dir string, opts Options) (*Dir, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	d := &Dir{dir: dir, opts: opts, pace: pacer{interval: opts.Interval}}
	for _, e := range entries {
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".png", ".jpg", ".jpeg":
			d.names = append(d.names, e.Name())
		}
	}
	slices.Sort(d.names)
	if len(d.names) == 0 {
		return nil, fmt.Errorf("%s: no .png or .jpg images", dir)
	}
	return d, nil
}

// Next decodes the next image.
func (d *Dir) Next(ctx context.Context) (Frame, error) {
	if d.i == len(d.names) {
		if !d.opts.Loop {
			return Frame{}, io.EOF
		}
		d.i = 0
	}
	if err := d.pace.wait(ctx); err != nil {
		return Frame{}, err
	}
	name := d.names[d.i]
	d.i++
	f, err := os.Open(filepath.Join(d.dir, name))
	if err != nil {
		return Frame{}, err
	}
	defer f.Close()
	img, _, err := image.Decode(bufio.NewReader(f))
	if err != nil {
		return Frame{Name: name}, fmt.Errorf("decode %s: %w", filepath.Join(d.dir, name), err)
	}
	return Frame{Image: img, Name: name}, nil
}

// Close does nothing.
func (d *Dir) Close() error { return nil }

// Dataset yields the samples of one split of an ingested dataset
// (internal/dataset: shards verified as they are fetched) as frames: a
// source of labelled test images for any model, at the dataset's shape.
type Dataset struct {
	st   store.Store
	r    *dataset.Reader
	j    int64
	opts Options
	pace pacer
}

// DatasetSplit is the split a Dataset source reads.
const DatasetSplit = "test"

// OpenDataset opens the DatasetSplit split of the dataset at uri, the root
// that ingest prints (…/datasets/<name>/<digest>/); the manifest must have
// that digest.
func OpenDataset(ctx context.Context, uri string, opts Options) (_ *Dataset, err error) {
	sum := path.Base(strings.TrimSuffix(uri, "/"))
	if digest.SHA256.Validate(sum) != nil {
		return nil, fmt.Errorf("dataset %s: want the root ingest prints, …/datasets/<name>/<digest>/", uri)
	}
	st, err := store.Open(ctx, uri)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			st.Close()
		}
	}()
	d, err := dataset.Open(ctx, st, sum)
	if err != nil {
		return nil, err
	}
	r, err := d.Reader(DatasetSplit, dataset.Config{CacheShards: 1})
	if err != nil {
		return nil, err
	}
	return &Dataset{st: st, r: r, opts: opts, pace: pacer{interval: opts.Interval}}, nil
}

// Next reads the next sample.
func (d *Dataset) Next(ctx context.Context) (Frame, error) {
	if d.j == d.r.Len() {
		if !d.opts.Loop {
			return Frame{}, io.EOF
		}
		d.j = 0
	}
	if err := d.pace.wait(ctx); err != nil {
		return Frame{}, err
	}
	name := fmt.Sprintf("%s#%d", DatasetSplit, d.j)
	sh := d.r.Shape()
	px := make([]byte, sh.Bytes())
	_, err := d.r.Sample(ctx, d.j, px)
	d.j++
	if err != nil {
		return Frame{Name: name}, err
	}
	rect := image.Rect(0, 0, sh.Width, sh.Height)
	if sh.Channels == 1 {
		return Frame{Image: &image.Gray{Pix: px, Stride: sh.Width, Rect: rect}, Name: name}, nil
	}
	rgba := image.NewRGBA(rect)
	for i := range sh.Width * sh.Height {
		copy(rgba.Pix[4*i:4*i+3], px[3*i:3*i+3])
		rgba.Pix[4*i+3] = 0xFF
	}
	return Frame{Image: rgba, Name: name}, nil
}

// Close closes the reader, removing its shard cache, and the store.
func (d *Dataset) Close() error { return errors.Join(d.r.Close(), d.st.Close()) }

// MJPEG yields the JPEG frames of a stream: what `rpicam-vid --codec mjpeg
// -o -` or ffmpeg's mjpeg muxer writes to a pipe.
type MJPEG struct {
	split  *Splitter
	closer io.Closer
	n      int
}

// NewMJPEG reads frames from r; Close closes c (may be nil).
func NewMJPEG(r io.Reader, c io.Closer) *MJPEG {
	return &MJPEG{split: NewSplitter(r), closer: c}
}

// Next decodes the next frame. A frame that does not decode is returned
// with its error; the stream continues with the next one.
func (m *MJPEG) Next(ctx context.Context) (Frame, error) {
	if err := ctx.Err(); err != nil {
		return Frame{}, err
	}
	b, err := m.split.Next()
	if err != nil {
		return Frame{}, err
	}
	m.n++
	name := fmt.Sprintf("frame#%d", m.n)
	img, err := jpeg.Decode(bytes.NewReader(b))
	if err != nil {
		return Frame{Name: name}, fmt.Errorf("decode %s: %w", name, err)
	}
	return Frame{Image: img, Name: name}, nil
}

// Close closes the stream.
func (m *MJPEG) Close() error {
	if m.closer == nil {
		return nil
	}
	return m.closer.Close()
}

// ErrFrameTooLarge reports a JPEG larger than MaxFrame.
var ErrFrameTooLarge = errors.New("mjpeg: frame too large")

// MaxFrame bounds one JPEG in a stream.
const MaxFrame = 8 << 20

// Splitter cuts a byte stream into JPEG images by walking their marker
// segments: SOI, length-prefixed segments, entropy-coded data after SOS
// (where 0xFF is stuffed as FF 00 and restart markers are FF D0–D7), EOI.
// Bytes between images are skipped. Walking segments, rather than searching
// for FF D9, keeps an EXIF thumbnail's EOI from ending a frame early.
type Splitter struct {
	r   *bufio.Reader
	buf []byte
	// ff: entropy() consumed the 0xFF that starts the next marker.
	ff bool
}

// NewSplitter reads JPEGs from r.
func NewSplitter(r io.Reader) *Splitter { return &Splitter{r: bufio.NewReaderSize(r, 64<<10)} }

// Next returns the next complete JPEG, or io.EOF at the end of the stream
// (a truncated last frame is io.ErrUnexpectedEOF).
func (s *Splitter) Next() ([]byte, error) {
	// Find SOI.
	prev := byte(0)
	for {
		c, err := s.r.ReadByte()
		if err != nil {
			return nil, err
		}
		if prev == 0xFF && c == 0xD8 {
			break
		}
		prev = c
	}
	s.buf = append(s.buf[:0], 0xFF, 0xD8)
	s.ff = false
	for {
		m, err := s.marker()
		if err != nil {
			return nil, err
		}
		switch {
		case m == 0xD9:
			out := make([]byte, len(s.buf))
			copy(out, s.buf)
			return out, nil
		case m == 0x01 || (m >= 0xD0 && m <= 0xD7):
			continue // no length
		case m == 0xD8:
			// A new SOI inside a frame: the previous frame was cut off.
			s.buf = append(s.buf[:0], 0xFF, 0xD8)
			continue
		}
		if err := s.segment(); err != nil {
			return nil, err
		}
		if m == 0xDA {
			if err := s.entropy(); err != nil {
				return nil, err
			}
		}
	}
}

func (s *Splitter) add(b ...byte) error {
	if len(s.buf)+len(b) > MaxFrame {
		return ErrFrameTooLarge
	}
	s.buf = append(s.buf, b...)
	return nil
}

// marker reads FF (FF…) M and returns M.
func (s *Splitter) marker() (byte, error) {
	if !s.ff {
		c, err := s.read()
		if err != nil {
			return 0, err
		}
		if c != 0xFF {
			return 0, fmt.Errorf("mjpeg: byte %#x where a marker should start", c)
		}
	}
	s.ff = false
	for {
		m, err := s.read()
		if err != nil {
			return 0, err
		}
		if m != 0xFF {
			return m, s.add(0xFF, m)
		}
	}
}

func (s *Splitter) read() (byte, error) {
	c, err := s.r.ReadByte()
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return c, err
}

func (s *Splitter) segment() error {
	hi, err := s.read()
	if err != nil {
		return err
	}
	lo, err := s.read()
	if err != nil {
		return err
	}
	n := int(hi)<<8 | int(lo)
	if n < 2 {
		return fmt.Errorf("mjpeg: segment length %d", n)
	}
	if err := s.add(hi, lo); err != nil {
		return err
	}
	if len(s.buf)+n-2 > MaxFrame {
		return ErrFrameTooLarge
	}
	start := len(s.buf)
	s.buf = append(s.buf, make([]byte, n-2)...)
	if _, err := io.ReadFull(s.r, s.buf[start:]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	return nil
}

// entropy copies scan data up to (not including) the next real marker,
// which it leaves to be read by marker.
func (s *Splitter) entropy() error {
	for {
		c, err := s.read()
		if err != nil {
			return err
		}
		if c != 0xFF {
			if err := s.add(c); err != nil {
				return err
			}
			continue
		}
		next, err := s.r.Peek(1)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		if n := next[0]; n == 0x00 || (n >= 0xD0 && n <= 0xD7) {
			s.r.ReadByte()
			if err := s.add(0xFF, n); err != nil {
				return err
			}
			continue
		}
		s.ff = true
		return nil
	}
}
