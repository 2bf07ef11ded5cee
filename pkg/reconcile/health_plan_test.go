package reconcile

import (
	"strings"
	"testing"
	"time"

	"github.com/warren/reconciler/pkg/desired"
	"github.com/warren/reconciler/pkg/observed"
)

// TestPlanHealth: a running container the probes found unhealthy is
// stopped, with why on its labels; its exit then counts as a failure,
// whatever its code, and its restart clears the mark.
func TestPlanHealth(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	web := task("web", "nginx:1.27")
	job := task("job", "busybox:1")
	job.Spec.RestartPolicy = desired.RestartOnFailure
	once := task("once", "busybox:1")
	once.Spec.RestartPolicy = desired.RestartNever
	ready := task("ready", "nginx:1.27") // a readiness check: it restarts nothing
	ready.Spec.HealthCheck = &desired.HealthCheck{TCP: &desired.TCPProbe{Port: 80}, OnUnhealthy: desired.OnUnhealthyNone}
	why := `3 probes failed: exec exit 1: "refused"`
	stoppedUnhealthy := func(tk desired.Task, code uint32, at time.Time) observed.Container {
		c := exited(tk, code, at)
		c.Unhealthy = why
		return c
	}

	for _, c := range []struct {
		name      string
		task      desired.Task
		have      observed.Container
		unhealthy bool
		exp       []step
		reason    string
		labels    map[string]string
	}{
		{"running and unhealthy: stopped, marked", web, container(web, observed.Running), true,
			[]step{{OpStop, idOf(web)}}, "unhealthy: " + why, map[string]string{observed.LabelUnhealthy: why}},
		{"running and healthy: left alone", web, container(web, observed.Running), false, nil, "", nil},
		{"onUnhealthy: none, running and unhealthy: left alone", ready, container(ready, observed.Running), true, nil, "", nil},
		{"paused and unhealthy: left alone (not probed)", web, container(web, observed.Paused), true, nil, "", nil},
		{"stopped for its health, exit 0, OnFailure: restarted", job, stoppedUnhealthy(job, 0, now.Add(-time.Hour)), false,
			[]step{{OpStart, idOf(job)}}, "unhealthy: " + why + "; restart 1", map[string]string{observed.LabelUnhealthy: ""}},
		{"stopped for its health, in its back-off", job, stoppedUnhealthy(job, 143, now), false,
			[]step{{OpWait, idOf(job)}}, "unhealthy: " + why + "; back-off 1s before restart 1", nil},
		{"stopped for its health, Never: stays stopped", once, stoppedUnhealthy(once, 0, now.Add(-time.Hour)), false, nil, "", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			have := observed.State{Containers: []observed.Container{c.have}}
			if c.unhealthy {
				have.Unhealthy = map[string]string{c.have.ID: why}
			}
			as := Plan(desired.State{Tasks: map[string]desired.Task{c.task.Metadata.Name: c.task}}, have, now)
			if got := steps(as); !equalSteps(got, c.exp) {
				t.Fatalf("plan = %v, want %v", got, c.exp)
			}
			if len(as) == 0 {
				return
			}
			if as[0].Reason != c.reason {
				t.Errorf("reason = %q, want %q", as[0].Reason, c.reason)
			}
			for k, v := range c.labels {
				if got, ok := as[0].Labels[k]; !ok || got != v {
					t.Errorf("label %s = %q (set %v), want %q", k, got, ok, v)
				}
			}
		})
	}
}

func equalSteps(a, b []step) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestStatusHealth: the status of a task stopped for its health says so,
// as Failed even after exit 0.
func TestStatusHealth(t *testing.T) {
	once := task("once", "busybox:1")
	once.Spec.RestartPolicy = desired.RestartNever
	c := exited(once, 0, time.Now())
	c.Unhealthy = `2 probes failed: http 503`
	st := taskStatus(statusInput{name: "once", task: &once, hash: once.Hash(), have: []observed.Container{c}}, progress{})
	if st.Phase != PhaseFailed || st.Message != `unhealthy: 2 probes failed: http 503 (exited with code 0)` {
		t.Errorf("status = %s %q", st.Phase, st.Message)
	}
}

// TestPlanDependsOn: a new container waits until the tasks it depends on
// meet their conditions; what already runs, and restarts, never wait.
func TestPlanDependsOn(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	app := task("app", "app:1")
	app.Spec.DependsOn = []desired.Dependency{{Task: "db", Condition: desired.DependHealthy}, {Task: "migrate", Condition: desired.DependCompleted}}
	appV2 := task("app", "app:2")
	appV2.Spec.DependsOn = app.Spec.DependsOn
	ready := map[string]observed.Peer{"db": {Running: true, Healthy: true}, "migrate": {Completed: true}}
	for _, c := range []struct {
		name   string
		task   desired.Task
		have   []observed.Container
		peers  map[string]observed.Peer
		exp    []step
		reason string
	}{
		{"no such tasks yet", app, nil, nil, []step{{OpAwait, idOf(app)}},
			"waiting for db to be healthy (no such task yet), migrate to be completed (no such task yet)"},
		{"db runs but is not healthy yet", app, nil, map[string]observed.Peer{"db": {Running: true}, "migrate": {Completed: true}},
			[]step{{OpAwait, idOf(app)}}, "waiting for db to be healthy"},
		{"migrate still runs", app, nil, map[string]observed.Peer{"db": {Running: true, Healthy: true}, "migrate": {Running: true, Healthy: true}},
			[]step{{OpAwait, idOf(app)}}, "waiting for migrate to be completed"},
		{"both met: created", app, nil, ready, []step{{OpCreate, idOf(app)}, {OpStart, idOf(app)}}, "not present"},
		{"running: a dependency that went away stops nothing", app, []observed.Container{container(app, observed.Running)}, nil, nil, ""},
		{"exited: restarted without waiting", app, []observed.Container{exited(app, 1, now.Add(-time.Hour))}, nil,
			[]step{{OpStart, idOf(app)}}, "exited with code 1; restart 1"},
		{"a replacement waits, the old container kept", appV2, []observed.Container{container(app, observed.Running)}, nil,
			[]step{{OpAwait, idOf(appV2)}}, "waiting for db"},
		{"a replacement once met", appV2, []observed.Container{container(app, observed.Running)}, ready,
			[]step{{OpStop, idOf(app)}, {OpDelete, idOf(app)}, {OpCreate, idOf(appV2)}, {OpStart, idOf(appV2)}}, "spec changed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			as := Plan(desired.State{Tasks: map[string]desired.Task{"app": c.task}}, observed.State{Containers: c.have, Peers: c.peers}, now)
			if got := steps(as); !equalSteps(got, c.exp) {
				t.Fatalf("plan = %v, want %v", got, c.exp)
			}
			if len(as) > 0 && !strings.HasPrefix(as[0].Reason, c.reason) {
				t.Errorf("reason = %q, want it to start with %q", as[0].Reason, c.reason)
			}
			if Changes(as) != (len(c.exp) > 0 && c.exp[0].Op != OpAwait) {
				t.Errorf("Changes = %v", Changes(as))
			}
			st := taskStatus(statusInput{name: "app", task: &c.task, hash: c.task.Hash(), have: c.have, actions: as}, progress{})
			if (len(c.exp) > 0 && c.exp[0].Op == OpAwait) != (st.Phase == PhaseWaiting) {
				t.Errorf("phase %s for plan %v", st.Phase, steps(as))
			}
		})
	}
}

func TestPeerMeets(t *testing.T) {
	for _, c := range []struct {
		p    observed.Peer
		cond desired.DependCondition
		want bool
	}{
		{observed.Peer{Running: true}, desired.DependRunning, true},
		{observed.Peer{Running: true}, desired.DependHealthy, false},
		{observed.Peer{Running: true, Healthy: true}, desired.DependHealthy, true},
		{observed.Peer{Completed: true}, desired.DependRunning, false},
		{observed.Peer{Completed: true}, desired.DependCompleted, true},
		{observed.Peer{}, desired.DependCompleted, false},
	} {
		if got := c.p.Meets(c.cond); got != c.want {
			t.Errorf("%+v meets %s = %v, want %v", c.p, c.cond, got, c.want)
		}
	}
	for _, c := range []struct {
		st   TaskStatus
		want observed.Peer
	}{
		{TaskStatus{Phase: PhaseRunning}, observed.Peer{Running: true, Healthy: true}},
		{TaskStatus{Phase: PhaseRunning, Health: HealthStatus{State: "starting"}}, observed.Peer{Running: true}},
		{TaskStatus{Phase: PhaseRunning, Health: HealthStatus{State: "healthy"}}, observed.Peer{Running: true, Healthy: true}},
		{TaskStatus{Phase: PhaseCompleted}, observed.Peer{Completed: true}},
		{TaskStatus{Phase: PhaseCrashLoopBackOff}, observed.Peer{}},
	} {
		if got := peerOf(c.st); got != c.want {
			t.Errorf("peerOf(%s, %q) = %+v, want %+v", c.st.Phase, c.st.Health.State, got, c.want)
		}
	}
}

// TestPeersOf: without the daemon, what containerd shows of the tasks
// others depend on; a task with a health check is not taken as healthy.
func TestPeersOf(t *testing.T) {
	now := time.Now()
	web := task("web", "nginx:1")
	db := task("db", "postgres:16")
	db.Spec.HealthCheck = &desired.HealthCheck{TCP: &desired.TCPProbe{Port: 5432}}
	job := task("job", "busybox:1")
	job.Spec.RestartPolicy = desired.RestartOnFailure
	crash := task("crash", "busybox:1")
	crash.Spec.RestartPolicy = desired.RestartAlways
	gone := task("gone", "busybox:1")
	want := desired.State{Tasks: map[string]desired.Task{"web": web, "db": db, "job": job, "crash": crash, "gone": gone}}
	have := observed.State{Containers: []observed.Container{
		container(web, observed.Running), container(db, observed.Running), exited(job, 0, now), exited(crash, 0, now),
	}}
	got := PeersOf(want, have)
	for name, p := range map[string]observed.Peer{
		"web": {Running: true, Healthy: true}, "db": {Running: true}, "job": {Completed: true}, "crash": {}, "gone": {},
	} {
		if g, ok := got[name]; !ok || g != p {
			t.Errorf("%s: %+v (known %v), want %+v", name, g, ok, p)
		}
	}
}

func TestHealthPlan(t *testing.T) {
	web := task("web", "nginx:1")
	if got := HealthPlan(&web); got != "the image's HEALTHCHECK, if it has one" {
		t.Errorf("no check: %q", got)
	}
	web.Spec.HealthCheck = &desired.HealthCheck{Disabled: true}
	if got := HealthPlan(&web); got != "none (disabled)" {
		t.Errorf("disabled: %q", got)
	}
	web.Spec.HealthCheck = &desired.HealthCheck{HTTP: &desired.HTTPProbe{Port: 8080, Path: "/healthz"}}
	if got := HealthPlan(&web); got != "http :8080/healthz every 10s (timeout 2s, 3 retries; from the manifest)" {
		t.Errorf("http: %q", got)
	}
}
