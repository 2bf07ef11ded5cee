package runtime

import (
	"context"
	"fmt"
)

// SetLabels adds or replaces labels on the container id (others are kept).
// A missing container is an error: labels are only set on a container the
// caller is about to start.
func (r *Runtime) SetLabels(ctx context.Context, id string, labels map[string]string) error {
	if len(labels) == 0 {
		return nil
	}
	c, err := r.client.LoadContainer(ctx, id)
	if err != nil {
		return fmt.Errorf("label container %s: %w", id, err)
	}
	if _, err := c.SetLabels(ctx, labels); err != nil {
		return fmt.Errorf("label container %s: %w", id, err)
	}
	return nil
}
