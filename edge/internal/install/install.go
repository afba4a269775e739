// Package install keeps model versions on the device's disk. A version is
// downloaded into a staging directory, verified (manifest digest against
// the pin, signature against trusted keys, every file's sha256 against the
// manifest), and only then renamed into versions/. Activation swaps the
// "current" symlink atomically; the previous versions stay for rollback.
//
// Layout under Dir:
//
//	staging/<hex>-<random>/   downloads in progress (removed at startup)
//	versions/<hex>/           complete, verified versions (hex of the manifest digest)
//	current -> versions/<hex> the active version
//
// A crash at any point leaves either the old or the new version active,
// never a partial one: a version directory appears by rename only after
// its files are fsynced, and "current" changes by rename of a symlink.
package install

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/renameio/v2"

	"github.com/aerie-ml/aerie/internal/manifest"
	"github.com/aerie-ml/aerie/internal/pins"
)

// Store is the part of internal/store the installer reads models through.
type Store interface {
	Get(ctx context.Context, key string) (io.ReadCloser, error)
}

// Errors a caller maps to status reasons.
var (
	// ErrDigestMismatch: manifest.json does not hash to the pin's digest.
	ErrDigestMismatch = errors.New("manifest digest does not match the pin")
	// ErrFileMismatch: a file does not match its manifest entry.
	ErrFileMismatch = errors.New("file does not match the manifest")
	// ErrNotFound: the store has no such version (or file).
	ErrNotFound = errors.New("not in the store")
)

// maxManifest bounds manifest.json and its signature.
const maxManifest = 1 << 20

// Installer manages the versions under Dir.
type Installer struct {
	Dir string
	Log *slog.Logger
	// Now stamps activations; time.Now when nil.
	Now func() time.Time
}

// Version is an installed, verified model version.
type Version struct {
	Hex            string // hex of ManifestDigest; the directory name
	Dir            string
	ManifestDigest string
	Manifest       *manifest.Manifest
	// SignedBy names the key that verified the signature, if any.
	SignedBy string
}

// Weights opens the version's weights file.
func (v *Version) Weights() (*os.File, error) {
	return os.Open(filepath.Join(v.Dir, v.Manifest.Model.Weights))
}

// SelfTestSet opens the version's self-test set.
func (v *Version) SelfTestSet() (*os.File, error) {
	return os.Open(filepath.Join(v.Dir, v.Manifest.SelfTest.File))
}

func (in *Installer) log() *slog.Logger {
	if in.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return in.Log
}

func (in *Installer) now() time.Time {
	if in.Now == nil {
		return time.Now()
	}
	return in.Now()
}

func (in *Installer) versions() string { return filepath.Join(in.Dir, "versions") }
func (in *Installer) staging() string  { return filepath.Join(in.Dir, "staging") }
func (in *Installer) current() string  { return filepath.Join(in.Dir, "current") }

// Init creates the layout and removes what a crash left in staging/.
func (in *Installer) Init() error {
	if err := os.RemoveAll(in.staging()); err != nil {
		return fmt.Errorf("clean %s: %w", in.staging(), err)
	}
	for _, d := range []string{in.versions(), in.staging()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	// A crash between symlink and rename leaves these behind (current.tmp
	// from older agents, renameio's .current* directories).
	os.Remove(in.current() + ".tmp")
	if left, err := filepath.Glob(filepath.Join(in.Dir, ".current*")); err == nil {
		for _, d := range left {
			os.RemoveAll(d)
		}
	}
	return nil
}

// Policy says what a version must carry to be installed.
type Policy struct {
	RequireSignature bool
	Keys             []pins.Key
}

// Install makes the pinned version present and verified under versions/,
// downloading it from st unless it is already there. It does not activate it.
func (in *Installer) Install(ctx context.Context, st Store, pin pins.Version, pol Policy) (*Version, error) {
	h := pins.DigestHex(pin.ManifestDigest)
	if h == "" {
		return nil, fmt.Errorf("pin digest %q: %w", pin.ManifestDigest, ErrDigestMismatch)
	}
	dir := filepath.Join(in.versions(), h)
	if _, err := os.Stat(dir); err == nil {
		v, err := in.verifyDir(dir, pin.ManifestDigest, pol)
		if err == nil {
			return v, nil
		}
		// The disk copy rotted: drop it and download again.
		in.log().Warn("installed version failed verification; downloading again", "version", h, "err", err)
		if err := os.RemoveAll(dir); err != nil {
			return nil, err
		}
	}
	tmp, err := os.MkdirTemp(in.staging(), h+"-*")
	if err != nil {
		return nil, err
	}
	// MkdirTemp makes it 0700; installed versions are readable like the
	// rest of the data directory.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp) // a no-op after the rename
	if err := in.download(ctx, st, pin, pol, tmp); err != nil {
		return nil, err
	}
	v, err := in.verifyDir(tmp, pin.ManifestDigest, pol)
	if err != nil {
		return nil, err
	}
	if err := syncDir(tmp); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, fmt.Errorf("install %s: %w", h, err)
	}
	if err := syncDir(in.versions()); err != nil {
		return nil, err
	}
	v.Dir = dir
	in.log().Info("installed model version", "version", h, "run", v.Manifest.Run, "modelVersion", v.Manifest.Version)
	return v, nil
}

// download fetches manifest.json, its signature and every listed file,
// checking each against its expected digest as it streams in.
func (in *Installer) download(ctx context.Context, st Store, pin pins.Version, pol Policy, dst string) error {
	mb, err := get(ctx, st, manifest.FileName, maxManifest)
	if err != nil {
		return err
	}
	if got := manifest.Digest(mb); got != pin.ManifestDigest {
		return fmt.Errorf("%s %s is %s, pin says %s: %w", pin.URI, manifest.FileName, got, pin.ManifestDigest, ErrDigestMismatch)
	}
	m, err := manifest.Parse(mb)
	if err != nil {
		return fmt.Errorf("%s: %w", pin.URI, err)
	}
	sig, err := get(ctx, st, pins.SignatureFile, maxManifest)
	switch {
	case errors.Is(err, ErrNotFound):
		if pol.RequireSignature {
			return fmt.Errorf("%s: %w", pin.URI, pins.ErrNoSignature)
		}
	case err != nil:
		return err
	default:
		if _, err := pins.VerifySignature(pol.Keys, mb, sig); err != nil && pol.RequireSignature {
			return fmt.Errorf("%s%s: %w", pin.URI, pins.SignatureFile, err)
		}
		if err := writeFile(filepath.Join(dst, pins.SignatureFile), bytes.NewReader(sig)); err != nil {
			return err
		}
	}
	for _, f := range m.Files {
		if err := fetchFile(ctx, st, f, dst); err != nil {
			return fmt.Errorf("%s: %w", pin.URI, err)
		}
	}
	// The manifest goes in last, as the trainer writes it.
	return writeFile(filepath.Join(dst, manifest.FileName), bytes.NewReader(mb))
}

func get(ctx context.Context, st Store, key string, limit int64) ([]byte, error) {
	r, err := st.Get(ctx, key)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w: %w", key, ErrNotFound, err)
		}
		return nil, err
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: more than %d bytes", key, limit)
	}
	return b, nil
}

func fetchFile(ctx context.Context, st Store, f manifest.File, dst string) error {
	r, err := st.Get(ctx, f.Name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: %w: %w", f.Name, ErrNotFound, err)
		}
		return err
	}
	defer r.Close()
	p := filepath.Join(dst, filepath.FromSlash(f.Name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	h := sha256.New()
	// Read one byte past the declared size so a longer file is caught
	// without filling the disk.
	lr := io.LimitReader(io.TeeReader(r, h), f.Size+1)
	if err := writeFile(p, lr); err != nil {
		return fmt.Errorf("download %s: %w", f.Name, err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); fi.Size() != f.Size || got != f.SHA256 {
		return fmt.Errorf("%s: sha256 %s (%d bytes), manifest says %s (%d bytes): %w", f.Name, got, fi.Size(), f.SHA256, f.Size, ErrFileMismatch)
	}
	return nil
}

func writeFile(p string, r io.Reader) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// verifyDir checks a version directory from scratch: digest, signature,
// files. It is what makes a version on disk trustworthy after a restart.
func (in *Installer) verifyDir(dir, digest string, pol Policy) (*Version, error) {
	mb, err := os.ReadFile(filepath.Join(dir, manifest.FileName))
	if err != nil {
		return nil, err
	}
	if got := manifest.Digest(mb); got != digest {
		return nil, fmt.Errorf("%s: %s is %s, want %s: %w", dir, manifest.FileName, got, digest, ErrDigestMismatch)
	}
	m, err := manifest.Parse(mb)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	v := &Version{Hex: pins.DigestHex(digest), Dir: dir, ManifestDigest: digest, Manifest: m}
	sig, err := os.ReadFile(filepath.Join(dir, pins.SignatureFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if pol.RequireSignature {
			return nil, fmt.Errorf("%s: %w", dir, pins.ErrNoSignature)
		}
	case err != nil:
		return nil, err
	default:
		v.SignedBy, err = pins.VerifySignature(pol.Keys, mb, sig)
		if err != nil && pol.RequireSignature {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, pins.SignatureFile), err)
		}
	}
	if err := m.Verify(os.DirFS(dir)); err != nil {
		return nil, fmt.Errorf("%s: %w: %w", dir, ErrFileMismatch, err)
	}
	return v, nil
}

// Open returns an installed version after verifying it again.
func (in *Installer) Open(h string, pol Policy) (*Version, error) {
	return in.verifyDir(filepath.Join(in.versions(), h), "sha256:"+h, pol)
}

// Current returns the hex of the active version, or "" when none is.
func (in *Installer) Current() (string, error) {
	target, err := os.Readlink(in.current())
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return filepath.Base(target), nil
}

// Activate points "current" at an installed version atomically and marks
// it as the most recently activated.
func (in *Installer) Activate(h string) error {
	dir := filepath.Join(in.versions(), h)
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("activate %s: %w", h, err)
	}
	now := in.now()
	if err := os.Chtimes(dir, now, now); err != nil {
		return err
	}
	if err := renameio.Symlink(filepath.Join("versions", h), in.current()); err != nil {
		return fmt.Errorf("activate %s: %w", h, err)
	}
	if err := syncDir(in.Dir); err != nil {
		return err
	}
	in.log().Info("activated model version", "version", h)
	return nil
}

// Deactivate removes the "current" link (no model active).
func (in *Installer) Deactivate() error {
	err := os.Remove(in.current())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// Installed lists installed versions, most recently activated first.
func (in *Installer) Installed() ([]string, error) {
	entries, err := os.ReadDir(in.versions())
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	type item struct {
		h string
		t time.Time
	}
	var items []item
	for _, e := range entries {
		if !e.IsDir() || pins.DigestHex("sha256:"+e.Name()) == "" {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		items = append(items, item{e.Name(), fi.ModTime()})
	}
	slices.SortStableFunc(items, func(a, b item) int {
		if c := b.t.Compare(a.t); c != 0 {
			return c
		}
		return strings.Compare(a.h, b.h)
	})
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.h
	}
	return out, nil
}

// Remove deletes an installed version that is not active (e.g. one that
// failed its self-test), so rollback never picks it.
func (in *Installer) Remove(h string) error {
	if cur, _ := in.Current(); cur == h {
		return fmt.Errorf("remove %s: it is the active version", h)
	}
	return os.RemoveAll(filepath.Join(in.versions(), h))
}

// Prune keeps the active version, the keep-1 most recently activated
// others and the versions in protect; it removes the rest.
func (in *Installer) Prune(keep int, protect ...string) error {
	all, err := in.Installed()
	if err != nil {
		return err
	}
	cur, err := in.Current()
	if err != nil {
		return err
	}
	kept := 0
	if cur != "" {
		kept = 1
	}
	for _, h := range all {
		if h == cur || slices.Contains(protect, h) {
			continue
		}
		if kept < keep {
			kept++
			continue
		}
		if err := os.RemoveAll(filepath.Join(in.versions(), h)); err != nil {
			return err
		}
		in.log().Info("pruned model version", "version", h)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
