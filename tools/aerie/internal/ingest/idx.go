package ingest

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"image"
	"io"

	"github.com/aerie-ml/aerie/internal/repofile"
)

// maxIDXBytes bounds one IDX file, compressed or not (Fashion-MNIST's
// training images are 47 MB).
const maxIDXBytes = 1 << 30

// DebianDir is where Debian's dataset-fashion-mnist package installs
// Fashion-MNIST, the default source.
const DebianDir = "/usr/share/datasets/fashion-mnist"

// FashionMNISTClasses names Fashion-MNIST's labels in order: the classes
// of an IDX source named fashion-mnist without --classes.
var FashionMNISTClasses = []string{
	"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
	"Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
}

// The IDX files of a source, named as Fashion-MNIST's (and MNIST's); each
// may be gzipped, as <name>.gz.
const (
	TrainImages = "train-images-idx3-ubyte"
	TrainLabels = "train-labels-idx1-ubyte"
	TestImages  = "t10k-images-idx3-ubyte"
	TestLabels  = "t10k-labels-idx1-ubyte"
)

// idxUint8 is the IDX type code of unsigned bytes, the only one read.
const idxUint8 = 0x08

// idxSplit is one split of an IDX dataset held in memory.
type idxSplit struct {
	name       string
	images     []byte
	labels     []byte
	rows, cols int
}

// readIDXDir reads the four Fashion-MNIST-named IDX files of tree.
func readIDXDir(tree *repofile.Tree, numClasses int) ([]idxSplit, error) {
	var out []idxSplit
	for _, sp := range []struct{ name, images, labels string }{
		{"test", TestImages, TestLabels},
		{"train", TrainImages, TrainLabels},
	} {
		imgName, b, err := readMaybeGzip(tree, sp.images)
		if err != nil {
			return nil, err
		}
		images, n, rows, cols, err := readImages(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", tree.Path(imgName), err)
		}
		lblName, b, err := readMaybeGzip(tree, sp.labels)
		if err != nil {
			return nil, err
		}
		labels, err := readLabels(b, numClasses)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", tree.Path(lblName), err)
		}
		if len(labels) != n {
			return nil, fmt.Errorf("%s: %d labels for the %d images of %s", tree.Path(lblName), len(labels), n, imgName)
		}
		out = append(out, idxSplit{name: sp.name, images: images, labels: labels, rows: rows, cols: cols})
	}
	return out, nil
}

func (s *idxSplit) image(i int) *image.Gray {
	n := s.rows * s.cols
	return &image.Gray{Pix: s.images[i*n : (i+1)*n], Stride: s.cols, Rect: image.Rect(0, 0, s.cols, s.rows)}
}

// readMaybeGzip reads base.gz (gunzipped) or base from tree.
func readMaybeGzip(tree *repofile.Tree, base string) (string, []byte, error) {
	for _, name := range []string{base + ".gz", base} {
		if _, err := tree.Stat(name); err != nil {
			continue
		}
		b, err := tree.ReadFile(name, maxIDXBytes)
		if err != nil {
			return name, nil, err
		}
		if name == base {
			return name, b, nil
		}
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return name, nil, fmt.Errorf("%s: gzip: %w", tree.Path(name), err)
		}
		out, err := io.ReadAll(io.LimitReader(zr, maxIDXBytes+1))
		if err != nil {
			return name, nil, fmt.Errorf("%s: gzip: %w", tree.Path(name), err)
		}
		if len(out) > maxIDXBytes {
			return name, nil, fmt.Errorf("%s: more than %d bytes uncompressed", tree.Path(name), maxIDXBytes)
		}
		return name, out, nil
	}
	return base, nil, fmt.Errorf("%s[.gz]: no such file", tree.Path(base))
}

// readImages parses an IDX3 file of unsigned bytes: n images of rows×cols
// pixels.
func readImages(b []byte) (images []byte, n, rows, cols int, err error) {
	if len(b) < 16 || b[0] != 0 || b[1] != 0 || b[2] != idxUint8 || b[3] != 3 {
		return nil, 0, 0, 0, fmt.Errorf("not an IDX3 file of unsigned bytes")
	}
	dims := [3]uint64{}
	for i := range dims {
		dims[i] = uint64(binary.BigEndian.Uint32(b[4+4*i:]))
	}
	if dims[0] == 0 || dims[1] == 0 || dims[2] == 0 {
		return nil, 0, 0, 0, fmt.Errorf("header says %dx%dx%d images: a dimension is 0", dims[0], dims[1], dims[2])
	}
	// Dimensions are below 2^32, and rows×cols is at most the file's size
	// before the full product is taken: no product overflows.
	if size := uint64(len(b) - 16); dims[1]*dims[2] > size || dims[0]*dims[1]*dims[2] != size {
		return nil, 0, 0, 0, fmt.Errorf("header says %d images of %dx%d, the file holds %d pixel bytes", dims[0], dims[1], dims[2], size)
	}
	return b[16:], int(dims[0]), int(dims[1]), int(dims[2]), nil
}

// readLabels parses an IDX1 file of unsigned bytes, each below numClasses.
func readLabels(b []byte, numClasses int) ([]byte, error) {
	if len(b) < 8 || b[0] != 0 || b[1] != 0 || b[2] != idxUint8 || b[3] != 1 {
		return nil, fmt.Errorf("not an IDX1 file of unsigned bytes")
	}
	n := binary.BigEndian.Uint32(b[4:8])
	if uint64(len(b)-8) != uint64(n) {
		return nil, fmt.Errorf("header says %d labels, the file holds %d", n, len(b)-8)
	}
	labels := b[8:]
	for i, l := range labels {
		if int(l) >= numClasses {
			return nil, fmt.Errorf("label %d is %d, but there are %d classes (pass --classes)", i, l, numClasses)
		}
	}
	return labels, nil
}

// WriteIDXImages writes n = len(images)/(rows×cols) images as an
// uncompressed IDX3 file: test data and fixtures in Fashion-MNIST's format.
func WriteIDXImages(w io.Writer, images []byte, rows, cols int) error {
	if rows*cols == 0 || len(images)%(rows*cols) != 0 {
		return fmt.Errorf("%d bytes is not a whole number of %dx%d images", len(images), rows, cols)
	}
	return writeIDX(w, images, len(images)/(rows*cols), rows, cols)
}

// WriteIDXLabels writes labels as an uncompressed IDX1 file.
func WriteIDXLabels(w io.Writer, labels []byte) error { return writeIDX(w, labels, len(labels)) }

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
