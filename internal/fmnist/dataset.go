package fmnist

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
)

// DebianDir is where Debian's dataset-fashion-mnist package installs the data.
const DebianDir = "/usr/share/datasets/fashion-mnist"

// NumClasses is the number of Fashion-MNIST classes.
const NumClasses = 10

// Classes names the labels in order.
var Classes = [NumClasses]string{
	"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
	"Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
}

// The four files of the dataset, by their base names without ".gz".
const (
	TrainImages = "train-images-idx3-ubyte"
	TrainLabels = "train-labels-idx1-ubyte"
	TestImages  = "t10k-images-idx3-ubyte"
	TestLabels  = "t10k-labels-idx1-ubyte"
)

// Files lists the dataset's files in a fixed order.
var Files = []string{TrainImages, TrainLabels, TestImages, TestLabels}

// Split is a set of labelled images.
type Split struct {
	Images     []byte // N×Rows×Cols pixels, row-major
	Labels     []byte
	Rows, Cols int
}

// Len returns the number of examples.
func (s *Split) Len() int { return len(s.Labels) }

// Image returns the pixels of example i.
func (s *Split) Image(i int) []byte {
	n := s.Rows * s.Cols
	return s.Images[i*n : (i+1)*n]
}

// Dataset is Fashion-MNIST's training and test splits.
type Dataset struct {
	Train, Test Split
	// Digest is the dataset digest (see Digest) of the files read.
	Digest string
}

// FileError names the dataset file a problem was found in.
type FileError struct {
	File string
	Err  error
}

func (e *FileError) Error() string { return e.File + ": " + e.Err.Error() }
func (e *FileError) Unwrap() error { return e.Err }

// ErrDigestMismatch reports a dataset whose digest is not the one declared.
var ErrDigestMismatch = errors.New("dataset digest mismatch")

// Resolve returns the name under which file is present in fsys: base+".gz"
// or base.
func Resolve(fsys fs.FS, base string) (string, error) {
	for _, name := range []string{base + ".gz", base} {
		if _, err := fs.Stat(fsys, name); err == nil {
			return name, nil
		}
	}
	return "", fmt.Errorf("%s[.gz]: %w", base, fs.ErrNotExist)
}

// Load reads the four files from fsys, gzipped or not. When want is not
// empty it must equal the dataset's digest; the data is checked before it
// is parsed, so a mismatch never yields a partly read dataset.
func Load(fsys fs.FS, want string) (*Dataset, error) {
	names := make([]string, len(Files))
	contents := make(map[string][]byte, len(Files))
	for i, base := range Files {
		name, err := Resolve(fsys, base)
		if err != nil {
			return nil, err
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, &FileError{name, err}
		}
		names[i], contents[name] = name, b
	}
	digest := Digest(contents)
	if want != "" && !strings.EqualFold(digest, want) {
		return nil, fmt.Errorf("%w: files %s hash to %s, declared %s", ErrDigestMismatch, strings.Join(names, ", "), digest, want)
	}
	ds := &Dataset{Digest: digest}
	var err error
	if ds.Train, err = readSplit(contents, names[0], names[1]); err != nil {
		return nil, err
	}
	if ds.Test, err = readSplit(contents, names[2], names[3]); err != nil {
		return nil, err
	}
	return ds, nil
}

func readSplit(contents map[string][]byte, imagesName, labelsName string) (Split, error) {
	images, n, rows, cols, err := ReadImages(bytes.NewReader(contents[imagesName]))
	if err != nil {
		return Split{}, &FileError{imagesName, err}
	}
	labels, err := ReadLabels(bytes.NewReader(contents[labelsName]))
	if err != nil {
		return Split{}, &FileError{labelsName, err}
	}
	if len(labels) != n {
		return Split{}, &FileError{labelsName, fmt.Errorf("%d labels for %d images in %s", len(labels), n, imagesName)}
	}
	return Split{Images: images, Labels: labels, Rows: rows, Cols: cols}, nil
}

// Digest is the dataset digest: the hex sha256 of the sha256sum-style
// listing ("<hex sha256>  <name>\n" per file, sorted by name) of files.
// It pins the exact bytes of every file, whichever way they are stored.
func Digest(files map[string][]byte) string {
	sums := make(map[string]string, len(files))
	for name, b := range files {
		sum := sha256.Sum256(b)
		sums[name] = hex.EncodeToString(sum[:])
	}
	return DigestOfSums(sums)
}

// DigestOfSums computes Digest from each file's hex sha256, for callers
// that stream the files.
func DigestOfSums(sums map[string]string) string {
	names := make([]string, 0, len(sums))
	for name := range sums {
		names = append(names, name)
	}
	slices.Sort(names)
	h := sha256.New()
	for _, name := range names {
		io.WriteString(h, sums[name]+"  "+name+"\n")
	}
	return hex.EncodeToString(h.Sum(nil))
}
