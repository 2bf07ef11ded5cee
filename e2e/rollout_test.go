package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/warren/reconciler/e2e/imagebuild"
	"github.com/warren/reconciler/e2e/testenv"
	"github.com/warren/reconciler/pkg/desired"
	"github.com/warren/reconciler/pkg/observed"
)

// crashRef is an image tag whose default command exits 3 at once: a new
// release that crashes.
const crashRef = "localhost/reconciler/testapp:crash"

// rolloutImages writes an images directory holding the test image and
// crashRef.
func rolloutImages(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	base, err := tarball.ImageFromPath(env.archive, nil)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := base.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.Config.Cmd = []string{"-exit-after", "200ms", "-exit-code", "3"}
	crash, err := mutate.ConfigFile(base, cf)
	if err != nil {
		t.Fatal(err)
	}
	if err := imagebuild.WriteArchive(filepath.Join(dir, "testapp.tar"), imagebuild.DefaultRef, base); err != nil {
		t.Fatal(err)
	}
	if err := imagebuild.WriteArchive(filepath.Join(dir, "crash.tar"), crashRef, crash); err != nil {
		t.Fatal(err)
	}
	return dir
}

// rolloutCase is one task of TestRollout: a good first spec, then a
// change that must be rolled back (or, for good, roll out).
type rolloutCase struct {
	name   string
	change []string // the spec lines of the change
	reason string   // the start of the rollback's reason; "" for a good change
}

// TestRollout: for each update strategy, changes that exit 1 at start,
// run but fail their health check, never become healthy before a short
// deadline, or use an image tag that crashes, are rolled back to the old
// container (stop-first: the very same container and snapshot, started
// again; start-first: never stopped); status, plan and wait say why; the
// refused spec is not tried again across a restart of the reconciler; a
// later good spec rolls out; a good change passes and the old container is
// gone after it.
func TestRollout(t *testing.T) {
	for _, strategy := range []desired.UpdateStrategy{desired.UpdateStopFirst, desired.UpdateStartFirst} {
		t.Run(string(strategy), func(t *testing.T) {
			t.Parallel()
			testRollout(t, strategy)
		})
	}
}

func testRollout(t *testing.T, strategy desired.UpdateStrategy) {
	n := newNode(t, "e2e-rollout-"+string(strategy))
	dir := t.TempDir()
	images := rolloutImages(t)
	run := testenv.Run{Address: env.address, Containerd: "external", RuncRoot: env.runcRoot,
		Namespace: n.ns, Manifests: dir, Images: images, StateDir: stateDir(n.ns), Resync: time.Second}
	start := func() *testenv.TestDaemon {
		d := testenv.StartTest(t, env.bin, run.Args(), testenv.TestOptions{Options: testenv.Options{Grace: 20 * time.Second}})
		d.WaitLog(testenv.InitialSync, 30*time.Second)
		return d
	}
	d := start()

	common := []string{"updateStrategy: " + string(strategy), "stopGracePeriod: 1s", "restartBackoff: {initial: 200ms, max: 1s}",
		"minReady: 2s", "progressDeadline: 20s"}
	good := func(v string, extra ...string) []string {
		return append(append([]string{"args: [-marker, /tmp/ok]", testenv.EnvSpec("VERSION", v)}, common...), extra...)
	}
	checked := "healthCheck: {exec: {command: [/testapp, probe, -file, /tmp/ok]}, interval: 300ms, timeout: 2s, retries: 2}"
	v2 := testenv.EnvSpec("VERSION", "2")
	cases := []rolloutCase{
		{name: "exits", change: append([]string{"args: [-exit-after, 100ms, -exit-code, '1']", v2}, common...),
			reason: "exited with code 1, 3 times in"},
		// Its marker is never written: every probe fails.
		{name: "unhealthy", change: append([]string{"args: [-marker, /tmp/other]", v2, checked}, common...),
			reason: "unhealthy: 2 probes failed"},
		// Its probes fail, but too few in a row ever to make it
		// unhealthy: only the deadline catches it.
		{name: "slow", change: []string{"args: [-marker, /tmp/other]", v2,
			"healthCheck: {exec: {command: [/testapp, probe, -file, /tmp/ok]}, interval: 300ms, timeout: 2s, retries: 100000}",
			"updateStrategy: " + string(strategy), "stopGracePeriod: 1s", "minReady: 2s", "progressDeadline: 6s"},
			reason: "not healthy within 6s"},
		{name: "crash", change: append([]string{v2}, common...), reason: "exited with code 3, 3 times in"},
		{name: "fine", change: good("2", checked)},
	}
	manifest := func(name string, spec []string) string {
		m := testenv.Manifest(name, spec...)
		if name == "crash" && strings.Contains(m, v2) {
			m = testenv.WithImage(m, crashRef)
		}
		return m
	}
	for _, c := range cases {
		testenv.WriteFile(t, dir, c.name+".yaml", manifest(c.name, good("1")))
	}
	first := map[string]ctr{}
	for _, c := range cases {
		testenv.WaitFor(t, converge, c.name+" running", func() bool {
			x, ok := n.running(c.name)
			first[c.name] = x
			return ok
		})
	}
	// Good means it ran minReady (2s) since its start.
	time.Sleep(2500 * time.Millisecond)
	snapshots := map[string]string{}
	for _, c := range cases {
		snapshots[c.name] = snapshotOf(t, n, first[c.name].ID)
		testenv.WriteFile(t, dir, c.name+".yaml", manifest(c.name, c.change))
	}

	for _, c := range cases {
		if c.reason == "" {
			continue
		}
		var st testenv.TaskStatus
		testenv.WaitFor(t, 90*time.Second, c.name+" rolled back", func() bool {
			st = taskStatus(t, n.ns, c.name)
			x, ok := n.running(c.name)
			return ok && x.ID == first[c.name].ID && st.RolledBack.RefusedHash != ""
		})
		x, _ := n.running(c.name)
		if !strings.HasPrefix(st.RolledBack.Reason, c.reason) || !strings.Contains(st.Message, "was rolled back") || st.ContainerID != first[c.name].ID {
			t.Errorf("%s: status after the rollback: %+v, want a reason starting with %q", c.name, st, c.reason)
		}
		if got := snapshotOf(t, n, x.ID); got != snapshots[c.name] {
			t.Errorf("%s: snapshot %s after the rollback, want the old one %s", c.name, got, snapshots[c.name])
		}
		stopped := x.Pid != first[c.name].Pid
		if want := strategy == desired.UpdateStopFirst; stopped != want {
			t.Errorf("%s: old container's process changed %v (pid %d -> %d), want %v for %s", c.name, stopped, first[c.name].Pid, x.Pid, want, strategy)
		}
		if x.Labels[observed.LabelRolledBack] == "" || x.Labels[observed.LabelHeldFor] != "" {
			t.Errorf("%s: labels after the rollback: %v", c.name, x.Labels)
		}
		// The old task serves again: its marker is back (it wrote it at
		// its start).
		if out, err := exec.Command("ctr", "--address", env.address, "-n", n.ns, "tasks", "exec", "--exec-id", "check-"+c.name,
			x.ID, "/testapp", "probe", "-file", "/tmp/ok").CombinedOutput(); err != nil {
			t.Errorf("%s: the old task does not serve after the rollback: %v %s", c.name, err, out)
		}
	}
	var fine ctr
	testenv.WaitFor(t, 60*time.Second, "the good change rolled out, the old container gone", func() (ok bool) {
		fine, ok = n.running("fine")
		return ok && fine.ID != first["fine"].ID && fine.Labels[observed.LabelProven] != ""
	})
	if n.snapshotExists(snapshots["fine"]) {
		t.Errorf("the old container's snapshot %s is left after a good change", snapshots["fine"])
	}
	d.WaitLog("rollout succeeded", time.Second)
	d.WaitLog("rollout rolled back", time.Second)

	// plan: in sync, each refused change noted; wait: exits 1 with why.
	out, err := exec.Command(env.bin, "plan", "--address", env.address, "--containerd", "external",
		"--namespace", n.ns, "--manifests", dir, "--state-dir", stateDir(n.ns)).CombinedOutput()
	if err != nil || strings.Count(string(out), "refused ") != 4 {
		t.Errorf("plan after the rollbacks: %v\n%s", err, out)
	}
	cmd := exec.Command(env.bin, "wait", "exits", "--for=running", "--timeout", "5s", "--state-dir", stateDir(n.ns))
	out, err = cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), "was rolled back") || !strings.Contains(string(out), "exited with code 1") {
		t.Errorf("wait --for=running on a rolled-back change: %v\n%s", err, out)
	}

	// A restarted reconciler tries none of the refused specs again.
	labels := map[string]string{}
	pids := map[string]uint32{}
	for _, c := range cases[:4] {
		x, _ := n.running(c.name)
		labels[c.name], pids[c.name] = x.Labels[observed.LabelRolledBack], x.Pid
	}
	d.Stop()
	d = start()
	time.Sleep(3 * time.Second) // three resyncs
	for _, c := range cases[:4] {
		x, ok := n.running(c.name)
		if !ok || x.ID != first[c.name].ID || x.Pid != pids[c.name] || x.Labels[observed.LabelRolledBack] != labels[c.name] {
			t.Errorf("%s after a restart of the reconciler: %+v (running %v), want %s untouched", c.name, x, ok, first[c.name].ID)
		}
	}

	// A later good spec rolls out and the old container goes.
	testenv.WriteFile(t, dir, "exits.yaml", manifest("exits", good("3")))
	testenv.WaitFor(t, 60*time.Second, "exits: the good spec rolled out", func() bool {
		x, ok := n.running("exits")
		return ok && x.ID != first["exits"].ID && x.Labels[observed.LabelProven] != ""
	})
	if st := taskStatus(t, n.ns, "exits"); st.RolledBack.RefusedHash != "" || st.Rollout.From != "" {
		t.Errorf("exits after a good spec: %+v", st)
	}
}

// snapshotOf returns the snapshot key of container id.
func snapshotOf(t *testing.T, n *node, id string) string {
	t.Helper()
	c, err := n.client.LoadContainer(t.Context(), id)
	if err != nil {
		t.Fatalf("load %s: %v", id, err)
	}
	info, err := c.Info(t.Context())
	if err != nil {
		t.Fatalf("info of %s: %v", id, err)
	}
	return info.SnapshotKey
}
