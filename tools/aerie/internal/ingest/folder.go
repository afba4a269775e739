package ingest

import (
	"bytes"
	"fmt"
	"image"
	_ "image/jpeg" // decoders for ImageFolder sources
	_ "image/png"
	"io/fs"
	"maps"
	"math"
	"path"
	"slices"
	"strings"

	"github.com/aerie-ml/aerie/internal/dataset"
	"github.com/aerie-ml/aerie/internal/pixels"
	"github.com/aerie-ml/aerie/internal/repofile"
)

// maxPixels bounds the decoded size of one source image, checked from its
// header before decoding (a 64-megapixel image decodes to 256 MiB).
const maxPixels = 64 << 20

var imageExts = []string{".png", ".jpg", ".jpeg"}

// item is one source image.
type item struct {
	split string
	class int
	rel   string // path in the source tree
}

// folder is an ImageFolder tree, listed and checked.
type folder struct {
	classes []string
	items   map[string][]item // by split
}

// listFolder lists an ImageFolder tree: <root>/{train,test}/<class>/<image>
// or, when there is no train directory, <root>/<class>/<image> with a seeded
// per-class test split of testFraction. Every entry must be a directory or
// an image where expected; a symlink, an empty class, a class of test that
// train lacks and two images with one key (name without extension) are
// errors naming the path.
func listFolder(tree *repofile.Tree, testFraction float64, seed uint64) (*folder, error) {
	top, err := tree.ReadDir(".")
	if err != nil {
		return nil, err
	}
	hasTrain := slices.ContainsFunc(top, func(e fs.DirEntry) bool { return e.Name() == "train" })
	f := &folder{items: map[string][]item{}}
	if hasTrain {
		for _, e := range top {
			if e.Name() != "train" && e.Name() != "test" {
				return nil, fmt.Errorf("%s: unexpected beside train/ and test/ (a tree with train/ holds only train/ and test/)", tree.Path(e.Name()))
			}
			if !e.IsDir() {
				return nil, fmt.Errorf("%s: is not a directory", tree.Path(e.Name()))
			}
		}
		train, err := listClasses(tree, "train")
		if err != nil {
			return nil, err
		}
		f.classes = slices.Sorted(maps.Keys(train))
		f.items["train"] = flatten("train", f.classes, train)
		if slices.ContainsFunc(top, func(e fs.DirEntry) bool { return e.Name() == "test" }) {
			test, err := listClasses(tree, "test")
			if err != nil {
				return nil, err
			}
			for c := range test {
				if !slices.Contains(f.classes, c) {
					return nil, fmt.Errorf("%s: class %q is in test/ but not in train/", tree.Path("test/"+c), c)
				}
			}
			f.items["test"] = flatten("test", f.classes, test)
		}
		return f, nil
	}
	all, err := listClasses(tree, ".")
	if err != nil {
		return nil, err
	}
	f.classes = slices.Sorted(maps.Keys(all))
	for ci, c := range f.classes {
		files := all[c]
		nTest := int(math.Round(testFraction * float64(len(files))))
		if nTest >= len(files) && nTest > 0 {
			return nil, fmt.Errorf("%s: %d images leave none for training with a test fraction of %v", tree.Path(c), len(files), testFraction)
		}
		perm := dataset.Permute(seed, uint64(ci)<<1|1, len(files))
		for k, p := range perm {
			sp := "train"
			if k < nTest {
				sp = "test"
			}
			f.items[sp] = append(f.items[sp], item{split: sp, class: ci, rel: files[p]})
		}
	}
	return f, nil
}

func flatten(split string, classes []string, files map[string][]string) []item {
	var out []item
	for ci, c := range classes {
		for _, rel := range files[c] {
			out = append(out, item{split: split, class: ci, rel: rel})
		}
	}
	return out
}

// listClasses lists dir's class directories and their images, sorted.
func listClasses(tree *repofile.Tree, dir string) (map[string][]string, error) {
	entries, err := tree.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("%s: no class directories", tree.Path(dir))
	}
	out := map[string][]string{}
	for _, e := range entries {
		rel := path.Join(dir, e.Name())
		if !e.IsDir() {
			return nil, fmt.Errorf("%s: is not a class directory (%s)", tree.Path(rel), e.Type())
		}
		files, err := tree.ReadDir(rel)
		if err != nil {
			return nil, err
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("%s: empty class folder", tree.Path(rel))
		}
		keys := map[string]string{}
		for _, fe := range files {
			frel := path.Join(rel, fe.Name())
			if !fe.Type().IsRegular() {
				return nil, fmt.Errorf("%s: is %s, want a regular image file (symlinks and directories are refused)", tree.Path(frel), kind(fe.Type()))
			}
			ext := strings.ToLower(path.Ext(fe.Name()))
			if !slices.Contains(imageExts, ext) {
				return nil, fmt.Errorf("%s: not an image file (want .png, .jpg or .jpeg)", tree.Path(frel))
			}
			key := strings.TrimSuffix(fe.Name(), path.Ext(fe.Name()))
			if other, dup := keys[key]; dup {
				return nil, fmt.Errorf("%s and %s: duplicate key %q (one image per name)", tree.Path(other), tree.Path(frel), path.Join(rel, key))
			}
			keys[key] = frel
			out[e.Name()] = append(out[e.Name()], frel)
		}
		slices.Sort(out[e.Name()])
	}
	return out, nil
}

func kind(m interface{ String() string }) string {
	s := m.String()
	switch {
	case strings.HasPrefix(s, "L"):
		return "a symlink"
	case strings.HasPrefix(s, "d"):
		return "a directory"
	}
	return "not a regular file (" + s + ")"
}

// header is what a source image's header says.
type header struct {
	h, w int
	grey bool
}

// readImage reads rel, at most maxBytes, and checks its header.
func readImage(tree *repofile.Tree, rel string, maxBytes int64) ([]byte, header, error) {
	b, err := tree.ReadFile(rel, maxBytes)
	if err != nil {
		return nil, header{}, err
	}
	if len(b) == 0 {
		return nil, header{}, fmt.Errorf("%s: empty file", tree.Path(rel))
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return nil, header{}, fmt.Errorf("%s: not a readable PNG or JPEG: %w", tree.Path(rel), err)
	}
	if cfg.Width < 1 || cfg.Height < 1 {
		return nil, header{}, fmt.Errorf("%s: %s of %dx%d pixels", tree.Path(rel), format, cfg.Width, cfg.Height)
	}
	if int64(cfg.Width)*int64(cfg.Height) > maxPixels {
		return nil, header{}, fmt.Errorf("%s: %dx%d is more than %d pixels", tree.Path(rel), cfg.Width, cfg.Height, maxPixels)
	}
	return b, header{h: cfg.Height, w: cfg.Width, grey: pixels.IsGrey(cfg.ColorModel)}, nil
}

// decode decodes an image readImage checked.
func decode(tree *repofile.Tree, rel string, b []byte) (image.Image, error) {
	img, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: decode: %w", tree.Path(rel), err)
	}
	return img, nil
}
