package reconcile

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/warren/reconciler/pkg/desired"
	"github.com/warren/reconciler/pkg/observed"
)

// world returns n desired tasks and their running containers, in sync.
func world(n int) (desired.State, []observed.Raw) {
	// With the spec hashes, as the loader gives them (desired.State.Hash).
	var tasks []desired.Task
	var raws []observed.Raw
	for i := range n {
		t := task(fmt.Sprintf("task-%05d", i), "localhost/reconciler/testapp:v1", desired.EnvVar{Name: "N", Value: fmt.Sprint(i)})
		tasks = append(tasks, t)
		raws = append(raws, observed.Raw{
			ID:     observed.ContainerID(t.Metadata.Name, t.Hash()),
			Labels: observed.Labels(t.Metadata.Name, t.Hash(), t.Source, "SIGTERM", 30*time.Second),
			Status: observed.Running,
		})
	}
	return desired.StateOf(tasks...), raws
}

// BenchmarkPlan10000 plans 10,000 tasks that are all in sync.
func BenchmarkPlan10000(b *testing.B) {
	want, raws := world(10000)
	have := observed.Classify(raws)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if as := Plan(want, have, now); len(as) != 0 {
			b.Fatalf("%d actions", len(as))
		}
	}
}

// BenchmarkPass200 is one full pass (a resync) of the controller over 200
// tasks in sync, against the in-memory runtime: one listing, the plan of
// every task and their statuses. It measures the controller's own cost per
// pass; containerd's time for the one listing comes on top.
func BenchmarkPass200(b *testing.B) {
	want, raws := world(200)
	rt := newFakeRuntime()
	for _, r := range raws {
		rt.put(r)
	}
	c := New(rt, Config{})
	c.SetDesired(want)
	ctx := context.Background()
	for name := range want.Tasks { // statuses known: later passes only refresh them
		if res := c.sync(ctx, name); res.err != nil {
			b.Fatal(res.err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if res := c.resync(ctx); res.err != nil {
			b.Fatal(res.err)
		}
		for c.q.Len() > 0 { // the first pass queues every task once
			k, _ := c.q.Get()
			c.q.Done(k)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "passes/s")
}
