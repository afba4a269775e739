package data

import (
	"bytes"
	"compress/gzip"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/aerie-ml/aerie/internal/fmnist"
)

// Synthetic returns the four IDX files (gzipped, by file name) of a tiny
// learnable stand-in for Fashion-MNIST, for tests: class k is a bright bar
// in row band k over noise, jittered by a pixel.
func Synthetic(nTrain, nTest int, seed uint64) map[string][]byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	split := func(n int) ([]byte, []byte) {
		imgs := make([]byte, n*ImageSize)
		labels := make([]byte, n)
		for i := range n {
			k := rng.IntN(fmnist.NumClasses)
			labels[i] = byte(k)
			img := imgs[i*ImageSize : (i+1)*ImageSize]
			for j := range img {
				img[j] = byte(rng.IntN(60))
			}
			row := 2 + 2*k + rng.IntN(3) - 1
			for x := 4; x < 24; x++ {
				img[row*28+x] = 200 + byte(rng.IntN(56))
			}
		}
		return imgs, labels
	}
	files := map[string][]byte{}
	gz := func(name string, write func(*bytes.Buffer) error) {
		var raw, z bytes.Buffer
		if err := write(&raw); err != nil {
			panic(err)
		}
		zw, _ := gzip.NewWriterLevel(&z, gzip.BestSpeed)
		zw.Write(raw.Bytes())
		zw.Close()
		files[name+".gz"] = z.Bytes()
	}
	for _, sp := range []struct {
		imgs, labels string
		n            int
	}{{fmnist.TrainImages, fmnist.TrainLabels, nTrain}, {fmnist.TestImages, fmnist.TestLabels, nTest}} {
		imgs, labels := split(sp.n)
		gz(sp.imgs, func(b *bytes.Buffer) error { return fmnist.WriteImages(b, imgs, 28, 28) })
		gz(sp.labels, func(b *bytes.Buffer) error { return fmnist.WriteLabels(b, labels) })
	}
	return files
}

// WriteSynthetic writes Synthetic's files into dir and returns their
// dataset digest.
func WriteSynthetic(dir string, nTrain, nTest int, seed uint64) (string, error) {
	files := Synthetic(nTrain, nTest, seed)
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return "", err
		}
	}
	return fmnist.Digest(files), nil
}
