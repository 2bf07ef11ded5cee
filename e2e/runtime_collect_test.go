package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/opencontainers/image-spec/identity"

	"github.com/warren/reconciler/e2e/imagebuild"
	"github.com/warren/reconciler/e2e/testenv"
	"github.com/warren/reconciler/pkg/observed"
	"github.com/warren/reconciler/pkg/reconcile"
	"github.com/warren/reconciler/pkg/runtime"
	"github.com/warren/reconciler/pkg/runtime/logfile"
)

var _ reconcile.Collector = (*runtime.Runtime)(nil)

// TestRuntimeCollect: what an interrupted create or delete leaves behind (a
// lease and a snapshot of the reconciler's, staged secrets and log files of
// a container that is gone) is removed by Collect; what is not the
// reconciler's, and what a container still uses, is kept. Collect looks at
// its first call and after a failed operation, and costs nothing otherwise.
// Found by the chaos suite: a reconciler killed during a create left
// containerd's lease on the new snapshot for a day.
func TestRuntimeCollect(t *testing.T) {
	e := newRT(t, "e2e-rt-collect")
	ctx := namespaces.WithNamespace(t.Context(), e.n.ns)
	live := e.run(testenv.Manifest("live"))
	e.waitOutput(live, "testapp: start")

	// Nothing of a successful create is left: no lease.
	owned := fmt.Sprintf("labels.%q==%s", observed.LabelManagedBy, observed.ManagedByValue)
	if ls, err := e.n.client.LeasesService().List(ctx, owned); err != nil || len(ls) != 0 {
		t.Fatalf("leases after a create: %v, %v; want none", ls, err)
	}

	leftovers := func(id string) (lease leases.Lease, foreign leases.Lease) {
		t.Helper()
		ls := e.n.client.LeasesService()
		lease, err := ls.Create(ctx, leases.WithRandomID(), leases.WithLabels(map[string]string{observed.LabelManagedBy: observed.ManagedByValue}))
		if err != nil {
			t.Fatal(err)
		}
		foreign, err = ls.Create(ctx, leases.WithRandomID())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ls.Delete(context.Background(), foreign) })
		img, err := e.n.client.GetImage(ctx, imagebuild.DefaultRef)
		if err != nil {
			t.Fatal(err)
		}
		diffIDs, err := img.RootFS(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sn := e.n.client.SnapshotService("overlayfs")
		parent := identity.ChainID(diffIDs).String()
		if _, err := sn.Prepare(ctx, id, parent, snapshots.WithLabels(map[string]string{observed.LabelManagedBy: observed.ManagedByValue})); err != nil {
			t.Fatal(err)
		}
		// Another client's snapshot, held by its lease (without one,
		// containerd's own garbage collection may remove it at any time).
		if _, err := sn.Prepare(leases.WithLease(ctx, foreign.ID), "foreign-"+id, parent); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sn.Remove(namespaces.WithNamespace(context.Background(), e.n.ns), "foreign-"+id) })
		for _, p := range []string{logfile.Path(e.logs, id), logfile.Path(e.logs, id) + ".1", filepath.Join(e.state, "secrets", id, "token")} {
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return lease, foreign
	}
	gone := func(id string, lease, foreign leases.Lease) {
		t.Helper()
		ls, err := e.n.client.LeasesService().List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, l := range ls {
			ids = append(ids, l.ID)
		}
		if slices.Contains(ids, lease.ID) || !slices.Contains(ids, foreign.ID) {
			t.Errorf("leases %v: want %s (the reconciler's) gone and %s (another's) kept", ids, lease.ID, foreign.ID)
		}
		sn := e.n.client.SnapshotService("overlayfs")
		if _, err := sn.Stat(ctx, id); err == nil {
			t.Errorf("snapshot %s of no container kept", id)
		}
		if _, err := sn.Stat(ctx, "foreign-"+id); err != nil {
			t.Errorf("a snapshot without the ownership label was touched: %v", err)
		}
		for _, p := range []string{logfile.Path(e.logs, id), logfile.Path(e.logs, id) + ".1", filepath.Join(e.state, "secrets", id)} {
			if fileExists(p) {
				t.Errorf("%s kept", p)
			}
		}
	}

	const first = "killed-0123456789ab"
	lease, foreign := leftovers(first)
	if err := e.rt.Collect(t.Context()); err != nil {
		t.Fatal(err)
	}
	gone(first, lease, foreign)
	if e.n.taskExists(live) == false || !fileExists(logfile.Path(e.logs, live)) || !e.n.snapshotExists(live) {
		t.Errorf("the running container %s lost its task, log file or snapshot", live)
	}

	// Nothing failed since: the next call does not look.
	const second = "later-0123456789ab"
	lease, foreign = leftovers(second)
	if err := e.rt.Collect(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !fileExists(logfile.Path(e.logs, second)) {
		t.Fatal("Collect looked although nothing failed")
	}
	// A failed create: the next call looks.
	if _, err := e.create(testenv.WithImage(testenv.Manifest("absent", "imagePullPolicy: Never"), "localhost/e2e/absent:v1")); !errors.Is(err, runtime.ErrImageNotPresent) {
		t.Fatalf("create with an absent image: %v", err)
	}
	if err := e.rt.Collect(t.Context()); err != nil {
		t.Fatal(err)
	}
	gone(second, lease, foreign)
}
