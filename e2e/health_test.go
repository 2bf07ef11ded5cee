package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/warren/reconciler/e2e/imagebuild"
	"github.com/warren/reconciler/e2e/testenv"
	"github.com/warren/reconciler/pkg/observed"
)

// taskStatus reads one task's status from the daemon of namespace ns.
func taskStatus(t *testing.T, ns, task string) testenv.TaskStatus {
	t.Helper()
	st, err := testenv.ReadTaskStatus(env.bin, stateDir(ns), task)
	if err != nil {
		return testenv.TaskStatus{}
	}
	return st
}

// TestHealthExecUnhealthyRestarts: a task whose exec probe starts failing
// (it removes its own marker file) is stopped after retries failures and
// restarted, counted, with the reason on its status and on the container.
func TestHealthExecUnhealthyRestarts(t *testing.T) {
	n := newNode(t, "e2e-health-exec")
	dir := t.TempDir()
	d := startReconciler(t, n.ns, dir)
	testenv.WriteFile(t, dir, "web.yaml", testenv.Manifest("web",
		"args: [-marker, /tmp/ok, -marker-gone-after, 3s]",
		"stopGracePeriod: 1s",
		"restartBackoff: {initial: 100ms}",
		"healthCheck: {exec: {command: [/testapp, probe, -file, /tmp/ok]}, interval: 500ms, timeout: 2s, retries: 2}"))
	var first ctr
	testenv.WaitFor(t, converge, "web running", func() (ok bool) { first, ok = n.running("web"); return ok })
	testenv.WaitFor(t, converge, "web healthy", func() bool { return taskStatus(t, n.ns, "web").Health.State == "healthy" })
	st := taskStatus(t, n.ns, "web")
	if st.Health.Source != "manifest" || !strings.Contains(st.Health.Output, "/tmp/ok is there") {
		t.Errorf("health on the status: %+v", st.Health)
	}
	// The marker goes after 3s: two failed probes later the task is
	// stopped and started again, in the same container.
	testenv.WaitFor(t, 30*time.Second, "web restarted for its health", func() bool {
		c, ok := n.running("web")
		return ok && c.Pid != first.Pid && c.Labels[observed.LabelRestarts] == "1"
	})
	c, _ := n.running("web")
	if c.ID != first.ID {
		t.Errorf("restarted as %s, want the same container %s", c.ID, first.ID)
	}
	if _, marked := c.Labels[observed.LabelUnhealthy]; marked {
		t.Error("the unhealthy label stayed on the restarted task")
	}
	st = taskStatus(t, n.ns, "web")
	if st.Restarts < 1 {
		t.Errorf("restarts = %d, want at least 1", st.Restarts)
	}
	// The reason was on the status while it was stopped; the daemon's log
	// keeps it.
	d.WaitLog(`unhealthy: 2 probes failed: exec exit 1`, time.Second)
	noProbeLeft(t)
}

// noProbeLeft checks the host's process list: no probe process is left.
func noProbeLeft(t *testing.T) {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if args := strings.Split(string(b), "\x00"); len(args) > 1 && strings.HasSuffix(args[0], "testapp") && args[1] == "probe" {
			// A probe running now is no leak; one seen again a
			// second later is (interval 500ms, they exit at once).
			time.Sleep(time.Second)
			if _, err := os.Stat(p); err == nil {
				t.Errorf("a probe process is left on the host: %s %q", p, args)
			}
		}
	}
}

// TestHealthNetProbes: an http and a tcp probe on host-network tasks, and
// an http probe on a network: none task that serves on its own loopback
// only (the reconciler dials inside its network namespace); a task whose
// port answers 503 becomes unhealthy.
func TestHealthNetProbes(t *testing.T) {
	n := newNode(t, "e2e-health-net")
	dir := t.TempDir()
	startReconciler(t, n.ns, dir)
	p1, p2, p3 := freePort(t), freePort(t), freePort(t)
	testenv.WriteFile(t, dir, "http.yaml", testenv.Manifest("web",
		"args: [-listen, 127.0.0.1:"+strconv.Itoa(p1)+", -marker, /tmp/ok, -health-file, /tmp/ok]",
		"healthCheck: {http: {port: "+strconv.Itoa(p1)+", path: /healthz}, interval: 500ms}"))
	testenv.WriteFile(t, dir, "tcp.yaml", testenv.Manifest("tcp",
		"args: [-listen, 127.0.0.1:"+strconv.Itoa(p2)+"]",
		"healthCheck: {tcp: {port: "+strconv.Itoa(p2)+"}, interval: 500ms}"))
	testenv.WriteFile(t, dir, "none.yaml", testenv.Manifest("isolated",
		"network: none",
		"args: [-listen, 127.0.0.1:8080, -marker, /tmp/ok, -health-file, /tmp/ok]",
		"healthCheck: {http: {port: 8080, path: /healthz}, interval: 500ms}"))
	testenv.WriteFile(t, dir, "bad.yaml", testenv.Manifest("bad",
		"args: [-listen, 127.0.0.1:"+strconv.Itoa(p3)+", -health-file, /tmp/never]",
		"restartPolicy: Never", "stopGracePeriod: 1s",
		"healthCheck: {http: {port: "+strconv.Itoa(p3)+", path: /healthz}, interval: 500ms, retries: 2}"))
	for _, task := range []string{"web", "tcp", "isolated"} {
		testenv.WaitFor(t, converge, task+" healthy", func() bool { return taskStatus(t, n.ns, task).Health.State == "healthy" })
	}
	if st := taskStatus(t, n.ns, "web"); !strings.Contains(st.Health.Output, "http 200") {
		t.Errorf("web's last probe: %q", st.Health.Output)
	}
	if st := taskStatus(t, n.ns, "isolated"); !strings.Contains(st.Health.Output, `"ok"`) {
		t.Errorf("isolated's last probe: %q", st.Health.Output)
	}
	// From the host, the isolated task's port is not reachable: the probe
	// went through its namespace.
	if c, err := net.DialTimeout("tcp", "127.0.0.1:8080", time.Second); err == nil {
		c.Close()
		t.Log("something on the host listens on 8080; the namespace check proves less")
	}
	var st testenv.TaskStatus
	testenv.WaitFor(t, converge, "bad failed for its health", func() bool {
		st = taskStatus(t, n.ns, "bad")
		return st.Phase == "Failed"
	})
	if !strings.Contains(st.Message, "unhealthy: 2 probes failed: http 503") {
		t.Errorf("bad's message = %q", st.Message)
	}
	cs := n.containers("bad")
	if len(cs) != 1 || cs[0].Status != "stopped" || cs[0].Labels[observed.LabelUnhealthy] == "" {
		t.Errorf("bad in containerd: %+v, want one stopped container marked unhealthy", cs)
	}
}

// TestHealthStartPeriod: failures within startPeriod do not count, so a
// slow starter (healthy after 3s, retries 1) is not restarted.
func TestHealthStartPeriod(t *testing.T) {
	n := newNode(t, "e2e-health-start")
	dir := t.TempDir()
	startReconciler(t, n.ns, dir)
	testenv.WriteFile(t, dir, "slow.yaml", testenv.Manifest("slow",
		"args: [-marker, /tmp/ok, -marker-after, 3s]",
		"healthCheck: {exec: {command: [/testapp, probe, -file, /tmp/ok]}, interval: 300ms, retries: 1, startPeriod: 10s}"))
	testenv.WaitFor(t, 30*time.Second, "slow healthy", func() bool { return taskStatus(t, n.ns, "slow").Health.State == "healthy" })
	if c, ok := n.running("slow"); !ok || c.Labels[observed.LabelRestarts] != "0" {
		t.Errorf("slow was restarted during its start period: %+v", c)
	}
}

// TestHealthImageHealthcheck: an image's HEALTHCHECK is the task's check
// when its manifest has none, and healthCheck: {disabled: true} turns it
// off.
func TestHealthImageHealthcheck(t *testing.T) {
	images := t.TempDir()
	base, err := tarball.ImageFromPath(env.archive, nil)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := base.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.Config.Healthcheck = &v1.HealthConfig{Test: []string{"CMD", "/testapp", "probe", "-exit", "0"}, Interval: 500 * time.Millisecond, Retries: 2}
	img, err := mutate.ConfigFile(base, cf)
	if err != nil {
		t.Fatal(err)
	}
	const ref = "localhost/reconciler/testapp:healthcheck"
	if err := imagebuild.WriteArchive(filepath.Join(images, "healthcheck.tar"), ref, img); err != nil {
		t.Fatal(err)
	}
	n := newNode(t, "e2e-health-image")
	dir := t.TempDir()
	run := testenv.Run{Address: env.address, Containerd: "external", RuncRoot: env.runcRoot,
		Namespace: n.ns, Manifests: dir, Images: images, StateDir: stateDir(n.ns), Resync: time.Second}
	d := testenv.StartTest(t, env.bin, run.Args(), testenv.TestOptions{Options: testenv.Options{Grace: 20 * time.Second}})
	d.WaitLog(testenv.InitialSync, 30*time.Second)
	manifest := func(name string, spec ...string) string {
		return strings.Replace(testenv.Manifest(name, spec...), imagebuild.DefaultRef, ref, 1)
	}
	testenv.WriteFile(t, dir, "checked.yaml", manifest("checked"))
	testenv.WriteFile(t, dir, "unchecked.yaml", manifest("unchecked", "healthCheck: {disabled: true}"))
	var st testenv.TaskStatus
	testenv.WaitFor(t, converge, "checked healthy", func() bool {
		st = taskStatus(t, n.ns, "checked")
		return st.Health.State == "healthy"
	})
	if st.Health.Source != "image" || !strings.HasPrefix(st.Health.Check, "exec /testapp probe -exit 0 every 500ms (timeout 30s, 2 retries") {
		t.Errorf("checked's health check: %+v", st.Health)
	}
	testenv.WaitFor(t, converge, "unchecked running", func() bool { return taskStatus(t, n.ns, "unchecked").Phase == "Running" })
	time.Sleep(time.Second) // two intervals of the image's check
	if st := taskStatus(t, n.ns, "unchecked"); st.Health.State != "" {
		t.Errorf("the disabled check runs: %+v", st.Health)
	}
	cs := n.containers("checked")
	if len(cs) != 1 || !strings.Contains(cs[0].Labels[observed.LabelImageHealth], `"/testapp","probe"`) {
		t.Errorf("checked's container labels: %+v", cs)
	}
}

// TestHealthDependsOn: app starts once db is healthy and the one-shot
// migrate has completed; before that it is Waiting, with no container.
func TestHealthDependsOn(t *testing.T) {
	n := newNode(t, "e2e-health-deps")
	dir := t.TempDir()
	startReconciler(t, n.ns, dir)
	testenv.WriteFile(t, dir, "app.yaml", testenv.Manifest("app",
		"dependsOn: [{task: db, condition: healthy}, {task: migrate, condition: completed}]"))
	testenv.WriteFile(t, dir, "db.yaml", testenv.Manifest("db",
		"args: [-marker, /tmp/ok, -marker-after, 2s]",
		"healthCheck: {exec: {command: [/testapp, probe, -file, /tmp/ok]}, interval: 300ms, startPeriod: 10s}"))
	testenv.WriteFile(t, dir, "migrate.yaml", testenv.Manifest("migrate",
		"args: [-exit-after, 4s]", "restartPolicy: OnFailure"))
	testenv.WaitFor(t, converge, "app waiting", func() bool { return taskStatus(t, n.ns, "app").Phase == "Waiting" })
	if st := taskStatus(t, n.ns, "app"); !strings.Contains(st.Message, "waiting for") {
		t.Errorf("app's message: %q", st.Message)
	}
	// Once app's container exists, its dependencies were met before: the
	// statuses read after the container is seen must say so.
	for deadline := time.Now().Add(converge); ; {
		if time.Now().After(deadline) {
			t.Fatal("app never created")
		}
		if len(n.containers("app")) > 0 {
			dbHealthy := taskStatus(t, n.ns, "db").Health.State == "healthy"
			migrated := taskStatus(t, n.ns, "migrate").Phase == "Completed"
			if !dbHealthy || !migrated {
				t.Fatalf("app created before its dependencies were met (db healthy %v, migrate completed %v)", dbHealthy, migrated)
			}
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	testenv.WaitFor(t, converge, "app running", func() bool { _, ok := n.running("app"); return ok })
}

// TestHealthAcrossReconcilerRestart: a restart of the reconciler restarts
// no probed task; probing resumes on the running container, and `reconciler
// wait --for=healthy` sees it healthy again.
func TestHealthAcrossReconcilerRestart(t *testing.T) {
	n := newNode(t, "e2e-health-restart")
	dir := t.TempDir()
	d := startReconciler(t, n.ns, dir)
	testenv.WriteFile(t, dir, "web.yaml", testenv.Manifest("web",
		"healthCheck: {exec: {command: [/testapp, probe]}, interval: 300ms, startPeriod: 1m}"))
	wait := func() {
		t.Helper()
		out, err := exec.Command(env.bin, "wait", "web", "--for=healthy", "--timeout", "20s", "--state-dir", stateDir(n.ns)).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "web: healthy") {
			t.Fatalf("wait --for=healthy: %v\n%s", err, out)
		}
	}
	wait()
	before, _ := n.running("web")
	d.Stop()
	startReconciler(t, n.ns, dir)
	wait()
	after, ok := n.running("web")
	if !ok || after.Pid != before.Pid || after.Labels[observed.LabelRestarts] != "0" {
		t.Errorf("after the reconciler's restart: %+v, want the same process (%d), never restarted", after, before.Pid)
	}
}

// TestHealthOnUnhealthyNone: a check with onUnhealthy: none (a readiness
// check) stops nothing: the task turns unhealthy on the status and keeps
// its process through further probes and resyncs, while the same check
// with the default restarts its task.
func TestHealthOnUnhealthyNone(t *testing.T) {
	n := newNode(t, "e2e-health-none")
	dir := t.TempDir()
	d := startReconciler(t, n.ns, dir, "--resync", "1s", "-v", "1")
	check := "healthCheck: {exec: {command: [/testapp, probe, -exit, '1']}, interval: 300ms, retries: 1%s}"
	testenv.WriteFile(t, dir, "ready.yaml", testenv.Manifest("ready", "stopGracePeriod: 1s", fmt.Sprintf(check, ", onUnhealthy: none")))
	testenv.WriteFile(t, dir, "live.yaml", testenv.Manifest("live", "stopGracePeriod: 1s", "restartBackoff: {initial: 100ms}", fmt.Sprintf(check, "")))
	var ready, live ctr
	testenv.WaitFor(t, converge, "both running", func() bool {
		var ok1, ok2 bool
		ready, ok1 = n.running("ready")
		live, ok2 = n.running("live")
		return ok1 && ok2
	})
	testenv.WaitFor(t, converge, "ready unhealthy on the status", func() bool { return taskStatus(t, n.ns, "ready").Health.State == "unhealthy" })
	// The same verdict restarts live: the control that the check fails.
	testenv.WaitFor(t, 30*time.Second, "live restarted for its health", func() bool {
		c, ok := n.running("live")
		return ok && c.Pid != live.Pid
	})
	d.WaitResyncs(3, 30*time.Second)
	c, ok := n.running("ready")
	if !ok || c.Pid != ready.Pid || c.ID != ready.ID {
		t.Errorf("ready was stopped or replaced for its health: %+v (was %+v)", c, ready)
	}
	if _, marked := c.Labels[observed.LabelUnhealthy]; marked {
		t.Error("ready carries the unhealthy mark of a stopped container")
	}
	if st := taskStatus(t, n.ns, "ready"); st.Restarts != 0 || st.Phase != "Running" {
		t.Errorf("ready's status: phase %s, %d restarts", st.Phase, st.Restarts)
	}
}
