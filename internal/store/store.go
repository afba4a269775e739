// Package store keeps aerie's datasets, checkpoints, models and device status
// in Google Cloud Storage (gs://bucket[/prefix]) or in a local directory
// (file:///path), behind one small interface.
//
// # Layout
//
// Keys are slash-separated and relative to the store's root URI:
//
//	datasets/<name>/<sha256>/...   DatasetPrefix: a dataset, by its content digest
//	teams/<team>/                  TeamRoot: a team's part, which holds
//	  checkpoints/<run>/<step>/... CheckpointPrefix: a training checkpoint
//	  models/<run>/<version>/...   ModelPrefix: a model version (manifest.json last)
//	status/devices/<id>.json       DeviceStatusKey: the latest status of an edge device
//
// Datasets, checkpoints and model versions are immutable: write them with
// PutOptions{IfNotExists: true}. Device status is overwritten in place.
//
// # Guarantees
//
//   - Atomic, no-clobber writes. An object appears under its key complete or
//     not at all; a failed, cancelled or crashed Put leaves nothing under the
//     key. With IfNotExists exactly one of several racing writers wins, the
//     others get ErrExists. On gs:// this is a DoesNotExist generation
//     precondition; on file:// a temporary file in the key's directory,
//     fsynced, then renamed into place with RENAME_NOREPLACE (or hard-linked,
//     where the file system lacks it), then the directory fsynced.
//   - Checksums. Every object's CRC32C is computed while it is written and
//     verified on every read: Get's reader fails with ErrCorrupt at the end of
//     the object when the bytes do not match. On gs:// the CRC32C is sent with
//     the upload, so GCS rejects an upload corrupted in transit; on file:// it
//     is kept in the object file's user.aerie.crc32c extended attribute, set
//     before the file is renamed into place, so object and checksum are
//     committed together (copy file:// stores with cp -a or rsync -X).
//   - Streaming. Put and Get stream; nothing buffers a whole object (the GCS
//     client buffers one upload chunk, 16 MiB at most, to retry it).
//   - Retries. Transient GCS errors are retried with exponential backoff.
//     Creates with IfNotExists are safe to retry and use RetryAlways;
//     unconditional writes use RetryIdempotent, which does not retry them,
//     because a retried overwrite could silently replace a newer object that
//     another writer stored in between.
//
// Errors are *Error values naming the operation and the URI; test them with
// errors.Is against ErrNotExist, ErrExists, ErrPermission and ErrCorrupt.
// They carry internal/exitcode codes: bad URIs, missing buckets and denied
// access are exitcode.Config, corrupt objects exitcode.Data, other storage
// failures exitcode.StorageDown (retryable).
package store

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"time"

	"cloud.google.com/go/storage"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/api/option"

	"github.com/aerie-ml/aerie/internal/exitcode"
)

// Store is a bucket (or directory) of immutable, checksummed objects.
type Store interface {
	// Put stores r's content under key, atomically.
	Put(ctx context.Context, key string, r io.Reader, opts PutOptions) error
	// Get opens key for reading. The reader verifies the object's CRC32C and
	// size when it reaches the end and fails with ErrCorrupt if they differ.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// Stat returns key's size and CRC32C without reading it.
	Stat(ctx context.Context, key string) (Object, error)
	// List returns the objects whose keys start with prefix (a plain string
	// prefix, as in GCS), sorted by key.
	List(ctx context.Context, prefix string) ([]Object, error)
	// Delete removes key; ErrNotExist if there is none.
	Delete(ctx context.Context, key string) error
	// URI returns the URI of key (of the root for ""), e.g. gs://b/p/key.
	URI(key string) string
	// Close releases the store's client.
	Close() error
}

// PutOptions control a Put.
type PutOptions struct {
	// IfNotExists makes Put fail with ErrExists if key already exists, so
	// that two writers cannot clobber each other.
	IfNotExists bool
}

// Object describes a stored object.
type Object struct {
	Key    string // relative to the store's root
	Size   int64
	CRC32C uint32 // Castagnoli
}

// sentinel is an error that also matches its io/fs counterpart, so that
// store errors work with code written against fs.FS, and ErrPermanent when
// retrying cannot fix it.
type sentinel struct {
	msg       string
	fs        error
	permanent bool
}

func (e *sentinel) Error() string { return e.msg }
func (e *sentinel) Is(target error) bool {
	return target != nil && target == e.fs || e.permanent && target == ErrPermanent
}

var (
	// ErrNotExist: no object under the key (or no such bucket). It matches
	// fs.ErrNotExist too.
	ErrNotExist error = &sentinel{msg: "object does not exist", fs: fs.ErrNotExist}
	// ErrExists: Put with IfNotExists found the key taken. It matches
	// fs.ErrExist too.
	ErrExists error = &sentinel{msg: "object already exists", fs: fs.ErrExist}
	// ErrPermission: the credentials may not do this. It matches
	// fs.ErrPermission and ErrPermanent too.
	ErrPermission error = &sentinel{msg: "permission denied", fs: fs.ErrPermission, permanent: true}
	// ErrCorrupt: an object's content does not match its stored checksum.
	// It matches ErrPermanent too.
	ErrCorrupt error = &sentinel{msg: "object is corrupt", permanent: true}
	// ErrBadURI: a URI or key that the store cannot use. It matches
	// ErrPermanent too.
	ErrBadURI error = &sentinel{msg: "bad store URI", permanent: true}
	// ErrPermanent is matched by every store error that retrying the same
	// operation cannot fix (ErrBadURI, ErrPermission, ErrCorrupt): a caller
	// reports it and waits for a changed input instead of backing off.
	ErrPermanent = errors.New("permanent store error")
)

// Error is a failed store operation on one URI.
type Error struct {
	Op  string // open, put, get, stat, list, delete
	URI string
	Err error
}

func (e *Error) Error() string { return e.Op + " " + e.URI + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// opError wraps err as an *Error carrying the exit code its kind calls for.
// Cancellations are left unwrapped: exitcode.Of maps them to Interrupted.
func opError(op, uri string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*Error](err); ok {
		return err
	}
	e := &Error{Op: op, URI: uri, Err: err}
	if _, ok := errors.AsType[*exitcode.Error](err); ok {
		return e // classified where it was found
	}
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return e
	case errors.Is(err, ErrBadURI), errors.Is(err, ErrPermission):
		return exitcode.Wrap(exitcode.Config, e)
	case errors.Is(err, ErrCorrupt):
		return exitcode.Wrap(exitcode.Data, e)
	case errors.Is(err, ErrNotExist), errors.Is(err, ErrExists):
		// The caller decides what a missing or taken key means.
		return e
	}
	if _, ok := errors.AsType[*readError](err); ok {
		return e // the caller's reader failed, not the store
	}
	return exitcode.Wrap(exitcode.StorageDown, e)
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Option configures Open.
type Option func(*options)

type options struct {
	client      *storage.Client
	clientOpts  []option.ClientOption
	backoff     gax.Backoff
	maxAttempts int
}

// WithClient makes gs:// stores use c (an emulator's client in tests, or a
// client shared by several stores). Close does not close it.
func WithClient(c *storage.Client) Option { return func(o *options) { o.client = c } }

// WithClientOptions passes options to storage.NewClient, e.g.
// option.WithEndpoint. Without any, the client uses Application Default
// Credentials (Workload Identity in the cluster) or, when
// STORAGE_EMULATOR_HOST is set, that emulator without credentials.
func WithClientOptions(opts ...option.ClientOption) Option {
	return func(o *options) { o.clientOpts = append(o.clientOpts, opts...) }
}

// WithRetry replaces the default GCS retry backoff (200ms doubling to 30s)
// and attempt limit (10).
func WithRetry(b gax.Backoff, maxAttempts int) Option {
	return func(o *options) { o.backoff, o.maxAttempts = b, maxAttempts }
}

// Open opens the store at uri: gs://bucket[/prefix] or file:///abs/path.
// A gs:// store checks that the bucket exists and can be listed; a file://
// store's directory is created by the first Put.
func Open(ctx context.Context, uri string, opts ...Option) (Store, error) {
	loc, err := ParseURI(uri)
	if err != nil {
		return nil, opError("open", uri, err)
	}
	o := options{
		backoff:     gax.Backoff{Initial: 200 * time.Millisecond, Max: 30 * time.Second, Multiplier: 2},
		maxAttempts: 10,
	}
	for _, opt := range opts {
		opt(&o)
	}
	switch loc.Scheme {
	case "gs":
		s, err := openGCS(ctx, loc, o)
		if err != nil {
			return nil, opError("open", loc.String(), err)
		}
		return s, nil
	default:
		s, err := openFile(loc)
		if err != nil {
			return nil, opError("open", loc.String(), err)
		}
		return s, nil
	}
}

// verifier checks a stream against the size and CRC32C the store recorded.
type verifier struct {
	r          io.ReadCloser
	op, uri    string
	wantSize   int64
	wantCRC    uint32
	n          int64
	crc        uint32
	err        error
	onceClosed bool
}

func (v *verifier) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.r.Read(p)
	v.n += int64(n)
	v.crc = crc32.Update(v.crc, crcTable, p[:n])
	if v.n > v.wantSize {
		err = io.EOF // report the surplus below
	}
	if err == io.EOF {
		if v.n != v.wantSize || v.crc != v.wantCRC {
			v.err = opError(v.op, v.uri, fmt.Errorf(
				"read %d bytes with CRC32C %08x, but the object was stored with %d bytes and CRC32C %08x; delete it and write it again: %w",
				v.n, v.crc, v.wantSize, v.wantCRC, ErrCorrupt))
			return n, v.err
		}
		return n, io.EOF
	}
	if err != nil {
		v.err = opError(v.op, v.uri, err)
		return n, v.err
	}
	return n, nil
}

func (v *verifier) Close() error {
	if v.onceClosed {
		return nil
	}
	v.onceClosed = true
	return v.r.Close()
}

// checksum accumulates what Put needs to know about the bytes it wrote.
type checksum struct {
	n   int64
	crc uint32
}

func (c *checksum) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	c.crc = crc32.Update(c.crc, crcTable, p)
	return len(p), nil
}

// ctxReader stops a copy once ctx is done, so that a cancelled Put does not
// finish writing (and never commits).
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// readError marks an error from the caller's reader, as opposed to the store.
type readError struct{ err error }

func (e *readError) Error() string { return "read source: " + e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

// sourceReader tags r's errors as readErrors.
type sourceReader struct{ r io.Reader }

func (s sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		err = &readError{err}
	}
	return n, err
}
