package runtime

import (
	"context"
	"fmt"
	"time"
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
