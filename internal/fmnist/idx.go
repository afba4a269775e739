// Package fmnist reads and writes Fashion-MNIST in the IDX format, gzipped
// or not, and computes the dataset digest that run declarations pin.
package fmnist

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// IDX type code for unsigned bytes, the only element type Fashion-MNIST uses.
const idxUint8 = 0x08

// maxIDXBytes bounds what a header may ask us to allocate (the training
// images are 47 MB).
const maxIDXBytes = 1 << 30

var gzipMagic = []byte{0x1f, 0x8b}

// decompress returns r's content, gunzipped if it starts with the gzip magic.
func decompress(r io.Reader) (io.Reader, error) {
	br := bufio.NewReader(r)
	head, err := br.Peek(2)
	if err == nil && bytes.Equal(head, gzipMagic) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return zr, nil
	}
	return br, nil
}

// readIDXHeader parses the header of an IDX file of unsigned bytes, gzipped
// or not, and returns its dimensions, its data size and a reader positioned
// at the data.
func readIDXHeader(r io.Reader) (dims []int, size int, data io.Reader, err error) {
	r, err = decompress(r)
	if err != nil {
		return nil, 0, nil, err
	}
	var magic [4]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil {
		return nil, 0, nil, fmt.Errorf("header: %w", noEOF(err))
	}
	if magic[0] != 0 || magic[1] != 0 {
		return nil, 0, nil, fmt.Errorf("not an IDX file: magic %x", magic)
	}
	if magic[2] != idxUint8 {
		return nil, 0, nil, fmt.Errorf("element type 0x%02x, want 0x08 (unsigned byte)", magic[2])
	}
	n := int(magic[3])
	if n < 1 || n > 3 {
		return nil, 0, nil, fmt.Errorf("%d dimensions, want 1 to 3", n)
	}
	dims = make([]int, n)
	size = 1
	for i := range dims {
		var d uint32
		if err := binary.Read(r, binary.BigEndian, &d); err != nil {
			return nil, 0, nil, fmt.Errorf("dimension %d: %w", i, noEOF(err))
		}
		dims[i] = int(d)
		if d == 0 || size > maxIDXBytes/int(d) {
			return nil, 0, nil, fmt.Errorf("dimension %d is %d: size out of range", i, d)
		}
		size *= int(d)
	}
	return dims, size, r, nil
}

// readIDX parses an IDX file of unsigned bytes, gzipped or not, and returns
// its dimensions and data.
func readIDX(r io.Reader) (dims []int, data []byte, err error) {
	dims, size, r, err := readIDXHeader(r)
	if err != nil {
		return nil, nil, err
	}
	data = make([]byte, size)
	if got, err := io.ReadFull(r, data); err != nil {
		return nil, nil, fmt.Errorf("truncated: %d of %d data bytes: %w", got, size, noEOF(err))
	}
	if extra, _ := io.Copy(io.Discard, io.LimitReader(r, 1)); extra != 0 {
		return nil, nil, fmt.Errorf("trailing bytes after %d data bytes", size)
	}
	return dims, data, nil
}

// ImageStream reads the images of an IDX3 file one at a time, for callers
// that cannot hold the whole file in memory.
type ImageStream struct {
	N, Rows, Cols int
	r             io.Reader
	read          int
}

// NewImageStream parses r's IDX3 header.
func NewImageStream(r io.Reader) (*ImageStream, error) {
	dims, _, data, err := readIDXHeader(r)
	if err != nil {
		return nil, err
	}
	if len(dims) != 3 {
		return nil, fmt.Errorf("images need 3 dimensions, got %d", len(dims))
	}
	return &ImageStream{N: dims[0], Rows: dims[1], Cols: dims[2], r: data}, nil
}

// Next reads the next image into img (Rows×Cols bytes). It returns io.EOF
// after the last one.
func (s *ImageStream) Next(img []byte) error {
	if len(img) != s.Rows*s.Cols {
		return fmt.Errorf("buffer of %d bytes for %d×%d images", len(img), s.Rows, s.Cols)
	}
	if s.read == s.N {
		return io.EOF
	}
	if _, err := io.ReadFull(s.r, img); err != nil {
		return fmt.Errorf("truncated: image %d of %d: %w", s.read, s.N, noEOF(err))
	}
	s.read++
	return nil
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// ReadImages parses an IDX3 image file into n images of rows×cols pixels.
func ReadImages(r io.Reader) (images []byte, n, rows, cols int, err error) {
	dims, data, err := readIDX(r)
	if err != nil {
		return nil, 0, 0, 0, err
	}
	if len(dims) != 3 {
		return nil, 0, 0, 0, fmt.Errorf("images need 3 dimensions, got %d", len(dims))
	}
	return data, dims[0], dims[1], dims[2], nil
}

// ReadLabels parses an IDX1 label file, checking every label is a class.
func ReadLabels(r io.Reader) ([]byte, error) {
	dims, data, err := readIDX(r)
	if err != nil {
		return nil, err
	}
	if len(dims) != 1 {
		return nil, fmt.Errorf("labels need 1 dimension, got %d", len(dims))
	}
	for i, l := range data {
		if int(l) >= NumClasses {
			return nil, fmt.Errorf("label %d is %d, want 0 to %d", i, l, NumClasses-1)
		}
	}
	return data, nil
}

// WriteImages writes images as an uncompressed IDX3 file.
func WriteImages(w io.Writer, images []byte, rows, cols int) error {
	if rows*cols == 0 || len(images)%(rows*cols) != 0 {
		return fmt.Errorf("%d bytes is not a whole number of %dx%d images", len(images), rows, cols)
	}
	return writeIDX(w, images, len(images)/(rows*cols), rows, cols)
}

// WriteLabels writes labels as an uncompressed IDX1 file.
func WriteLabels(w io.Writer, labels []byte) error {
	return writeIDX(w, labels, len(labels))
}

func writeIDX(w io.Writer, data []byte, dims ...int) error {
	hdr := []byte{0, 0, idxUint8, byte(len(dims))}
	for _, d := range dims {
		hdr = binary.BigEndian.AppendUint32(hdr, uint32(d))
	}
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	_, err := w.Write(data)
	return err
}
