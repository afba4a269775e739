package ingest

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"image"
	"io"

	"github.com/aerie-ml/aerie/internal/fmnist"
	"github.com/aerie-ml/aerie/internal/repofile"
)

// maxIDXBytes bounds one IDX file, compressed or not (Fashion-MNIST's
// training images are 47 MB).
const maxIDXBytes = 1 << 30

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
		{"test", fmnist.TestImages, fmnist.TestLabels},
		{"train", fmnist.TrainImages, fmnist.TrainLabels},
	} {
		imgName, b, err := readMaybeGzip(tree, sp.images)
		if err != nil {
			return nil, err
		}
		images, n, rows, cols, err := fmnist.ReadImages(bytes.NewReader(b))
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

// readLabels parses an IDX1 file of unsigned bytes, each below numClasses.
func readLabels(b []byte, numClasses int) ([]byte, error) {
	if len(b) < 8 || b[0] != 0 || b[1] != 0 || b[2] != 0x08 || b[3] != 1 {
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
