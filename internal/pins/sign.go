package pins

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// SignatureFile is the name, next to manifest.json in a model version
// directory, of the manifest's ed25519 signature: the base64 (standard
// encoding) of ed25519.Sign(key, manifest.json bytes), plus a newline.
const SignatureFile = "manifest.json.sig"

// ErrNoSignature reports a version without manifest.json.sig.
var ErrNoSignature = errors.New("no " + SignatureFile)

// ErrBadSignature reports a signature no trusted key verifies.
var ErrBadSignature = errors.New("signature not verified by any trusted key")

// Sign returns the content of manifest.json.sig for manifest.
func Sign(key ed25519.PrivateKey, manifest []byte) []byte {
	sig := ed25519.Sign(key, manifest)
	return []byte(base64.StdEncoding.EncodeToString(sig) + "\n")
}

// Key is a trusted public key and the file it came from.
type Key struct {
	Name string
	Key  ed25519.PublicKey
}

// ParsePublicKey reads an ed25519 public key: PEM "PUBLIC KEY" (PKIX, as
// `openssl pkey -pubout` writes it) or the base64 of the 32 raw bytes.
func ParsePublicKey(data []byte) (ed25519.PublicKey, error) {
	if block, _ := pem.Decode(data); block != nil {
		if block.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("PEM block %q, want PUBLIC KEY", block.Type)
		}
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, err
		}
		ek, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("%T is not an ed25519 key", k)
		}
		return ek, nil
	}
	raw, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(data)))
	if err != nil {
		return nil, fmt.Errorf("neither PEM nor base64: %w", err)
	}
	if len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%d bytes, want %d", len(raw), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(raw), nil
}

// LoadKeys reads every dir/*.pub in fsys, in name order.
func LoadKeys(fsys fs.FS, dir string) ([]Key, error) {
	names, err := fs.Glob(fsys, path.Join(dir, "*.pub"))
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	keys := make([]Key, 0, len(names))
	for _, name := range names {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		k, err := ParsePublicKey(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		keys = append(keys, Key{Name: name, Key: k})
	}
	return keys, nil
}

// VerifySignature checks sig (the content of manifest.json.sig) over
// manifest against keys and returns the name of the key that verified it.
func VerifySignature(keys []Key, manifest, sig []byte) (string, error) {
	if len(keys) == 0 {
		return "", fmt.Errorf("%w: no keys in %s", ErrBadSignature, KeysDir)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(sig)))
	if err != nil || len(raw) != ed25519.SignatureSize {
		return "", fmt.Errorf("%w: %s is not the base64 of a %d-byte signature", ErrBadSignature, SignatureFile, ed25519.SignatureSize)
	}
	for _, k := range keys {
		if ed25519.Verify(k.Key, manifest, raw) {
			return k.Name, nil
		}
	}
	return "", ErrBadSignature
}
