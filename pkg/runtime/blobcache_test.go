package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// blobStore is a content store of blobs in memory that counts reads.
type blobStore struct {
	content.Store // nil: only ReaderAt is used
	blobs         map[digest.Digest][]byte
	reads         int
}

func (s *blobStore) ReaderAt(_ context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	s.reads++
	b, ok := s.blobs[desc.Digest]
	if !ok {
		return nil, fmt.Errorf("content %s: %w", desc.Digest, errdefs.ErrNotFound)
	}
	return blobReader{bytes.NewReader(b)}, nil
}

func (s *blobStore) put(b []byte) ocispec.Descriptor {
	d := digest.FromBytes(b)
	s.blobs[d] = b
	return ocispec.Descriptor{Digest: d, Size: int64(len(b))}
}

func readAll(t *testing.T, p content.Provider, desc ocispec.Descriptor) (string, error) {
	t.Helper()
	ra, err := p.ReaderAt(t.Context(), desc)
	if err != nil {
		return "", err
	}
	defer ra.Close()
	b, err := io.ReadAll(io.NewSectionReader(ra, 0, ra.Size()))
	return string(b), err
}

func TestBlobCache(t *testing.T) {
	s := &blobStore{blobs: map[digest.Digest][]byte{}}
	c := newBlobCache(s)
	config := s.put([]byte(`{"architecture":"amd64"}`))
	layer := s.put(bytes.Repeat([]byte("x"), maxCachedBlob+1))

	for i := range 3 {
		if got, err := readAll(t, c, config); err != nil || got != `{"architecture":"amd64"}` {
			t.Fatalf("read %d of the config: %q, %v", i, got, err)
		}
	}
	if s.reads != 1 {
		t.Errorf("the config was read %d times from containerd, want once", s.reads)
	}
	for range 2 {
		if got, err := readAll(t, c, layer); err != nil || len(got) != maxCachedBlob+1 {
			t.Fatalf("read the layer: %d bytes, %v", len(got), err)
		}
	}
	if s.reads != 3 {
		t.Errorf("a blob over %d bytes was cached: %d reads, want 3", maxCachedBlob, s.reads)
	}

	// Not found passes through, and is not remembered.
	missing := ocispec.Descriptor{Digest: digest.FromString("missing")}
	if _, err := readAll(t, c, missing); !errdefs.IsNotFound(err) {
		t.Errorf("missing blob: %v, want not found", err)
	}
	s.blobs[missing.Digest] = []byte("missing")
	if got, err := readAll(t, c, missing); err != nil || got != "missing" {
		t.Errorf("a blob that appeared: %q, %v", got, err)
	}

	// Content that does not match its digest is an error, never cached.
	bad := digest.FromString("expected")
	s.blobs[bad] = []byte("something else")
	if _, err := readAll(t, c, ocispec.Descriptor{Digest: bad}); err == nil || !strings.Contains(err.Error(), "content has digest") {
		t.Errorf("mismatching content: %v, want a digest error", err)
	}
	if _, ok := c.blobs[bad]; ok {
		t.Error("mismatching content was cached")
	}

	// The cache holds at most maxCachedBlobs blobs, the oldest going first.
	for i := range maxCachedBlobs + 1 {
		if _, err := readAll(t, c, s.put(fmt.Appendf(nil, "blob %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.blobs) != maxCachedBlobs || len(c.order) != maxCachedBlobs {
		t.Errorf("cache holds %d blobs (%d in order), want %d", len(c.blobs), len(c.order), maxCachedBlobs)
	}
	if _, ok := c.blobs[config.Digest]; ok {
		t.Error("the oldest blob was not evicted")
	}
}

// failingReader is a blob that cannot be read to its end.
type failingReader struct{ size int64 }

func (r failingReader) ReadAt([]byte, int64) (int, error) { return 0, errors.New("connection reset") }
func (r failingReader) Close() error                      { return nil }
func (r failingReader) Size() int64                       { return r.size }

type failingStore struct{ content.Store }

func (failingStore) ReaderAt(context.Context, ocispec.Descriptor) (content.ReaderAt, error) {
	return failingReader{size: 10}, nil
}

func TestBlobCacheReadError(t *testing.T) {
	c := newBlobCache(failingStore{})
	desc := ocispec.Descriptor{Digest: digest.FromString("config")}
	if _, err := c.ReaderAt(t.Context(), desc); err == nil || !strings.Contains(err.Error(), "connection reset") {
		t.Errorf("a failed read: %v, want the read error", err)
	}
	if len(c.blobs) != 0 {
		t.Error("a failed read was cached")
	}
}
