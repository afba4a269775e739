package dataset

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
	"time"
)

// A shard is a POSIX ustar archive in the WebDataset convention: the files
// of one sample share a key, and consecutive samples follow each other.
// Sample j of a split has the key fmt.Sprintf("%09d", j) and two members,
// in this order:
//
//	<key>.cls  the class index in decimal, zero-padded to clsWidth digits
//	<key>.u8   the pixels, Height×Width×Channels bytes, row-major, HWC
//
// Every header is written the same way (mode 0444, no owner), so every
// sample takes exactly RecordBytes and sample i of a shard is at byte
// i×RecordBytes: random access is one read at a computed offset. The archive
// ends with the two zero blocks of the tar format. The mtime of a .u8 header
// is the CRC32C (Castagnoli) of its pixels, that of a .cls header 0: tools
// show dates between 1970 and 2106, and a reader finds which sample of a
// corrupt shard is damaged without any other file.
const (
	block    = 512
	clsWidth = 5 // MaxClasses-1 has 5 digits
	keyWidth = 9

	// ustar header fields holding the mtime and the header checksum.
	mtimeAt   = 136
	chksumEnd = 156
)

// RecordBytes is the size one sample takes in a shard: a header and a block
// for .cls, a header and the padded pixels for .u8.
func RecordBytes(sh Shape) int64 {
	return 3*block + pad(int64(sh.Bytes()))
}

// ShardBytes is the size of a shard of n samples.
func ShardBytes(sh Shape, n int) int64 { return int64(n)*RecordBytes(sh) + 2*block }

func pad(n int64) int64 { return (n + block - 1) / block * block }

// pixelOffset is where sample i's pixels start in its shard.
func pixelOffset(sh Shape, i int) int64 { return int64(i)*RecordBytes(sh) + 2*block + block }

// Key is the WebDataset key of sample j of a split.
func Key(j int64) string { return fmt.Sprintf("%0*d", keyWidth, j) }

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func header(name string, size int64, mtime uint32) *tar.Header {
	return &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		Mode:     0o444,
		Size:     size,
		ModTime:  time.Unix(int64(mtime), 0),
		Format:   tar.FormatUSTAR,
	}
}

// recordHeaders returns the exact bytes of sample j's two headers, which a
// reader compares instead of parsing them. They are the headers archive/tar
// writes (TestRecordHeaders checks), made from a template for speed.
func recordHeaders(sh Shape, j int64, cls []byte, crc uint32) (clsHdr, u8Hdr [block]byte) {
	clsHdr, u8Hdr = templates(sh)
	key := Key(j)
	copy(clsHdr[:], key)
	copy(u8Hdr[:], key)
	putOctal(u8Hdr[mtimeAt:mtimeAt+12], int64(crc))
	setChecksum(&clsHdr)
	setChecksum(&u8Hdr)
	return clsHdr, u8Hdr
}

// templates are the headers of key 000000000 with mtime 0.
func templates(sh Shape) (clsHdr, u8Hdr [block]byte) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	key := Key(0)
	tw.WriteHeader(header(key+".cls", clsWidth, 0))
	tw.Write(make([]byte, clsWidth))
	tw.Flush()
	tw.WriteHeader(header(key+".u8", int64(sh.Bytes()), 0))
	out := b.Bytes()
	copy(clsHdr[:], out[:block])
	copy(u8Hdr[:], out[2*block:3*block])
	return clsHdr, u8Hdr
}

// putOctal writes v as len(f)-1 zero-padded octal digits and a NUL, as
// archive/tar does for numeric fields.
func putOctal(f []byte, v int64) {
	for i := len(f) - 2; i >= 0; i-- {
		f[i] = byte('0' + v&7)
		v >>= 3
	}
	f[len(f)-1] = 0
}

// setChecksum fills in the ustar header checksum: the sum of the header's
// bytes with the checksum field as spaces, six octal digits, NUL, space.
func setChecksum(h *[block]byte) {
	copy(h[148:156], "        ")
	var sum int64
	for _, c := range h {
		sum += int64(c)
	}
	putOctal(h[148:155], sum)
	h[155] = ' '
}

// shardWriter writes one shard, record by record (the bytes archive/tar
// would write, TestShardIsWebDataset reads them back with it).
type shardWriter struct {
	w     io.Writer
	sh    Shape
	n     int
	first int64 // split index of the shard's first sample
	rec   []byte
}

func newShardWriter(w io.Writer, sh Shape, first int64) *shardWriter {
	return &shardWriter{w: w, sh: sh, first: first, rec: make([]byte, RecordBytes(sh))}
}

func (w *shardWriter) add(class int, pixels []byte) error {
	clear(w.rec)
	cls := fmt.Appendf(w.rec[block:block], "%0*d", clsWidth, class)
	clsHdr, u8Hdr := recordHeaders(w.sh, w.first+int64(w.n), cls, crc32.Checksum(pixels, castagnoli))
	copy(w.rec, clsHdr[:])
	copy(w.rec[2*block:], u8Hdr[:])
	copy(w.rec[3*block:], pixels)
	if _, err := w.w.Write(w.rec); err != nil {
		return err
	}
	w.n++
	return nil
}

// close writes the two zero blocks that end a tar archive.
func (w *shardWriter) close() error {
	_, err := w.w.Write(make([]byte, 2*block))
	return err
}

// SampleError names the shard and the sample a problem was found in.
type SampleError struct {
	Shard  string // file name, e.g. train-000003.tar
	Sample int64  // index in the split; -1 when no sample is concerned
	Err    error
}

func (e *SampleError) Error() string {
	if e.Sample < 0 {
		return "shard " + e.Shard + ": " + e.Err.Error()
	}
	return fmt.Sprintf("shard %s, sample %d (key %s): %v", e.Shard, e.Sample, Key(e.Sample), e.Err)
}
func (e *SampleError) Unwrap() error { return e.Err }

// ErrShard is wrapped by the errors of a shard whose bytes are not what
// its manifest entry says.
var ErrShard = errors.New("bad shard")

// ShardInfo locates a shard in its split for ReadShard.
type ShardInfo struct {
	Shape      Shape
	NumClasses int
	Shard      Shard
	First      int64 // split index of its first sample
}

// ReadShard reads a whole shard from r, checking every byte of its layout,
// every class index, its size and its sha256 against info, and calls fn (if
// not nil) with each sample's class and pixels (valid only during the call).
// It returns the classes of the samples in order. Errors are *SampleError
// naming the shard and the sample.
func ReadShard(r io.Reader, info ShardInfo, fn func(i int, class int, pixels []byte) error) ([]uint16, error) {
	sh, s := info.Shape, info.Shard
	fail := func(i int, format string, args ...any) error {
		sample := int64(-1)
		if i >= 0 {
			sample = info.First + int64(i)
		}
		return &SampleError{Shard: s.File, Sample: sample, Err: fmt.Errorf("%w: %s", ErrShard, fmt.Sprintf(format, args...))}
	}
	h := sha256.New()
	r = io.TeeReader(r, h)
	rec := make([]byte, RecordBytes(sh))
	classes := make([]uint16, 0, s.Samples)
	npix := sh.Bytes()
	for i := range s.Samples {
		j := info.First + int64(i)
		if n, err := io.ReadFull(r, rec); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, fail(i, "truncated: %d of %d bytes of the sample, shard should be %d bytes", n, len(rec), s.Bytes)
			}
			return nil, &SampleError{Shard: s.File, Sample: j, Err: err}
		}
		cls := rec[block : block+clsWidth]
		class, err := strconv.Atoi(string(cls))
		if err != nil || class < 0 || class >= info.NumClasses || string(cls) != fmt.Sprintf("%0*d", clsWidth, class) {
			return nil, fail(i, "class %q is not a class index below %d", cls, info.NumClasses)
		}
		pixels := rec[3*block : 3*block+npix]
		wantCls, wantU8 := recordHeaders(sh, j, cls, crc32.Checksum(pixels, castagnoli))
		if !bytes.Equal(rec[:block], wantCls[:]) {
			return nil, fail(i, "the %s.cls header is not the one expected", Key(j))
		}
		if !allZero(rec[block+clsWidth : 2*block]) {
			return nil, fail(i, "padding after %s.cls is not zero", Key(j))
		}
		if got := rec[2*block : 3*block]; !bytes.Equal(got, wantU8[:]) {
			if bytes.Equal(got[:mtimeAt], wantU8[:mtimeAt]) && bytes.Equal(got[chksumEnd:], wantU8[chksumEnd:]) {
				return nil, fail(i, "the pixels do not match the CRC32C in their header: the sample is corrupt")
			}
			return nil, fail(i, "the %s.u8 header is not the one expected", Key(j))
		}
		if !allZero(rec[3*block+npix:]) {
			return nil, fail(i, "padding after %s.u8 is not zero", Key(j))
		}
		if fn != nil {
			if err := fn(i, class, pixels); err != nil {
				return nil, err
			}
		}
		classes = append(classes, uint16(class))
	}
	var tail [2*block + 1]byte
	n, err := io.ReadFull(r, tail[:])
	switch {
	case err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF):
		return nil, &SampleError{Shard: s.File, Sample: -1, Err: err}
	case n < 2*block:
		return nil, fail(-1, "truncated: the end-of-archive blocks are missing (shard should be %d bytes)", s.Bytes)
	case n > 2*block:
		return nil, fail(-1, "bytes after the end of the archive (shard should be %d bytes)", s.Bytes)
	case !allZero(tail[:2*block]):
		return nil, fail(-1, "the end-of-archive blocks are not zero")
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != s.SHA256 {
		return nil, fail(-1, "sha256 %s, the manifest says %s: the shard is corrupt; delete it and re-run ingest", got, s.SHA256)
	}
	return classes, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func bufioReader(r io.Reader) io.Reader { return bufio.NewReaderSize(r, 1<<20) }

// ShardWriter writes a single shard to a stream: a split's samples from
// First on, in the layout ReadShard checks. Writer writes whole datasets;
// this is for one file of samples kept elsewhere, such as a model
// version's self-test set.
type ShardWriter struct{ w *shardWriter }

// NewShardWriter writes samples of shape sh to w, numbering them from 0.
func NewShardWriter(w io.Writer, sh Shape) *ShardWriter {
	return &ShardWriter{newShardWriter(w, sh, 0)}
}

// Add writes one sample; pixels must be sh.Bytes() long.
func (s *ShardWriter) Add(class int, pixels []byte) error {
	if len(pixels) != s.w.sh.Bytes() {
		return fmt.Errorf("sample %d: %d bytes of pixels, want %d for %s", s.w.n, len(pixels), s.w.sh.Bytes(), s.w.sh)
	}
	if class < 0 || class >= MaxClasses {
		return fmt.Errorf("sample %d: class %d is not below %d", s.w.n, class, MaxClasses)
	}
	return s.w.add(class, pixels)
}

// Samples is the number of samples written so far.
func (s *ShardWriter) Samples() int { return s.w.n }

// Close ends the archive; it does not close the stream.
func (s *ShardWriter) Close() error { return s.w.close() }
