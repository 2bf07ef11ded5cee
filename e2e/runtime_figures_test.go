package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/warren/reconciler/e2e/imagebuild"
	"github.com/warren/reconciler/e2e/testenv"
	"github.com/warren/reconciler/pkg/observed"
	"github.com/warren/reconciler/pkg/runtime"
)

// TestRuntimeCreateStartFigures times create+start of one container, 20
// times in sequence, through pkg/runtime (policy check, spec options, log
// driver, labels) and through the bare containerd client calls (image
// config only, no output), with the same image in the same run, and logs
// the medians. It checks nothing but that both work: the figures are for
// the notes (run with -v).
func TestRuntimeCreateStartFigures(t *testing.T) {
	const n = 20
	e := newRT(t, "e2e-rt-figures")
	ctx := t.Context()
	e.run(testenv.Manifest("warmup")) // imports and unpacks the image once

	ours := make([]time.Duration, 0, n)
	for i := range n {
		start := time.Now()
		e.run(testenv.Manifest(fmt.Sprintf("ours-%02d", i)))
		ours = append(ours, time.Since(start))
	}

	// The same without the log driver (the shim appends to one file): how
	// much of the difference is starting the driver process.
	plain, err := runtime.New(ctx, env.address, runtime.WithNamespace(e.n.ns), runtime.WithLogDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	noDriver := make([]time.Duration, 0, n)
	for i := range n {
		task := parseTask(t, testenv.Manifest(fmt.Sprintf("plain-%02d", i)))
		id := observed.ContainerID(task.Metadata.Name, task.Hash())
		start := time.Now()
		if err := plain.Create(ctx, id, task, observed.Labels(task.Metadata.Name, task.Hash(), "", "", 0)); err != nil {
			t.Fatal(err)
		}
		if err := plain.Start(ctx, id); err != nil {
			t.Fatal(err)
		}
		noDriver = append(noDriver, time.Since(start))
	}

	img, err := e.n.client.GetImage(ctx, imagebuild.DefaultRef)
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]time.Duration, 0, n)
	for i := range n {
		id := fmt.Sprintf("raw-%02d", i)
		start := time.Now()
		if _, err := testenv.StartContainer(ctx, e.n.client, img, id); err != nil {
			t.Fatal(err)
		}
		raw = append(raw, time.Since(start))
	}
	p := func(ds []time.Duration, q float64) time.Duration {
		s := slices.Clone(ds)
		slices.Sort(s)
		return s[int(q*float64(len(s)-1))]
	}
	t.Logf("create+start, %d sequential, same image: pkg/runtime p50 %s p90 %s (without the log driver: p50 %s p90 %s); raw client p50 %s p90 %s; ratio p50 %.2f",
		n, p(ours, .5).Round(time.Millisecond), p(ours, .9).Round(time.Millisecond),
		p(noDriver, .5).Round(time.Millisecond), p(noDriver, .9).Round(time.Millisecond),
		p(raw, .5).Round(time.Millisecond), p(raw, .9).Round(time.Millisecond),
		float64(p(ours, .5))/float64(p(raw, .5)))
}
