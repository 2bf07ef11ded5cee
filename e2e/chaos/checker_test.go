package chaos

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/opencontainers/image-spec/identity"

	"github.com/warren/reconciler/e2e/imagebuild"
	"github.com/warren/reconciler/e2e/invariants"
	"github.com/warren/reconciler/pkg/desired"
	"github.com/warren/reconciler/pkg/observed"
)

// TestCheckerFindsEveryViolation: the checker is the suite's only judge, so
// it is checked first. On a converged node it finds nothing; then, with the
// reconciler stopped, one violation of each kind is made by hand, and it
// reports all of them at once.
func TestCheckerFindsEveryViolation(t *testing.T) {
	w := newWorld(t, "checker", "", "")
	w.addStable("keep", "steady")
	w.setTask("gone", 1)
	w.setTask("old", 1)
	w.setTask("exits", 1, "restartPolicy: Never", "args: [-exit-after, 1ms, -exit-code, '3']")
	w.addBystander("bystander")
	w.start()
	w.ready("set-up")
	b := w.baseline()
	w.d.Stop()

	ctx := namespaces.WithNamespace(t.Context(), w.ns)
	running := w.running()
	// missing: a desired task with no container.
	w.setTask("missing", 1)
	// leaked container and task: the file of "gone" removed, its container kept.
	w.removeTask("gone")
	// duplicate: "old" changed, its old container kept, the new one made by hand.
	oldID := running["old"].ID
	w.setTask("old", 2)
	newOld := parse(t, taskYAML("old", 2))
	w.labelledContainer(ctx, observed.ContainerID("old", newOld.Hash()), newOld)
	// not running: the task of "steady" deleted (no task at all).
	if out, err := w.ctr("tasks", "rm", "-f", running["steady"].ID); err != nil {
		t.Fatalf("ctr: %v\n%s", err, out)
	}
	// touched: the bystander's process killed; restarted: keep's count moved.
	byst := b.Unmanaged["bystander"]
	if err := syscall.Kill(int(byst.Pid), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	keep, err := w.client.LoadContainer(ctx, running["keep"].ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keep.SetLabels(ctx, map[string]string{observed.LabelRestarts: "7"}); err != nil {
		t.Fatal(err)
	}
	// leaked snapshot, lease, log file, secrets directory.
	img, err := w.client.GetImage(ctx, imagebuild.DefaultRef)
	if err != nil {
		t.Fatal(err)
	}
	parent := snapshotParent(t, ctx, w.client, img)
	if _, err := w.client.SnapshotService("overlayfs").Prepare(ctx, "orphan-snapshot", parent); err != nil {
		t.Fatal(err)
	}
	l, err := w.client.LeasesService().Create(ctx, leases.WithRandomID())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = w.client.LeasesService().Delete(context.Background(), l)
		_ = w.client.SnapshotService("overlayfs").Remove(namespaces.WithNamespace(context.Background(), w.ns), "orphan-snapshot")
	})
	for _, p := range []string{filepath.Join(w.state, "logs", "ghost-0123456789ab.log.1"), filepath.Join(w.state, "secrets", "ghost-0123456789ab", "token")} {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "the bystander's task stopped", func() bool {
		n, err := w.check.Read(t.Context())
		return err == nil && n.Containers["bystander"].Status == containerd.Stopped
	})

	vs, err := w.check.Check(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range vs {
		got = append(got, string(v.Kind)+" "+v.Subject)
	}
	want := []string{
		"duplicate old",
		"leaked " + running["gone"].ID,
		"leaked ghost-0123456789ab", // log files
		"leaked ghost-0123456789ab", // secrets
		"leaked lease " + l.ID,
		"leaked orphan-snapshot",
		"missing missing",
		"not-running steady",
		"restarted keep",
		"touched bystander",
		"touched steady", // a stable task: its process is gone
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("violations %q want %q:\n  %s\nwant:\n  %s\nin full:\n%s", got, want, strings.Join(got, "\n  "), strings.Join(want, "\n  "), violationList(vs))
	}
	// The task of "exits" (restartPolicy Never, exited 3) is as its
	// policy says, and the duplicate names both containers.
	for _, v := range vs {
		if v.Subject == "exits" {
			t.Errorf("exits reported: %s", v)
		}
		if v.Kind == invariants.Duplicate && !strings.Contains(v.Detail, oldID) {
			t.Errorf("duplicate does not name the old container %s: %s", oldID, v)
		}
	}
}

func parse(t *testing.T, yaml string) desired.Task {
	t.Helper()
	ts, err := desired.Parse("x.yaml", []byte(yaml))
	if err != nil || len(ts) != 1 {
		t.Fatalf("parse: %v", err)
	}
	return ts[0]
}

// labelledContainer creates a container with the reconciler's labels for
// task, as the reconciler would (without starting it).
func (w *world) labelledContainer(ctx context.Context, id string, task desired.Task) {
	w.t.Helper()
	img, err := w.client.GetImage(ctx, imagebuild.DefaultRef)
	if err != nil {
		w.t.Fatal(err)
	}
	labels := observed.Labels(task.Metadata.Name, task.Hash(), task.Metadata.Name+".yaml", task.Spec.StopSig(), task.Spec.StopGrace())
	c, err := w.client.NewContainer(ctx, id, containerd.WithImage(img), containerd.WithNewSnapshot(id, img),
		containerd.WithNewSpec(oci.WithImageConfig(img)), containerd.WithContainerLabels(labels))
	if err != nil {
		w.t.Fatal(err)
	}
	tk, err := c.NewTask(ctx, cio.NullIO)
	if err == nil {
		err = tk.Start(ctx)
	}
	if err != nil {
		w.t.Fatal(err)
	}
}

// snapshotParent is the chain ID of the image's top layer.
func snapshotParent(t *testing.T, ctx context.Context, c *containerd.Client, img containerd.Image) string {
	t.Helper()
	diffIDs, err := img.RootFS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return identity.ChainID(diffIDs).String()
}
