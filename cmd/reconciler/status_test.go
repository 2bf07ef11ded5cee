package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/warren/reconciler/pkg/reconcile"
)

func TestHumanAge(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second: "0s", 45 * time.Second: "45s", 3*time.Minute + 12*time.Second: "3m12s",
		5*time.Hour + 4*time.Minute: "5h4m", 50 * time.Hour: "2d2h",
	} {
		if got := humanAge(d); got != want {
			t.Errorf("humanAge(%s) = %q, want %q", d, got, want)
		}
	}
}

func TestPrintStatusTable(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tasks := []reconcile.TaskStatus{
		{Name: "web", Phase: reconcile.PhaseRunning, Restarts: 2, StartedAt: now.Add(-90 * time.Second), Image: "nginx:1.27", Message: "running"},
		{Name: "job", Phase: reconcile.PhaseCrashLoopBackOff, Image: "busybox", Message: "exited with code 1;\nback-off 2s"},
		{Name: "db", Phase: reconcile.PhaseRunning, Image: "postgres", Message: "running", StartedAt: now.Add(-time.Hour),
			Health: reconcile.HealthStatus{State: "healthy", Streak: 1}},
	}
	var b bytes.Buffer
	if err := printStatus(&b, "table", nil, tasks, now); err != nil {
		t.Fatal(err)
	}
	want := `NAME   PHASE              HEALTH                RESTARTS   AGE     IMAGE        MESSAGE
web    Running            -                     2          1m30s   nginx:1.27   running
job    CrashLoopBackOff   -                     0          -       busybox      exited with code 1; back-off 2s
db     Running            healthy (1 failing)   0          1h0m    postgres     running
`
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
	tasks[0].IP, tasks[0].Ports, tasks[0].ContainerID = "10.47.0.2", "127.0.0.1:8080->80/TCP", "web-0123456789ab"
	tasks[0].Revision = "3f2a9c1b7d4e5f60718293a4b5c6d7e8f9012345"
	b.Reset()
	if err := printStatus(&b, "wide", nil, tasks[:1], now); err != nil {
		t.Fatal(err)
	}
	want = `NAME   POD   PHASE     HEALTH   RESTARTS   AGE     IP          PORTS                    CONTAINER          COMMIT         IMAGE        MESSAGE
web    -     Running   -        2          1m30s   10.47.0.2   127.0.0.1:8080->80/TCP   web-0123456789ab   3f2a9c1b7d4e   nginx:1.27   running
`
	if b.String() != want {
		t.Errorf("wide:\n%s\nwant:\n%s", b.String(), want)
	}
	// The tasks of a pod: the POD column, in the table too; "(init)"
	// after an init container's pod.
	pod := []reconcile.TaskStatus{
		{Name: "pair-front", Pod: "pair", Phase: reconcile.PhaseWaiting, Image: "testapp:v1", Message: "waiting for pair-setup to be completed"},
		{Name: "pair-setup", Pod: "pair", InitContainer: true, Phase: reconcile.PhaseRunning, StartedAt: now.Add(-time.Second), Image: "testapp:v1", Message: "running"},
		tasks[0],
	}
	b.Reset()
	if err := printStatus(&b, "table", nil, pod, now); err != nil {
		t.Fatal(err)
	}
	want = `NAME         POD           PHASE     HEALTH   RESTARTS   AGE     IMAGE        MESSAGE
pair-front   pair          Waiting   -        0          -       testapp:v1   waiting for pair-setup to be completed
pair-setup   pair (init)   Running   -        0          1s      testapp:v1   running
web          -             Running   -        2          1m30s   nginx:1.27   running
`
	if b.String() != want {
		t.Errorf("table with a pod:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	if err := printStatus(&b, "wide", nil, pod[:1], now); err != nil {
		t.Fatal(err)
	}
	want = `NAME         POD    PHASE     HEALTH   RESTARTS   AGE   IP   PORTS   CONTAINER   COMMIT   IMAGE        MESSAGE
pair-front   pair   Waiting   -        0          -     -    -                   -        testapp:v1   waiting for pair-setup to be completed
`
	if b.String() != want {
		t.Errorf("wide with a pod:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestClientCommandsWithoutDaemon(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"status", "--state-dir", dir},
		{"wait", "web", "--state-dir", dir, "--timeout", "1s"},
	} {
		var out, errb bytes.Buffer
		if code := runMain(args, &out, &errb); code != exitFailure || !strings.Contains(errb.String(), "reach the reconciler daemon") {
			t.Errorf("%v: exit %d, stderr %q", args, code, errb.String())
		}
	}
	for _, args := range [][]string{{"wait"}, {"wait", "web", "--for=happy"}, {"status", "a", "b"}, {"status", "-o", "xml"}} {
		var out, errb bytes.Buffer
		if code := runMain(args, &out, &errb); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
}

func TestWaitConditionHealthy(t *testing.T) {
	healthy := waitConditions["healthy"]
	for _, c := range []struct {
		st    reconcile.TaskStatus
		found bool
		want  bool
	}{
		{reconcile.TaskStatus{Phase: reconcile.PhaseRunning}, true, true}, // no check: running is enough
		{reconcile.TaskStatus{Phase: reconcile.PhaseRunning, Health: reconcile.HealthStatus{State: "healthy"}}, true, true},
		{reconcile.TaskStatus{Phase: reconcile.PhaseRunning, Health: reconcile.HealthStatus{State: "starting"}}, true, false},
		{reconcile.TaskStatus{Phase: reconcile.PhaseRunning, Health: reconcile.HealthStatus{State: "unhealthy"}}, true, false},
		{reconcile.TaskStatus{Phase: reconcile.PhaseCrashLoopBackOff}, true, false},
		{reconcile.TaskStatus{}, false, false},
	} {
		if got := healthy(c.st, c.found); got != c.want {
			t.Errorf("healthy(%s, %q, found %v) = %v, want %v", c.st.Phase, c.st.Health.State, c.found, got, c.want)
		}
	}
}

func TestWaitConditionsDuringRollout(t *testing.T) {
	rolling := reconcile.TaskStatus{Phase: reconcile.PhaseRunning, Rollout: reconcile.RolloutStatus{From: "web-aaaaaaaaaaaa"}}
	for _, cond := range []string{"running", "healthy"} {
		if waitConditions[cond](rolling, true) {
			t.Errorf("%s met while the new container is still proving itself", cond)
		}
		if !waitConditions[cond](reconcile.TaskStatus{Phase: reconcile.PhaseRunning}, true) {
			t.Errorf("%s not met by a running task with no rollout", cond)
		}
	}
}

// TestWaitRolledBack: a task whose desired spec was rolled back will not
// run it; wait says why at once and exits 1 (running and healthy).
func TestWaitRolledBack(t *testing.T) {
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	st := reconcile.TaskStatus{Name: "web", Phase: reconcile.PhaseRunning, ContainerID: "web-aaaaaaaaaaaa", SpecHash: "bbbbbbbbbbbb",
		RolledBack: reconcile.RollbackStatus{RefusedHash: "bbbbbbbbbbbb", Reason: "exited with code 1, 3 times in 7s", At: at}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(st)
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	for _, cond := range []string{"running", "healthy"} {
		var stdout, stderr strings.Builder
		code := runMain([]string{"wait", "web", "--for=" + cond, "--api", addr, "--timeout", "10s"}, &stdout, &stderr)
		want := "web: the change to spec bbbbbbbbbbbb was rolled back at 2026-12-05T10:00:00Z: exited with code 1, 3 times in 7s; web-aaaaaaaaaaaa runs the last good spec\n"
		if code != exitFailure || stderr.String() != want {
			t.Errorf("wait --for=%s: exit %d, stderr %q; want %d, %q", cond, code, stderr.String(), exitFailure, want)
		}
	}
}

// TestWaitTimesOutDuringARequest: a timeout that comes while the daemon
// has not answered is a timeout (exit 1), not success.
func TestWaitTimesOutDuringARequest(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	var stdout, stderr strings.Builder
	code := runMain([]string{"wait", "web", "--api", strings.TrimPrefix(srv.URL, "http://"), "--timeout", "200ms"}, &stdout, &stderr)
	if want := "timed out waiting for web to be running; last status web: no answer from the daemon\n"; code != exitFailure || stderr.String() != want {
		t.Errorf("exit %d, stderr %q; want %d, %q", code, stderr.String(), exitFailure, want)
	}
}
