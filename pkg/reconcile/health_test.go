package reconcile

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warren/reconciler/pkg/clock"
	"github.com/warren/reconciler/pkg/health"
	"github.com/warren/reconciler/pkg/observed"
)

// fakeProbe is an exec probe that passes while healthy is set.
type fakeProbe struct {
	healthy atomic.Bool
	calls   atomic.Int32
}

func (p *fakeProbe) exec(_ context.Context, _ string, _ []string, _ time.Duration) (health.ExecResult, error) {
	p.calls.Add(1)
	if p.healthy.Load() {
		return health.ExecResult{Output: []byte("ok")}, nil
	}
	return health.ExecResult{ExitCode: 1, Output: []byte("refused")}, nil
}

// nextProbe moves the clock to the next timer due within two seconds (a
// probe's: the others are the resync's, an hour away, and the back-offs,
// which the tests step by hand) and waits until a probe ran. The fake
// clock runs the probe inside the step, so one step is one probe.
func nextProbe(t *testing.T, clk *clock.Fake, p *fakeProbe) {
	t.Helper()
	n := p.calls.Load()
	eventually(t, func() bool {
		now := clk.Now()
		for _, at := range clk.Pending() {
			if d := at.Sub(now); d >= 0 && d <= 2*time.Second {
				clk.Step(d)
				return true
			}
		}
		return false
	}, "no probe pending")
	if p.calls.Load() == n {
		t.Fatal("the clock moved to the next timer and no probe ran")
	}
}

// TestControllerActsOnHealth: retries failed probes in a row stop the
// container as a failed exit; the restart policy and the crash backoff
// restart it, the restart count moves, the status says why, and probing
// starts over on the new run.
func TestControllerActsOnHealth(t *testing.T) {
	rt := newFakeRuntime()
	clk := newFakeClock()
	rt.now = clk.Now
	probe := &fakeProbe{}
	probe.healthy.Store(true)
	web := taskWith(t, "web", "  healthCheck:\n    exec: {command: [/check]}\n    interval: 1s\n    retries: 2\n")
	id := idOf(web)
	c, _ := startController(t, rt, Config{Workers: 2, Clock: clk, Exec: probe.exec}, stateOf(web))
	waitPhase(t, c, "web", PhaseRunning)

	step := func(time.Duration) { t.Helper(); nextProbe(t, clk, probe) }
	healthIs := func(want health.State) TaskStatus {
		t.Helper()
		var st TaskStatus
		eventually(t, func() bool {
			st, _ = c.TaskStatus("web")
			return st.Health.State == want
		}, "health never %s: %+v", want, &st)
		return st
	}
	st := healthIs(health.Starting)
	if st.Health.Source != "manifest" || !strings.HasPrefix(st.Health.Check, "exec /check every 1s") {
		t.Errorf("health check on the status = %+v", st.Health)
	}
	step(time.Second) // the first probe comes within a second
	st = healthIs(health.Healthy)
	if st.Health.LastProbe.IsZero() || st.Health.Output != `exec exit 0: "ok"` {
		t.Errorf("last probe on the status = %+v", st.Health)
	}

	probe.healthy.Store(false)
	step(1100 * time.Millisecond)
	eventually(t, func() bool { st, _ = c.TaskStatus("web"); return st.Health.Streak == 1 }, "streak never 1: %+v", &st)
	if st.Phase != PhaseRunning || st.Health.State != health.Healthy {
		t.Errorf("one failure of two: %s %+v", st.Phase, st.Health)
	}
	step(1100 * time.Millisecond)
	st = waitBackOff(t, c, clk, "web")
	why := `unhealthy: 2 probes failed: exec exit 1: "refused"`
	if !strings.HasPrefix(st.Message, why) {
		t.Errorf("message = %q, want it to start with %q", st.Message, why)
	}
	if got := rt.labels(id)[observed.LabelUnhealthy]; got != strings.TrimPrefix(why, "unhealthy: ") {
		t.Errorf("unhealthy label = %q", got)
	}
	if rt.count(0, OpStop, id) != 1 || rt.count(0, OpDelete, id) != 0 {
		t.Errorf("calls %v, want one stop and no delete", callStrings(rt.callsSince(0, id)))
	}

	probe.healthy.Store(true)
	clk.Step(time.Second) // the back-off
	st = waitPhase(t, c, "web", PhaseRunning)
	if st.Restarts != 1 {
		t.Errorf("restarts = %d, want 1", st.Restarts)
	}
	if _, marked := rt.labels(id)[observed.LabelUnhealthy]; marked {
		t.Error("the unhealthy label stayed on the restarted container")
	}
	healthIs(health.Starting)
	step(time.Second)
	healthIs(health.Healthy)
}

// TestControllerStartPeriodFromLabels: after a restart of the reconciler a
// running container is not restarted, and its start period counts from its
// start (its label), not from the reconciler's.
func TestControllerStartPeriodFromLabels(t *testing.T) {
	rt := newFakeRuntime()
	clk := newFakeClock()
	probe := &fakeProbe{} // failing
	web := taskWith(t, "web", "  healthCheck:\n    exec: {command: [/check]}\n    interval: 1s\n    retries: 1\n    startPeriod: 1m\n")
	r := ownedBy(web, observed.Running)
	for k, v := range observed.StartLabels(clk.Now().Add(-59*time.Second), 0, 0) {
		r.Labels[k] = v
	}
	rt.put(r)
	c, _ := startController(t, rt, Config{Workers: 2, Clock: clk, Exec: probe.exec}, stateOf(web))
	waitReady(t, c)
	// Probes within the start period (a second more) do not count; the
	// first one after it is enough (retries 1).
	end := clk.Now().Add(time.Second)
	for clk.Now().Before(end) {
		nextProbe(t, clk, probe)
		if st, _ := c.TaskStatus("web"); clk.Now().Before(end) && (st.Health.State != health.Starting || st.Health.Streak != 0) {
			t.Fatalf("a failure within the start period counted: %+v", st.Health)
		}
	}
	waitPhase(t, c, "web", PhaseCrashLoopBackOff)
	if n := rt.count(0, OpStart, idOf(web)); n != 0 {
		t.Errorf("%d starts", n)
	}
}

// TestControllerDependsOn: app waits for db to be healthy; db's health
// change starts it; db going away later stops nothing.
func TestControllerDependsOn(t *testing.T) {
	rt := newFakeRuntime()
	clk := newFakeClock()
	probe := &fakeProbe{}
	db := taskWith(t, "db", "  healthCheck:\n    exec: {command: [/check]}\n    interval: 1s\n    retries: 3\n")
	app := taskWith(t, "app", "  dependsOn: [{task: db, condition: healthy}]\n")
	c, _ := startController(t, rt, Config{Workers: 2, Clock: clk, Exec: probe.exec}, stateOf(db, app))
	waitPhase(t, c, "db", PhaseRunning)
	st := waitPhase(t, c, "app", PhaseWaiting)
	if st.Message != "waiting for db to be healthy" {
		t.Errorf("message = %q", st.Message)
	}
	if rt.count(0, OpCreate, idOf(app)) != 0 {
		t.Fatal("app created before db was healthy")
	}
	probe.healthy.Store(true)
	nextProbe(t, clk, probe)
	waitPhase(t, c, "app", PhaseRunning)

	// db removed: app keeps running.
	c.SetDesired(stateOf(app))
	eventually(t, func() bool { _, ok := c.TaskStatus("db"); return !ok }, "db never removed")
	if !rt.running(idOf(app)) || rt.count(0, OpStop, idOf(app)) != 0 {
		t.Error("app stopped when its dependency went away")
	}
}
