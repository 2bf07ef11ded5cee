package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"

	"github.com/warren/reconciler/e2e/imagebuild"
)

// Connect connects to the containerd at address with ns as the default
// namespace. When the test ends it removes everything of the namespace
// (Wipe), so that the test leaves nothing behind, and closes the client.
func Connect(t testing.TB, address, ns string) *containerd.Client {
	t.Helper()
	c, err := containerd.New(address, containerd.WithDefaultNamespace(ns))
	if err != nil {
		t.Fatalf("connect containerd: %v", err)
	}
	t.Cleanup(func() {
		if err := Wipe(context.Background(), c); err != nil {
			t.Logf("cleanup: %v", err)
		}
		c.Close()
	})
	return c
}

// Wipe kills and removes every container of the client's default
// namespace, with its task and snapshot. It goes on past an error and
// returns them all.
func Wipe(ctx context.Context, c *containerd.Client) error {
	cs, err := c.Containers(ctx)
	if err != nil {
		return fmt.Errorf("list: %w", err)
	}
	var errs []error
	for _, x := range cs {
		if tk, err := x.Task(ctx, nil); err == nil {
			_, _ = tk.Delete(ctx, containerd.WithProcessKill)
		}
		if err := x.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete %s: %w", x.ID(), err))
		}
	}
	return errors.Join(errs...)
}

// ImportImage imports the test image archive (Env.Archive) into the
// namespace of ctx (else the client's default) and unpacks it.
func ImportImage(ctx context.Context, c *containerd.Client, archive string) (containerd.Image, error) {
	f, err := os.Open(archive)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := c.Import(ctx, f); err != nil {
		return nil, fmt.Errorf("import %s: %w", archive, err)
	}
	img, err := c.GetImage(ctx, imagebuild.DefaultRef)
	if err != nil {
		return nil, err
	}
	if err := img.Unpack(ctx, ""); err != nil {
		return nil, fmt.Errorf("unpack %s: %w", imagebuild.DefaultRef, err)
	}
	return img, nil
}

// StartContainer creates container id of img (a snapshot of it, its
// config, then the options given: labels, runtime) and starts its task
// with no I/O: a container made by hand, as someone else would.
func StartContainer(ctx context.Context, c *containerd.Client, img containerd.Image, id string, opts ...containerd.NewContainerOpts) (containerd.Task, error) {
	opts = append([]containerd.NewContainerOpts{containerd.WithImage(img), containerd.WithNewSnapshot(id, img),
		containerd.WithNewSpec(oci.WithImageConfig(img))}, opts...)
	x, err := c.NewContainer(ctx, id, opts...)
	if err != nil {
		return nil, err
	}
	tk, err := x.NewTask(ctx, cio.NullIO)
	if err != nil {
		return nil, err
	}
	if err := tk.Start(ctx); err != nil {
		return nil, err
	}
	return tk, nil
}
