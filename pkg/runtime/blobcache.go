package runtime

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Bounds of the blob cache: image indexes, manifests and configs are a few
// KiB each; layers are never cached.
const (
	maxCachedBlob  = 64 << 10
	maxCachedBlobs = 64
)

// blobCache is the content store the runtime's client reads through. It
// keeps the small blobs it has read (the indexes, manifests and configs of
// images) in memory by digest. Creating a container reads the same image
// config and manifest several times (to check that the image is unpacked,
// for its command, for the spec, for the snapshot's parent), each read two
// calls to containerd: about a dozen calls per container, and none once the
// image's blobs are cached. Content is addressed by its digest and checked
// against it here, so a cached blob is never wrong; at worst it outlives its
// copy in containerd (an image removed behind the reconciler's back), and
// then the snapshot or the create fails as it would have anyway.
// Everything else (info, writes, deletes) goes to containerd.
type blobCache struct {
	content.Store

	mu    sync.Mutex
	blobs map[digest.Digest][]byte
	order []digest.Digest // oldest first, for eviction
}

func newBlobCache(s content.Store) *blobCache {
	return &blobCache{Store: s, blobs: map[digest.Digest][]byte{}}
}

func (c *blobCache) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	c.mu.Lock()
	b, ok := c.blobs[desc.Digest]
	c.mu.Unlock()
	if ok {
		return blobReader{bytes.NewReader(b)}, nil
	}
	ra, err := c.Store.ReaderAt(ctx, desc)
	if err != nil || ra.Size() > maxCachedBlob || desc.Digest.Validate() != nil {
		return ra, err
	}
	defer ra.Close()
	b = make([]byte, ra.Size())
	if _, err := io.ReadFull(io.NewSectionReader(ra, 0, ra.Size()), b); err != nil {
		return nil, fmt.Errorf("read %s: %w", desc.Digest, err)
	}
	if got := desc.Digest.Algorithm().FromBytes(b); got != desc.Digest {
		return nil, fmt.Errorf("read %s: content has digest %s", desc.Digest, got)
	}
	c.add(desc.Digest, b)
	return blobReader{bytes.NewReader(b)}, nil
}

func (c *blobCache) add(d digest.Digest, b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.blobs[d]; ok {
		return
	}
	if len(c.order) >= maxCachedBlobs {
		delete(c.blobs, c.order[0])
		c.order = c.order[1:]
	}
	c.blobs[d] = b
	c.order = append(c.order, d)
}

// blobReader is a cached blob as a content.ReaderAt.
type blobReader struct{ *bytes.Reader }

func (blobReader) Close() error { return nil }
