package runtime

import (
	"context"
	"fmt"
	"time"

	"github.com/containerd/errdefs"
)

// Ping reports whether containerd answers, within a second.
func (r *Runtime) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	ok, err := r.client.IsServing(ctx)
	if err != nil {
		return fmt.Errorf("containerd not serving: %w", err)
	}
	if !ok {
		return fmt.Errorf("containerd not serving")
	}
	return nil
}

// HasImage reports whether containerd has the image ref in the namespace.
func (r *Runtime) HasImage(ctx context.Context, ref string) (bool, error) {
	name, err := NormalizeImage(ref)
	if err != nil {
		return false, err
	}
	_, err = r.client.GetImage(ctx, name)
	if errdefs.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}
