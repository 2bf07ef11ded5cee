package reconcile

import (
	"errors"
	"testing"
	"time"
)

// TestResyncKeepsRetryBackoff: a task whose sync failed is retried when its
// backoff says, not at every resync. Found by the chaos suite: with the
// registry down and a 2s resync, a pull was retried every 2s whatever the
// backoff. A change of the task still queues it at once.
func TestResyncKeepsRetryBackoff(t *testing.T) {
	rt := newFakeRuntime()
	clk := newFakeClock()
	web := parseTask(t, "web.yaml", "web")
	rt.fail(OpCreate, idOf(web), errors.New("pull image: connection refused"))
	c, _ := startController(t, rt, Config{Workers: 1, Clock: clk, Resync: time.Second,
		RetryInitial: time.Minute, RetryMax: time.Minute}, stateOf(web))
	waitPhase(t, c, "web", PhaseError)
	if n := rt.count(0, OpCreate, idOf(web)); n != 1 {
		t.Fatalf("%d creates before any resync, want 1", n)
	}
	for i := range 10 {
		mark := rt.mark()
		clk.Step(time.Second) // a resync
		eventually(t, func() bool { return rt.count(mark, opList, "") > 0 }, "resync %d did not list", i)
	}
	// One worker works keys in order: once probe runs, anything a resync
	// queued before it was worked.
	probe := parseTask(t, "probe.yaml", "probe")
	c.SetDesired(stateOf(web, probe))
	waitPhase(t, c, "probe", PhaseRunning)
	if n := rt.count(0, OpCreate, idOf(web)); n != 1 {
		t.Errorf("%d creates of web after 10 resyncs within its 1m backoff, want 1", n)
	}

	// A changed spec is tried at once, backoff or not.
	web2 := parseTask(t, "web.yaml", "web", "V=2")
	c.SetDesired(stateOf(web2, probe))
	waitPhase(t, c, "web", PhaseRunning)
}
