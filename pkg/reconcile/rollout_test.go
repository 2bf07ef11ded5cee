package reconcile

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/warren/reconciler/pkg/clock"
	"github.com/warren/reconciler/pkg/desired"
	"github.com/warren/reconciler/pkg/observed"
)

// TestPlanRollout walks a rollout's states, each as containerd would show
// it (the labels are all there is), for both strategies and each way a new
// container proves or fails itself.
func TestPlanRollout(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	spec := func(v string, f func(*desired.Task)) desired.Task {
		tk := task("web", "nginx:1.27", desired.EnvVar{Name: "V", Value: v})
		if f != nil {
			f(&tk)
		}
		return tk
	}
	startFirst := func(tk *desired.Task) { tk.Spec.UpdateStrategy = desired.UpdateStartFirst }
	checked := func(tk *desired.Task) {
		tk.Spec.HealthCheck = &desired.HealthCheck{TCP: &desired.TCPProbe{Port: 80}}
	}
	never := func(tk *desired.Task) { tk.Spec.RestartPolicy = desired.RestartNever }
	onFailure := func(tk *desired.Task) { tk.Spec.RestartPolicy = desired.RestartOnFailure }
	short := func(tk *desired.Task) {
		tk.Spec.MinReady, tk.Spec.ProgressDeadline = &desired.Duration{Duration: 5 * time.Second}, &desired.Duration{Duration: time.Minute}
	}

	// c is a container of tk with its labels as a rollout leaves them.
	type lbl struct {
		status        observed.Status
		started       time.Time
		created       time.Time
		proven        bool
		heldFor       string
		rolledBack    string
		heldAt        time.Time
		restarts      int
		exit          uint32
		containerdAge time.Duration
	}
	c := func(tk desired.Task, l lbl) observed.Container {
		ct := container(tk, l.status)
		ct.StartedAt, ct.Created, ct.HeldFor, ct.Restarts, ct.ExitCode, ct.HeldAt = l.started, l.created, l.heldFor, l.restarts, l.exit, l.heldAt
		ct.CreatedAt = ago(l.containerdAge)
		if l.status == observed.Stopped {
			ct.ExitedAt = ago(time.Second)
		}
		if l.proven {
			ct.Proven = ago(time.Hour)
		}
		if l.rolledBack != "" {
			ct.RolledBack = &observed.Rollback{Hash: l.rolledBack, Reason: "exited with code 1, 3 times in 7s", At: ago(time.Minute)}
		}
		return ct
	}
	id := func(tk desired.Task) string { return observed.ContainerID("web", tk.Hash()) }
	v1, v2, v3 := spec("1", nil), spec("2", nil), spec("3", nil)
	v1sf, v2sf := spec("1", startFirst), spec("2", startFirst)
	v2chk := spec("2", checked)
	v2never, v2onf := spec("2", never), spec("2", onFailure)
	v2short := spec("2", short)
	running := func(since time.Duration) lbl {
		return lbl{status: observed.Running, started: ago(since), created: ago(since)}
	}
	held := func(tk desired.Task) lbl {
		return lbl{status: observed.Stopped, started: ago(time.Hour), proven: true, heldFor: tk.Hash(), exit: 143}
	}

	tests := []struct {
		name     string
		want     desired.Task
		have     []observed.Container
		healthy  map[string]bool
		sick     map[string]string
		exp      []step
		reason   string // a part of the reason of the action it is found in
		changing bool
	}{
		{name: "stop-first begins: the good one is stopped and kept, the new one created",
			want: v2, have: []observed.Container{c(v1, running(time.Hour))},
			exp: []step{{OpStop, id(v1)}, {OpCreate, id(v2)}, {OpStart, id(v2)}}, reason: "kept until the new container proves itself", changing: true},
		{name: "start-first begins: the good one is marked and keeps running",
			want: v2sf, have: []observed.Container{c(v1sf, running(time.Hour))},
			exp: []step{{OpMark, id(v1sf)}, {OpCreate, id(v2sf)}, {OpStart, id(v2sf)}}, changing: true},
		{name: "an old container that has not run minReady is no rollback target: replaced as before",
			want: v2, have: []observed.Container{c(v1, running(2*time.Second))},
			exp: []step{{OpStop, id(v1)}, {OpDelete, id(v1)}, {OpCreate, id(v2)}, {OpStart, id(v2)}}, changing: true},
		{name: "an unhealthy old container is no rollback target",
			want: v2, have: []observed.Container{c(v1, running(time.Hour))}, sick: map[string]string{id(v1): "tcp :80: refused"},
			exp: []step{{OpStop, id(v1)}, {OpDelete, id(v1)}, {OpCreate, id(v2)}, {OpStart, id(v2)}}, changing: true},
		{name: "a stop cut short is resumed: the good one held, the new one not yet created",
			want: v2, have: []observed.Container{c(v1, held(v2))},
			exp: []step{{OpCreate, id(v2)}, {OpStart, id(v2)}}, changing: true},
		{name: "a new container that cannot be made: tried again within the deadline",
			want: v2, have: []observed.Container{c(v1, lbl{status: observed.Stopped, started: ago(time.Hour), proven: true, heldFor: v2.Hash(), heldAt: ago(4 * time.Minute), exit: 143})},
			exp: []step{{OpCreate, id(v2)}, {OpStart, id(v2)}}, changing: true},
		{name: "a new container that cannot be made: rolled back past the deadline",
			want: v2, have: []observed.Container{c(v1, lbl{status: observed.Stopped, started: ago(time.Hour), proven: true, heldFor: v2.Hash(), heldAt: ago(6 * time.Minute), exit: 143})},
			exp: []step{{OpMark, id(v1)}, {OpStart, id(v1)}}, reason: "no new container created and started within 5m0s", changing: true},
		{name: "in progress: the new one runs, not yet minReady",
			want: v2, have: []observed.Container{c(v1, held(v2)), c(v2, running(3*time.Second))},
			exp: []step{{OpRollout, id(v2)}}, reason: "proving itself"},
		{name: "proved by running minReady: marked, the held one deleted",
			want: v2, have: []observed.Container{c(v1, held(v2)), c(v2, running(11*time.Second))},
			exp: []step{{OpMark, id(v2)}, {OpDelete, id(v1)}}, reason: "ran 10s without a restart", changing: true},
		{name: "start-first proved: the good one is stopped and deleted",
			want: v2sf, have: []observed.Container{c(v1sf, lbl{status: observed.Running, started: ago(time.Hour), proven: true}), c(v2sf, running(11*time.Second))},
			exp: []step{{OpMark, id(v2sf)}, {OpStop, id(v1sf)}, {OpDelete, id(v1sf)}}, changing: true},
		{name: "with a health check, minReady is not enough",
			want: v2chk, have: []observed.Container{c(v1, held(v2chk)), c(v2chk, running(11*time.Second))},
			exp: []step{{OpRollout, id(v2chk)}}, reason: "pass its health check"},
		{name: "with a health check, healthy and minReady prove it",
			want: v2chk, have: []observed.Container{c(v1, held(v2chk)), c(v2chk, running(11*time.Second))}, healthy: map[string]bool{id(v2chk): true},
			exp: []step{{OpMark, id(v2chk)}, {OpDelete, id(v1)}}, reason: "passed its health check", changing: true},
		{name: "unhealthy: rolled back, the held one started again",
			want: v2chk, have: []observed.Container{c(v1, held(v2chk)), c(v2chk, running(11*time.Second))}, sick: map[string]string{id(v2chk): "tcp :80: refused"},
			exp: []step{{OpMark, id(v1)}, {OpStop, id(v2chk)}, {OpDelete, id(v2chk)}, {OpStart, id(v1)}}, reason: "unhealthy: tcp :80: refused", changing: true},
		{name: "a first failed exit under Always: restarted, still in progress",
			want: v2, have: []observed.Container{c(v1, held(v2)), c(v2, lbl{status: observed.Stopped, started: ago(2 * time.Second), created: ago(2 * time.Second), exit: 1})},
			exp: []step{{OpStart, id(v2)}, {OpRollout, id(v2)}}, reason: "restart 1", changing: true},
		{name: "the third failed exit: rolled back",
			want: v2, have: []observed.Container{c(v1, held(v2)), c(v2, lbl{status: observed.Stopped, started: ago(2 * time.Second), created: ago(8 * time.Second), exit: 1, restarts: 2})},
			exp: []step{{OpMark, id(v1)}, {OpDelete, id(v2)}, {OpStart, id(v1)}}, reason: "exited with code 1, 3 times in 7s", changing: true},
		{name: "Never: the first failed exit rolls back",
			want: v2never, have: []observed.Container{c(v1, held(v2never)), c(v2never, lbl{status: observed.Stopped, started: ago(2 * time.Second), created: ago(3 * time.Second), exit: 2})},
			exp: []step{{OpMark, id(v1)}, {OpDelete, id(v2never)}, {OpStart, id(v1)}}, reason: "exited with code 2, once in 2s", changing: true},
		{name: "OnFailure: exit 0 proves a one-shot task",
			want: v2onf, have: []observed.Container{c(v1, held(v2onf)), c(v2onf, lbl{status: observed.Stopped, started: ago(2 * time.Second), created: ago(3 * time.Second)})},
			exp: []step{{OpMark, id(v2onf)}, {OpDelete, id(v1)}}, reason: "completed", changing: true},
		{name: "the deadline passed without health: rolled back",
			want: v2chk, have: []observed.Container{c(v1, held(v2chk)), c(v2chk, lbl{status: observed.Running, started: ago(6 * time.Minute), created: ago(6 * time.Minute)})},
			exp: []step{{OpMark, id(v1)}, {OpStop, id(v2chk)}, {OpDelete, id(v2chk)}, {OpStart, id(v1)}}, reason: "not healthy within 5m0s", changing: true},
		{name: "the deadline counts from containerd's creation time without the label",
			want: v2short, have: []observed.Container{c(v1, held(v2short)), c(v2short, lbl{status: observed.Stopped, started: ago(2 * time.Second), exit: 1, containerdAge: 2 * time.Minute})},
			exp: []step{{OpMark, id(v1)}, {OpDelete, id(v2short)}, {OpStart, id(v1)}}, reason: "did not run 5s without a restart within 1m0s", changing: true},
		{name: "a stop-first stop cut short while the new one runs: finished",
			want: v2, have: []observed.Container{c(v1, lbl{status: observed.Running, started: ago(time.Hour), proven: true, heldFor: v2.Hash()}), c(v2, running(3*time.Second))},
			exp: []step{{OpStop, id(v1)}, {OpRollout, id(v2)}}, changing: true},
		{name: "rolled back: in sync, the refused change noted",
			want: v2, have: []observed.Container{c(v1, lbl{status: observed.Running, started: ago(time.Minute), proven: true, rolledBack: v2.Hash()})},
			exp: []step{{OpRefused, id(v1)}}, reason: "the change to spec " + v2.Hash() + " was rolled back"},
		{name: "a rollback cut short: the new one removed, the held one started",
			want: v2, have: []observed.Container{c(v1, lbl{status: observed.Stopped, started: ago(time.Hour), proven: true, heldFor: v2.Hash(), rolledBack: v2.Hash(), exit: 143}), c(v2, running(3*time.Second))},
			exp: []step{{OpStop, id(v2)}, {OpDelete, id(v2)}, {OpStart, id(v1)}, {OpRefused, id(v1)}}, changing: true},
		{name: "the manifest goes back to the good spec mid-rollout: in sync at once",
			want: v1, have: []observed.Container{c(v1, held(v2)), c(v2, running(3*time.Second))},
			exp: []step{{OpStop, id(v2)}, {OpDelete, id(v2)}, {OpStart, id(v1)}}, reason: "went back to this spec", changing: true},
		{name: "the manifest goes back to the good spec after a rollback: nothing to do",
			want: v1, have: []observed.Container{c(v1, lbl{status: observed.Running, started: ago(time.Minute), proven: true, rolledBack: v2.Hash()})},
			exp: nil},
		{name: "a third spec after a rollback is tried",
			want: v3, have: []observed.Container{c(v1, lbl{status: observed.Running, started: ago(time.Minute), proven: true, rolledBack: v2.Hash()})},
			exp: []step{{OpStop, id(v1)}, {OpCreate, id(v3)}, {OpStart, id(v3)}}, changing: true},
		{name: "a third spec mid-rollout: the unproven one goes, the good one stays held",
			want: v3, have: []observed.Container{c(v1, held(v2)), c(v2, running(3*time.Second))},
			exp: []step{{OpStop, id(v2)}, {OpDelete, id(v2)}, {OpMark, id(v1)}, {OpCreate, id(v3)}, {OpStart, id(v3)}}, changing: true},
		{name: "proved and the old one already gone: nothing to do",
			want: v2, have: []observed.Container{c(v2, lbl{status: observed.Running, started: ago(time.Hour), proven: true})},
			exp: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := desired.State{Tasks: map[string]desired.Task{"web": tc.want}}
			have := observed.State{Containers: tc.have, Healthy: tc.healthy, Unhealthy: tc.sick}
			actions := Plan(want, have, now)
			if got := steps(actions); !equalSteps(got, tc.exp) {
				t.Fatalf("plan:\n got %v\nwant %v\n%s", got, tc.exp, Describe(actions))
			}
			if Changes(actions) != tc.changing {
				t.Errorf("Changes = %v, want %v", Changes(actions), tc.changing)
			}
			if tc.reason != "" && !strings.Contains(Describe(actions), tc.reason) {
				t.Errorf("no action says %q:\n%s", tc.reason, Describe(actions))
			}
		})
	}
}

// TestPlanRolloutLabels: what the labels of each step say, so that a
// restarted reconciler finds the rollout where it was.
func TestPlanRolloutLabels(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	v1 := task("web", "nginx:1.27", desired.EnvVar{Name: "V", Value: "1"})
	v2 := task("web", "nginx:1.27", desired.EnvVar{Name: "V", Value: "2"})
	good := container(v1, observed.Running)
	good.StartedAt = now.Add(-time.Hour)
	want := desired.State{Tasks: map[string]desired.Task{"web": v2}}

	begin := Plan(want, observed.State{Containers: []observed.Container{good}}, now)
	stop, create := begin[0], begin[1]
	if stop.Labels[observed.LabelHeldFor] != v2.Hash() || stop.Labels[observed.LabelProven] != observed.TimeLabel(now) ||
		stop.Labels[observed.LabelHeldAt] != observed.TimeLabel(now) {
		t.Errorf("stop of the good container labels %v: want held-for %s and proven", stop.Labels, v2.Hash())
	}
	if create.Labels[observed.LabelCreatedAt] != observed.TimeLabel(now) || create.Rollout != rolloutStarted || create.From != good.ID {
		t.Errorf("create: labels %v rollout %q from %q", create.Labels, create.Rollout, create.From)
	}

	good.Status, good.Proven, good.HeldFor = observed.Stopped, now.Add(-time.Hour), v2.Hash()
	bad := container(v2, observed.Running)
	bad.StartedAt, bad.Created = now.Add(-time.Second), now.Add(-time.Second)
	back := Plan(want, observed.State{Containers: []observed.Container{good, bad}, Unhealthy: map[string]string{bad.ID: "exit 1"}}, now)
	mark := back[0]
	if mark.Op != OpMark || mark.ContainerID != good.ID || mark.Rollout != rolloutRolledBack {
		t.Fatalf("first action of a rollback: %v", mark)
	}
	rb := observed.Rollback{Hash: v2.Hash(), Reason: "unhealthy: exit 1", At: now}
	if mark.Labels[observed.LabelRolledBack] != observed.RollbackLabel(rb) {
		t.Errorf("rolled-back label %q, want %q", mark.Labels[observed.LabelRolledBack], observed.RollbackLabel(rb))
	}
	start := back[len(back)-1]
	if start.Op != OpStart || start.ContainerID != good.ID || start.Labels[observed.LabelHeldFor] != "" || start.Restart {
		t.Errorf("last action of a rollback: %+v", start)
	}
	if _, ok := start.Labels[observed.LabelHeldFor]; !ok {
		t.Errorf("the start of the good container does not remove held-for: %v", start.Labels)
	}
}

// TestStatusRollout: the status of a task mid-rollout and of one rolled back.
func TestStatusRollout(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	v1 := task("web", "nginx:1.27", desired.EnvVar{Name: "V", Value: "1"})
	v2 := task("web", "nginx:1.27", desired.EnvVar{Name: "V", Value: "2"})
	good := container(v1, observed.Stopped)
	good.Proven, good.HeldFor, good.StartedAt = now.Add(-time.Hour), v2.Hash(), now.Add(-time.Hour)
	nw := container(v2, observed.Running)
	nw.StartedAt, nw.Created = now.Add(-3*time.Second), now.Add(-3*time.Second)
	have := []observed.Container{good, nw}
	want := desired.State{Tasks: map[string]desired.Task{"web": v2}}
	actions := Plan(want, observed.State{Containers: have}, now)
	st := taskStatus(statusInput{name: "web", task: &v2, hash: v2.Hash(), have: have, actions: actions}, progress{})
	if st.Phase != PhaseRunning || st.ContainerID != nw.ID || st.Rollout.From != good.ID ||
		!st.Rollout.Deadline.Equal(nw.Created.Add(desired.DefaultProgressDeadline)) || st.Rollout.Waiting == "" {
		t.Errorf("mid-rollout status: %+v", st)
	}

	good.Status, good.HeldFor = observed.Running, ""
	good.RolledBack = &observed.Rollback{Hash: v2.Hash(), Reason: "unhealthy: tcp :80: refused", At: now.Add(-time.Minute)}
	have = []observed.Container{good}
	actions = Plan(want, observed.State{Containers: have}, now)
	st = taskStatus(statusInput{name: "web", task: &v2, hash: v2.Hash(), have: have, actions: actions}, progress{})
	if st.Phase != PhaseRunning || st.ContainerID != good.ID || st.RolledBack.RefusedHash != v2.Hash() ||
		st.RolledBack.Reason != "unhealthy: tcp :80: refused" || !strings.Contains(st.Message, "was rolled back") || st.Rollout.From != "" {
		t.Errorf("rolled-back status: %+v", st)
	}
}

// waitTimer waits until the fake clock holds a timer at at: the worker
// sets it after it writes the status, and a step of the clock in between
// would pass it by.
func waitTimer(t *testing.T, clk *clock.Fake, at time.Time) {
	t.Helper()
	eventually(t, func() bool {
		for _, p := range clk.Pending() {
			if p.Equal(at) {
				return true
			}
		}
		return false
	}, "no timer at %v: %v", at, clk.Pending())
}

// TestControllerRollsBack: a changed spec whose container crash-loops is
// rolled back to the very same old container (stop-first: stopped, kept,
// started again), the refused spec is not tried again, also by a new
// controller (a restarted reconciler), and a later good spec rolls out
// and removes the old container. The metrics count both.
func TestControllerRollsBack(t *testing.T) {
	rt := newFakeRuntime()
	clk := newFakeClock()
	rt.now = clk.Now
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	rollout := "  minReady: 2s\n  progressDeadline: 1m\n"
	v1 := taskWith(t, "web", "  env: [{name: V, value: '1'}]\n"+rollout)
	v2 := taskWith(t, "web", "  env: [{name: V, value: '2'}]\n"+rollout)
	v3 := taskWith(t, "web", "  env: [{name: V, value: '3'}]\n"+rollout)
	c, stop := startController(t, rt, Config{Workers: 2, Clock: clk, Metrics: m}, stateOf(v1))
	waitPhase(t, c, "web", PhaseRunning)
	clk.Step(3 * time.Second) // v1 has run minReady: it is a rollback target

	c.SetDesired(stateOf(v2))
	eventually(t, func() bool { return rt.running(idOf(v2)) }, "v2 never started")
	if rt.running(idOf(v1)) {
		t.Fatal("stop-first: v1 still runs beside v2")
	}
	if l := rt.labels(idOf(v1)); l[observed.LabelHeldFor] != v2.Hash() || l[observed.LabelProven] == "" {
		t.Errorf("v1's labels during the rollout: %v", l)
	}
	st := waitPhase(t, c, "web", PhaseRunning)
	if st.Rollout.From != idOf(v1) {
		t.Errorf("status during the rollout: %+v", st)
	}
	// v2 exits 1 three times: its restarts are allowed, the third exit
	// rolls back.
	for i := range 3 {
		eventually(t, func() bool { return rt.running(idOf(v2)) }, "v2 not running before exit %d", i+1)
		rt.exit(idOf(v2), 1, clk.Now())
		c.Exited(idOf(v2))
		if i < 2 {
			st := waitBackOff(t, c, clk, "web")
			clk.Step(st.NextRetry.Sub(clk.Now()))
		}
	}
	eventually(t, func() bool { _, ok := rt.container(idOf(v2)); return !ok && rt.running(idOf(v1)) }, "never rolled back to v1")
	st = waitPhase(t, c, "web", PhaseRunning)
	if st.ContainerID != idOf(v1) || st.RolledBack.RefusedHash != v2.Hash() || !strings.HasPrefix(st.RolledBack.Reason, "exited with code 1, 3 times in") {
		t.Errorf("status after the rollback: %+v", st)
	}
	if n := rt.count(0, OpCreate, idOf(v1)); n != 1 {
		t.Errorf("v1 created %d times: a rollback starts the same container again", n)
	}
	if got := testutil.ToFloat64(m.rollouts.WithLabelValues("web", rolloutRolledBack)); got != 1 {
		t.Errorf("rolled_back rollouts = %v", got)
	}

	// A restarted reconciler leaves the refused spec alone.
	stop()
	mark := rt.mark()
	c, _ = startController(t, rt, Config{Workers: 2, Clock: clk}, stateOf(v2))
	waitReady(t, c)
	st = waitPhase(t, c, "web", PhaseRunning)
	if st.RolledBack.RefusedHash != v2.Hash() {
		t.Errorf("status after a restart: %+v", st)
	}
	if muts := rt.mutations(mark); len(muts) != 0 {
		t.Errorf("a restart with the refused spec changed %v", callStrings(muts))
	}

	// A third spec is tried, proves itself and replaces v1.
	c.SetDesired(stateOf(v3))
	eventually(t, func() bool { return rt.running(idOf(v3)) }, "v3 never started")
	st = waitPhase(t, c, "web", PhaseRunning)
	waitTimer(t, clk, st.StartedAt.Add(2*time.Second))
	clk.Step(2 * time.Second)
	eventually(t, func() bool { _, ok := rt.container(idOf(v1)); return !ok }, "v1 never removed after v3 proved itself")
	if l := rt.labels(idOf(v3)); l[observed.LabelProven] == "" {
		t.Errorf("v3 not marked proven: %v", l)
	}
	eventually(t, func() bool {
		st, _ = c.TaskStatus("web")
		return st.Rollout.From == "" && st.RolledBack.RefusedHash == ""
	},
		"status after v3: %+v", &st)
}

// TestControllerRolloutCountsMinReadyFromTheStart: a start that takes long
// (a loaded node) does not count towards minReady: the new container's
// start time is written again once its start returned.
func TestControllerRolloutCountsMinReadyFromTheStart(t *testing.T) {
	rt := newFakeRuntime()
	clk := newFakeClock()
	rt.now = clk.Now
	v1 := taskWith(t, "web", "  env: [{name: V, value: '1'}]\n  minReady: 2s\n")
	v2 := taskWith(t, "web", "  env: [{name: V, value: '2'}]\n  minReady: 2s\n")
	c, _ := startController(t, rt, Config{Workers: 2, Clock: clk}, stateOf(v1))
	waitPhase(t, c, "web", PhaseRunning)
	clk.Step(3 * time.Second)

	release := rt.block(OpStart, idOf(v2))
	c.SetDesired(stateOf(v2))
	eventually(t, func() bool { return rt.count(0, OpStart, idOf(v2)) == 1 }, "v2's start never called")
	clk.Step(5 * time.Second) // the start takes 5s, longer than minReady
	release()
	eventually(t, func() bool { return rt.running(idOf(v2)) }, "v2 never started")
	eventually(t, func() bool { return rt.labels(idOf(v2))[observed.LabelStartedAt] == observed.TimeLabel(clk.Now()) },
		"v2's start time not written after its start: %v", rt.labels(idOf(v2)))
	st := waitPhase(t, c, "web", PhaseRunning)
	if st.Rollout.From != idOf(v1) {
		t.Fatalf("v2 proved itself by a slow start: %+v", st)
	}
	if _, ok := rt.container(idOf(v1)); !ok {
		t.Fatal("v1 removed before v2 ran minReady")
	}
}

// TestPlanRolloutMovedTag: a moved tag (imagePullPolicy Always, re-pulled)
// rolls out like a changed spec: the new digest's container (named by its
// revision) proves itself beside the kept one, a failure refuses that
// digest ("hash@digest") until the tag moves again.
func TestPlanRolloutMovedTag(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	web := task("web", "registry.example/web:stable")
	web.Spec.ImagePullPolicy = desired.PullAlways
	hash := web.Hash()
	old, moved, again := "sha256:"+strings.Repeat("a", 64), "sha256:"+strings.Repeat("b", 64), "sha256:"+strings.Repeat("c", 64)
	plain, rev, rev2 := observed.ContainerID("web", hash), observed.RevisionID("web", hash, moved), observed.RevisionID("web", hash, again)
	good := container(web, observed.Running)
	good.ImageDigest, good.StartedAt = old, now.Add(-time.Hour)
	heldGood := good
	heldGood.Status, heldGood.Proven, heldGood.HeldFor, heldGood.ExitCode = observed.Stopped, now.Add(-time.Hour), hash+"@"+moved, 143
	newer := container(web, observed.Stopped)
	newer.Raw.ID, newer.Revision, newer.ImageDigest = rev, observed.Revision(moved), moved
	newer.StartedAt, newer.Created, newer.ExitCode, newer.Restarts, newer.ExitedAt = now.Add(-2*time.Second), now.Add(-5*time.Second), 1, 2, now
	refused := good
	refused.Proven = now.Add(-time.Hour)
	refused.RolledBack = &observed.Rollback{Hash: hash + "@" + moved, Reason: "exited with code 1, 3 times in 5s", At: now}

	for _, tc := range []struct {
		name   string
		have   []observed.Container
		pulled string
		exp    []step
		reason string
	}{
		{"the tag moves: the good container is kept, the new digest's created", []observed.Container{good}, moved,
			[]step{{OpStop, plain}, {OpCreate, rev}, {OpStart, rev}}, "image registry.example/web:stable moved to " + moved},
		{"the new digest crash-loops: rolled back", []observed.Container{heldGood, newer}, moved,
			[]step{{OpMark, plain}, {OpDelete, rev}, {OpStart, plain}}, "exited with code 1, 3 times in 5s"},
		{"the refused digest is not tried again", []observed.Container{refused}, moved,
			[]step{{OpRefused, plain}}, "the change to spec " + hash + "@" + moved + " was rolled back"},
		{"the tag moves again: tried", []observed.Container{refused}, again,
			[]step{{OpStop, plain}, {OpCreate, rev2}, {OpStart, rev2}}, "moved to " + again},
		{"no re-pull yet (a restarted reconciler): left alone", []observed.Container{refused}, "",
			nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := desired.State{Tasks: map[string]desired.Task{"web": web}}
			have := observed.State{Containers: tc.have}
			if tc.pulled != "" {
				have.Pulled = map[string]string{web.Spec.Image: tc.pulled}
			}
			actions := Plan(want, have, now)
			if got := steps(actions); !equalSteps(got, tc.exp) {
				t.Fatalf("plan:\n got %v\nwant %v\n%s", got, tc.exp, Describe(actions))
			}
			if tc.reason != "" && !strings.Contains(Describe(actions), tc.reason) {
				t.Errorf("no action says %q:\n%s", tc.reason, Describe(actions))
			}
			for _, a := range actions {
				if a.Op == OpCreate && a.Labels[observed.LabelRevision] != strings.TrimPrefix(a.ContainerID, plain+"-") {
					t.Errorf("create %s with revision label %q", a.ContainerID, a.Labels[observed.LabelRevision])
				}
			}
		})
	}
}
