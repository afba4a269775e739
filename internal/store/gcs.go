package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"

	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"

	"github.com/aerie-ml/aerie/internal/exitcode"
)

// gcsStore is a store in a GCS bucket, under an optional name prefix.
type gcsStore struct {
	loc       Location
	client    *storage.Client
	ownClient bool
	bkt       *storage.BucketHandle
	o         options
}

var _ Store = (*gcsStore)(nil)

// maxChunk is the storage client's default upload chunk: what one upload
// buffers at most, to resend a chunk on retry.
const maxChunk = 16 << 20

func openGCS(ctx context.Context, loc Location, o options) (*gcsStore, error) {
	s := &gcsStore{loc: loc, client: o.client, o: o}
	if s.client == nil {
		opts := o.clientOpts
		if os.Getenv("STORAGE_EMULATOR_HOST") != "" {
			// Emulators such as fake-gcs-server serve XML-API reads on
			// another host name than the JSON API; read through the latter.
			opts = append([]option.ClientOption{storage.WithJSONReads()}, opts...)
		}
		c, err := storage.NewClient(ctx, opts...)
		if err != nil {
			return nil, exitcode.Wrap(exitcode.Config, fmt.Errorf("create a GCS client (locally run `gcloud auth application-default login`; in the cluster, check Workload Identity): %w", err))
		}
		s.client, s.ownClient = c, true
	}
	// Retries are set per bucket handle rather than on the client, which a
	// caller may share (WithClient).
	s.bkt = s.client.Bucket(loc.Bucket).Retryer(s.retry(nil, storage.RetryIdempotent)...)
	// Fail at Open, with a clear error, on a missing bucket or missing
	// rights; listing needs only storage.objects.list, which every role
	// that can use the store has (buckets.get is not in objectAdmin).
	_, err := s.bkt.Objects(ctx, &storage.Query{Prefix: loc.Prefix}).Next()
	if err != nil && !errors.Is(err, iterator.Done) {
		s.Close()
		return nil, s.gcsError(err)
	}
	return s, nil
}

// retry returns the retry options for one call. Every call gets the same
// explicit backoff, attempt limit and error classification; policy decides
// which calls may be retried at all. retried, if not nil, records that a
// retry happened (see put).
func (s *gcsStore) retry(retried *atomic.Bool, policy storage.RetryPolicy) []storage.RetryOption {
	return []storage.RetryOption{
		storage.WithBackoff(s.o.backoff),
		storage.WithMaxAttempts(s.o.maxAttempts),
		storage.WithPolicy(policy),
		storage.WithErrorFunc(func(err error) bool {
			ok := storage.ShouldRetry(err)
			if ok && retried != nil {
				retried.Store(true)
			}
			return ok
		}),
	}
}

func (s *gcsStore) URI(key string) string { return "gs://" + s.loc.Bucket + "/" + s.loc.Prefix + key }

func (s *gcsStore) Close() error {
	if s.ownClient {
		return s.client.Close()
	}
	return nil
}

// name returns key's object name, or an error for a bad key.
func (s *gcsStore) name(key string) (string, error) {
	if err := CheckKey(key); err != nil {
		return "", err
	}
	name := s.loc.Prefix + key
	if len(name) > maxKeyBytes {
		return "", fmt.Errorf("object name %q is %d bytes, more than GCS's %d: %w", name, len(name), maxKeyBytes, ErrBadURI)
	}
	return name, nil
}

func (s *gcsStore) Put(ctx context.Context, key string, r io.Reader, opts PutOptions) error {
	return opError("put", s.URI(key), s.put(ctx, key, r, opts))
}

func (s *gcsStore) put(ctx context.Context, key string, r io.Reader, opts PutOptions) error {
	name, err := s.name(key)
	if err != nil {
		return err
	}
	obj := s.bkt.Object(name)
	// Unconditional writes keep RetryIdempotent, under which the client does
	// not retry them: after an ambiguous failure a retried overwrite could
	// replace a newer object another writer stored meanwhile. A create with
	// DoesNotExist cannot, so it is always retried.
	policy := storage.RetryIdempotent
	if opts.IfNotExists {
		obj = obj.If(storage.Conditions{DoesNotExist: true})
		policy = storage.RetryAlways
	}
	var retried atomic.Bool
	obj = obj.Retryer(s.retry(&retried, policy)...)

	// Cancelling wctx is how an upload is abandoned: GCS then never
	// finalizes the object, so nothing appears under its name.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := obj.NewWriter(wctx)
	w.ContentType = "application/octet-stream" // skip content sniffing
	if pre, ok := precompute(r); ok {
		// Declaring the CRC32C up front makes GCS reject corrupted uploads
		// before they are finalized. Small objects get a small buffer.
		w.CRC32C, w.SendCRC32C = pre.crc, true
		if pre.n < maxChunk {
			w.ChunkSize = int(pre.n) + 1
		}
	}
	// Otherwise the client computes the CRC32C as it streams and sends it
	// with the last request, which GCS checks before finalizing too.
	var sum checksum
	if _, err := io.Copy(w, io.TeeReader(ctxReader{ctx, sourceReader{r}}, &sum)); err != nil {
		cancel()
		w.Close()
		if _, ok := errors.AsType[*readError](err); ok || ctx.Err() != nil {
			return err
		}
		return s.gcsError(err)
	}
	if err := w.Close(); err != nil {
		if isStatus(err, http.StatusPreconditionFailed) {
			return s.exists(ctx, name, sum, retried.Load())
		}
		return s.gcsError(err)
	}
	// Belt and braces: what GCS stored is what we read.
	if a := w.Attrs(); a.Size != sum.n || a.CRC32C != sum.crc {
		s.bkt.Object(name).If(storage.Conditions{GenerationMatch: a.Generation}).Delete(ctx)
		return fmt.Errorf("GCS stored %d bytes with CRC32C %08x, but %d bytes with CRC32C %08x were sent; deleted it, write it again: %w",
			a.Size, a.CRC32C, sum.n, sum.crc, ErrCorrupt)
	}
	return nil
}

// exists handles a failed DoesNotExist precondition. If the create was
// retried, the first attempt may have succeeded with only its answer lost:
// then the object holds exactly our bytes and the Put succeeded.
func (s *gcsStore) exists(ctx context.Context, name string, sum checksum, retried bool) error {
	if retried {
		a, err := s.bkt.Object(name).Attrs(ctx)
		if err == nil && a.Size == sum.n && a.CRC32C == sum.crc {
			return nil
		}
	}
	return fmt.Errorf("another writer created it first: %w", ErrExists)
}

// precompute returns the size and CRC32C of what remains of r if r can be
// read twice (a file, a bytes.Reader), and rewinds it.
func precompute(r io.Reader) (checksum, bool) {
	rs, ok := r.(io.ReadSeeker)
	if !ok {
		return checksum{}, false
	}
	pos, err := rs.Seek(0, io.SeekCurrent)
	if err != nil {
		return checksum{}, false // a pipe or terminal behind an *os.File
	}
	var sum checksum
	if _, err := io.Copy(&sum, rs); err != nil {
		rs.Seek(pos, io.SeekStart)
		return checksum{}, false // the streaming copy will report it
	}
	if _, err := rs.Seek(pos, io.SeekStart); err != nil {
		return checksum{}, false
	}
	return sum, true
}

func (s *gcsStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	uri := s.URI(key)
	name, err := s.name(key)
	if err != nil {
		return nil, opError("get", uri, err)
	}
	a, err := s.bkt.Object(name).Attrs(ctx)
	if err != nil {
		return nil, opError("get", uri, s.gcsError(err))
	}
	// Read the generation whose checksum we hold and check it ourselves:
	// one error, ours, for every corruption. The store never sets a
	// Content-Encoding; an object that has one (written by another tool) is
	// read as stored, since its CRC32C is of the stored bytes.
	obj := s.bkt.Object(name).Generation(a.Generation)
	if a.ContentEncoding != "" {
		obj = obj.ReadCompressed(true)
	}
	rd, err := obj.NewReader(ctx, storage.WithDisableReaderChecksum())
	if err != nil {
		return nil, opError("get", uri, s.gcsError(err))
	}
	return &verifier{r: rd, op: "get", uri: uri, wantSize: a.Size, wantCRC: a.CRC32C}, nil
}

func (s *gcsStore) Stat(ctx context.Context, key string) (Object, error) {
	uri := s.URI(key)
	name, err := s.name(key)
	if err != nil {
		return Object{}, opError("stat", uri, err)
	}
	a, err := s.bkt.Object(name).Attrs(ctx)
	if err != nil {
		return Object{}, opError("stat", uri, s.gcsError(err))
	}
	return Object{Key: key, Size: a.Size, CRC32C: a.CRC32C}, nil
}

func (s *gcsStore) List(ctx context.Context, prefix string) ([]Object, error) {
	uri := s.URI(prefix)
	if err := checkPrefix(prefix); err != nil {
		return nil, opError("list", uri, err)
	}
	q := &storage.Query{Prefix: s.loc.Prefix + prefix}
	if err := q.SetAttrSelection([]string{"Name", "Size", "CRC32C"}); err != nil {
		return nil, opError("list", uri, err)
	}
	var objs []Object
	it := s.bkt.Objects(ctx, q)
	for {
		a, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return nil, opError("list", uri, s.gcsError(err))
		}
		key := strings.TrimPrefix(a.Name, s.loc.Prefix)
		if checkKey(key) != nil {
			continue // e.g. a console "folder" placeholder ending in "/"
		}
		objs = append(objs, Object{Key: key, Size: a.Size, CRC32C: a.CRC32C})
	}
	slices.SortFunc(objs, func(a, b Object) int { return strings.Compare(a.Key, b.Key) })
	return objs, nil
}

func (s *gcsStore) Delete(ctx context.Context, key string) error {
	uri := s.URI(key)
	name, err := s.name(key)
	if err != nil {
		return opError("delete", uri, err)
	}
	a, err := s.bkt.Object(name).Attrs(ctx)
	if err != nil {
		return opError("delete", uri, s.gcsError(err))
	}
	// A generation precondition makes the delete idempotent, hence retried,
	// and keeps it from removing a newer object written meanwhile.
	var retried atomic.Bool
	err = s.bkt.Object(name).If(storage.Conditions{GenerationMatch: a.Generation}).
		Retryer(s.retry(&retried, storage.RetryIdempotent)...).Delete(ctx)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, storage.ErrObjectNotExist) && retried.Load():
		return nil // the first attempt deleted it
	case isStatus(err, http.StatusPreconditionFailed):
		return opError("delete", uri, fmt.Errorf("it was overwritten while being deleted; look again: %w", ErrExists))
	}
	return opError("delete", uri, s.gcsError(err))
}

func isStatus(err error, code int) bool {
	ge, ok := errors.AsType[*googleapi.Error](err)
	return ok && ge.Code == code
}

// gcsError maps GCS errors onto the store's sentinels, keeping the detail
// and saying what to do.
func (s *gcsStore) gcsError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, storage.ErrBucketNotExist), isBucketNotFound(err):
		return exitcode.Wrap(exitcode.Config, fmt.Errorf("bucket %q does not exist; create it (infra/terraform) or fix the URI: %w", s.loc.Bucket, ErrNotExist))
	case errors.Is(err, storage.ErrObjectNotExist), isStatus(err, http.StatusNotFound):
		return ErrNotExist
	case isStatus(err, http.StatusForbidden), isStatus(err, http.StatusUnauthorized):
		return fmt.Errorf("%v; grant the caller's service account roles/storage.objectAdmin (or objectViewer to read) on bucket %q, or check its Application Default Credentials: %w", err, s.loc.Bucket, ErrPermission)
	case isStatus(err, http.StatusPreconditionFailed):
		return ErrExists
	case isStatus(err, http.StatusBadRequest) && strings.Contains(err.Error(), "CRC32C"):
		return fmt.Errorf("GCS rejected the upload because its bytes do not match their CRC32C (corrupted in transit, or the source changed while read); nothing was stored, write it again: %w", err)
	}
	return err
}

// isBucketNotFound recognizes GCS's answer for a missing bucket on object
// calls, which the client reports as a plain 404.
func isBucketNotFound(err error) bool {
	ge, ok := errors.AsType[*googleapi.Error](err)
	return ok && ge.Code == http.StatusNotFound && strings.Contains(strings.ToLower(ge.Message), "bucket")
}
