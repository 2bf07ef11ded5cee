package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	eventtypes "github.com/containerd/containerd/api/events"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/typeurl/v2"

	"github.com/warren/reconciler/e2e/testenv"
	"github.com/warren/reconciler/pkg/observed"
)

// taskEvent is a start or exit of a task, as containerd's event stream says.
type taskEvent struct {
	kind string // "start" or "exit"
	id   string
	at   time.Time
	code uint32
}

// watchTasks collects task start and exit events of the namespace until the
// test ends.
func watchTasks(t *testing.T, n *node) <-chan taskEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	events, errs := n.client.Subscribe(ctx, `topic=="/tasks/start"`, `topic=="/tasks/exit"`)
	out := make(chan taskEvent, 256)
	go func() {
		for {
			select {
			case env := <-events:
				if env.Namespace != n.ns {
					continue
				}
				v, err := typeurl.UnmarshalAny(env.Event)
				if err != nil {
					continue
				}
				switch e := v.(type) {
				case *eventtypes.TaskStart:
					out <- taskEvent{kind: "start", id: e.ContainerID, at: env.Timestamp}
				case *eventtypes.TaskExit:
					if e.ID == e.ContainerID { // the init process, not an exec
						out <- taskEvent{kind: "exit", id: e.ContainerID, at: e.ExitedAt.AsTime(), code: e.ExitStatus}
					}
				}
			case <-errs:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

func nextEvent(t *testing.T, ch <-chan taskEvent, timeout time.Duration) taskEvent {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-time.After(timeout):
		t.Fatalf("no task event within %s", timeout)
		return taskEvent{}
	}
}

// TestCrashLoopBacksOff runs a task that exits 1 at once: it is restarted
// with growing gaps (its back-off), not in a hot loop, and the restart count
// is on the container's labels.
func TestCrashLoopBacksOff(t *testing.T) {
	n := newNode(t, "e2e-crash")
	events := watchTasks(t, n)
	dir := t.TempDir()
	startReconciler(t, n.ns, dir)
	testenv.WriteFile(t, dir, "crash.yaml", testenv.Manifest("crash", testenv.EnvSpec("EXIT_AFTER", "1ms", "EXIT_CODE", "1"), "restartBackoff: {initial: 300ms, max: 5s}"))

	var exits, starts []time.Time
	deadline := time.Now().Add(20 * time.Second)
	for len(starts) < 4 && time.Now().Before(deadline) {
		e := nextEvent(t, events, 10*time.Second)
		switch e.kind {
		case "start":
			starts = append(starts, e.at)
		case "exit":
			if e.code != 1 {
				t.Fatalf("exit code %d, want 1", e.code)
			}
			exits = append(exits, e.at)
		}
	}
	if len(starts) < 4 || len(exits) < 3 {
		t.Fatalf("saw %d starts and %d exits", len(starts), len(exits))
	}
	var gaps []time.Duration
	for i := 0; i < 3; i++ {
		gaps = append(gaps, starts[i+1].Sub(exits[i]))
	}
	t.Logf("exit -> restart gaps: %v (back-off 300ms doubling)", gaps)
	for i, want := range []time.Duration{300 * time.Millisecond, 600 * time.Millisecond, 1200 * time.Millisecond} {
		if gaps[i] < want {
			t.Errorf("restart %d came %s after the exit, before its back-off of %s", i+1, gaps[i], want)
		}
		if gaps[i] > want+time.Second {
			t.Errorf("restart %d came %s after the exit, much later than its back-off of %s", i+1, gaps[i], want)
		}
	}
	cs := n.containers("crash")
	if len(cs) != 1 || cs[0].Labels[observed.LabelRestarts] == "" || cs[0].Labels[observed.LabelRestarts] == "0" {
		t.Errorf("containers %+v: want one, with its restart count on a label", cs)
	}
}

// TestOnFailureCompletes runs a task that exits 0 with restartPolicy
// OnFailure: it is not restarted.
func TestOnFailureCompletes(t *testing.T) {
	n := newNode(t, "e2e-onfailure")
	events := watchTasks(t, n)
	dir := t.TempDir()
	d := startReconciler(t, n.ns, dir, "-v", "1") // -v 1 logs each resync
	testenv.WriteFile(t, dir, "job.yaml", testenv.Manifest("job", testenv.EnvSpec("EXIT_AFTER", "1ms", "EXIT_CODE", "0"), "restartPolicy: OnFailure"))
	if e := nextEvent(t, events, converge); e.kind != "start" {
		t.Fatalf("first event %+v, want a start", e)
	}
	if e := nextEvent(t, events, converge); e.kind != "exit" || e.code != 0 {
		t.Fatalf("second event %+v, want an exit with code 0", e)
	}
	a := mark(d)
	d.WaitResyncs(3, converge)
	select {
	case e := <-events:
		t.Fatalf("a completed OnFailure task saw another event: %+v", e)
	default:
	}
	if c, s := a.count(actCreate), a.count(actStart); c != 0 || s != 0 {
		t.Fatalf("a completed OnFailure task was created again %d times and started %d times:\n%s", c, s, a.since())
	}
	cs := n.containers("job")
	if len(cs) != 1 || cs[0].Status != containerd.Stopped {
		t.Fatalf("containers %+v, want one stopped", cs)
	}
}

// ctr runs containerd's own CLI against the test daemon, the way an
// operator would act behind the reconciler's back.
func runCtr(t *testing.T, ns string, args ...string) {
	t.Helper()
	out, err := exec.Command("ctr", append([]string{"--address", env.address, "-n", ns}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ctr %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestDriftIsRepaired kills a task and then deletes its container with ctr:
// the restart policy restarts the first, the second is recreated.
func TestDriftIsRepaired(t *testing.T) {
	n := newNode(t, "e2e-drift")
	dir := t.TempDir()
	startReconciler(t, n.ns, dir)
	testenv.WriteFile(t, dir, "web.yaml", testenv.Manifest("web", "restartBackoff: {initial: 100ms}"))
	var first ctr
	testenv.WaitFor(t, converge, "web running", func() (ok bool) { first, ok = n.running("web"); return ok })

	runCtr(t, n.ns, "tasks", "kill", "-s", "SIGKILL", first.ID)
	var second ctr
	testenv.WaitFor(t, converge, "web restarted after a kill", func() (ok bool) {
		second, ok = n.running("web")
		return ok && second.Pid != first.Pid
	})
	if second.ID != first.ID || second.Labels[observed.LabelRestarts] != "1" {
		t.Errorf("after the kill: %+v, want the same container with restarts=1", second)
	}

	// The container deleted behind the reconciler's back: killed, then
	// removed with its stopped task (one ctr command). The reconciler may
	// restart the task in between (its back-off is short, and a container
	// without a task is started at once); then the kill and the delete
	// are tried again, each time with a longer back-off ahead of them.
	deleted := false
	for attempt := 0; attempt < 10 && !deleted; attempt++ {
		_ = exec.Command("ctr", "--address", env.address, "-n", n.ns, "tasks", "kill", "-s", "SIGKILL", first.ID).Run()
		// The task stopped, or already restarted by the reconciler (its
		// back-off is short): then the next attempt kills it again.
		stopped := false
		for end := time.Now().Add(2 * time.Second); !stopped && time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			cs := n.containers("web")
			stopped = len(cs) == 0 || !n.taskExists(first.ID) || cs[0].Status == containerd.Stopped
		}
		if !stopped {
			t.Logf("attempt %d: the task was restarted before it was seen stopped", attempt+1)
			continue
		}
		out, err := exec.Command("ctr", "--address", env.address, "-n", n.ns, "containers", "delete", first.ID).CombinedOutput()
		deleted = err == nil
		if !deleted {
			t.Logf("attempt %d: ctr containers delete: %v: %s", attempt+1, err, out)
		}
	}
	if !deleted {
		t.Fatal("the container could not be deleted behind the reconciler's back in 10 attempts")
	}
	testenv.WaitFor(t, converge, "web recreated after a delete", func() bool {
		c, ok := n.running("web")
		return ok && c.Pid != second.Pid
	})
}

// TestStartFirstReplacement changes a start-first task: the new container
// starts before the old one is stopped.
func TestStartFirstReplacement(t *testing.T) {
	n := newNode(t, "e2e-startfirst")
	events := watchTasks(t, n)
	dir := t.TempDir()
	startReconciler(t, n.ns, dir)
	testenv.WriteFile(t, dir, "web.yaml", testenv.Manifest("web", testenv.EnvSpec("V", "1"), "updateStrategy: start-first"))
	var old ctr
	testenv.WaitFor(t, converge, "web v1 running", func() (ok bool) { old, ok = n.running("web"); return ok })
	testenv.WriteFile(t, dir, "web.yaml", testenv.Manifest("web", testenv.EnvSpec("V", "2"), "updateStrategy: start-first"))
	// The old container's own start event may still be in the stream: only
	// the new container's start and the old one's exit count.
	var seq []string
	for len(seq) < 2 {
		e := nextEvent(t, events, converge)
		switch {
		case e.id != old.ID && e.kind == "start":
			seq = append(seq, "new start")
		case e.id == old.ID && e.kind == "exit":
			seq = append(seq, "old exit")
		}
	}
	if fmt.Sprint(seq) != "[new start old exit]" {
		t.Fatalf("events %v, want the new container started before the old one exits", seq)
	}
	testenv.WaitFor(t, converge, "only v2 left", func() bool {
		c, ok := n.running("web")
		return ok && c.ID != old.ID
	})
}

// TestPlanCommand runs `reconciler plan` against containerd: pending changes
// exit 2 and are listed; once the daemon converged, 0 and nothing to do.
func TestPlanCommand(t *testing.T) {
	n := newNode(t, "e2e-plan")
	dir := t.TempDir()
	testenv.WriteFile(t, dir, "web.yaml", testenv.Manifest("web", testenv.EnvSpec("MESSAGE", "a")))
	plan := func() (string, int) {
		cmd := exec.Command(env.bin, "plan", "--address", env.address, "--containerd", "external",
			"--namespace", n.ns, "--manifests", dir)
		out, err := cmd.Output()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	out, code := plan()
	if code != 2 || !strings.Contains(out, "create  web") || !strings.Contains(out, "health check: the image's HEALTHCHECK, if it has one") {
		t.Fatalf("plan before run: exit %d\n%s", code, out)
	}
	d := startReconciler(t, n.ns, dir)
	testenv.WaitFor(t, converge, "web running", func() bool { _, ok := n.running("web"); return ok })
	out, code = plan()
	if code != 0 || out != "nothing to do\n" {
		t.Fatalf("plan after run: exit %d\n%s", code, out)
	}
	// With the daemon stopped, a changed file is a pending replacement, and
	// plan names the field that changed.
	d.Stop()
	testenv.WriteFile(t, dir, "web.yaml", testenv.Manifest("web", testenv.EnvSpec("MESSAGE", "b")))
	out, code = plan()
	if code != 2 || !strings.Contains(out, `spec.env[MESSAGE].value: "a" -> "b"`) || !strings.Contains(out, "stop    web") {
		t.Fatalf("plan of a change: exit %d\n%s", code, out)
	}
	if cs := n.containers("web"); len(cs) != 1 || cs[0].Status != containerd.Running {
		t.Fatalf("plan changed something: %+v", cs)
	}
	// A start that waits for its dependencies is shown, and why: a task
	// that does not exist, and one whose new container is not there yet.
	testenv.WriteFile(t, dir, "deps.yaml", testenv.Manifest("late", "dependsOn: [{task: db}]")+"---\n"+
		testenv.Manifest("app", "dependsOn: [{task: web, condition: healthy}]"))
	out, _ = plan()
	if !regexp.MustCompile(`await\s+late\s+\S+\s+waiting for db to be running \(no such task yet\)`).MatchString(out) ||
		!regexp.MustCompile(`await\s+app\s+\S+\s+waiting for web to be healthy\n`).MatchString(out) {
		t.Fatalf("plan with dependencies:\n%s", out)
	}
}
