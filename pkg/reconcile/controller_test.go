package reconcile

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"

	"github.com/warren/reconciler/pkg/desired"
	"github.com/warren/reconciler/pkg/observed"
)

const testImage = "localhost/reconciler/testapp:v1"

// parseTask parses a one-task manifest named name from file, with env given
// as "NAME=value" pairs.
func parseTask(t *testing.T, file, name string, env ...string) desired.Task {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: warren/v1\nkind: Task\nmetadata:\n  name: %s\nspec:\n  image: %s\n", name, testImage)
	if len(env) > 0 {
		b.WriteString("  env:\n")
		for _, e := range env {
			k, v, _ := strings.Cut(e, "=")
			fmt.Fprintf(&b, "    - {name: %s, value: %q}\n", k, v)
		}
	}
	tasks, err := desired.Parse(file, []byte(b.String()))
	if err != nil || len(tasks) != 1 {
		t.Fatalf("parse %s: %d tasks, %v\n%s", file, len(tasks), err, b.String())
	}
	return tasks[0]
}

// stateOf is a valid desired state with tasks.
func stateOf(tasks ...desired.Task) desired.State {
	s := desired.State{Tasks: map[string]desired.Task{}}
	for _, t := range tasks {
		s.Tasks[t.Metadata.Name] = t
	}
	return s
}

func idOf(t desired.Task) string { return observed.ContainerID(t.Metadata.Name, t.Hash()) }

// ownedBy is a container the reconciler made for t earlier (by a previous
// process, say), with status st.
func ownedBy(t desired.Task, st observed.Status) observed.Raw {
	return observed.Raw{
		ID:     idOf(t),
		Labels: observed.Labels(t.Metadata.Name, t.Hash(), t.Source, t.Spec.StopSignal, t.Spec.StopGrace()),
		Image:  t.Spec.Image,
		Status: st,
	}
}

// startController gives cfg test defaults (one-hour resync, millisecond
// retries), applies states in order, and runs the controller until the test
// ends or stop is called; stop waits for Run to return.
func startController(t *testing.T, rt Runtime, cfg Config, states ...desired.State) (c *Controller, stop func()) {
	t.Helper()
	if cfg.Resync == 0 {
		cfg.Resync = time.Hour
	}
	if cfg.RetryInitial == 0 {
		cfg.RetryInitial = time.Millisecond
	}
	if cfg.RetryMax == 0 {
		cfg.RetryMax = 10 * time.Millisecond
	}
	cfg.Log = testr.New(t)
	if f, ok := rt.(*fakeRuntime); ok { // the fake has every optional capability
		cfg.Puller, cfg.Images, cfg.Preparer = f, f, f
	}
	c = New(rt, cfg)
	for _, s := range states {
		c.SetDesired(s)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, nil) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return within 5s of cancel")
		}
	}
	t.Cleanup(stop)
	return c, stop
}

func waitReady(t *testing.T, c *Controller) {
	t.Helper()
	select {
	case <-c.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("Ready not closed within 5s")
	}
}

func callStrings(calls []fakeCall) []string {
	out := make([]string, len(calls))
	for i, c := range calls {
		out[i] = c.String()
	}
	return out
}

// (a) Desired tasks are created and started, with the ownership and identity
// labels on their containers.
func TestControllerCreatesAndStartsDesiredTasks(t *testing.T) {
	rt := newFakeRuntime()
	web := parseTask(t, "web.yaml", "web", "MODE=a")
	api := parseTask(t, "api.yaml", "api")
	startController(t, rt, Config{Workers: 2}, stateOf(web, api))

	for _, task := range []desired.Task{web, api} {
		id := idOf(task)
		eventually(t, func() bool { return rt.running(id) }, "%s not running; containers %v", id, rt.ids())
		r, _ := rt.container(id)
		for k, v := range map[string]string{
			observed.LabelManagedBy: observed.ManagedByValue,
			observed.LabelTask:      task.Metadata.Name,
			observed.LabelSpecHash:  task.Hash(),
			observed.LabelSource:    task.Metadata.Name + ".yaml",
			observed.LabelStopSig:   "SIGTERM",
			observed.LabelStopGrace: "30s",
			observed.LabelRestarts:  "0",
			observed.LabelStreak:    "0",
		} {
			if got := r.Labels[k]; got != v {
				t.Errorf("%s: label %s = %q, want %q", id, k, got, v)
			}
		}
		if r.Labels[observed.LabelStartedAt] == "" {
			t.Errorf("%s: no %s label", id, observed.LabelStartedAt)
		}
		if r.Image != testImage {
			t.Errorf("%s: image %q, want %q", id, r.Image, testImage)
		}
		want := []string{"create " + id, "start " + id}
		if got := callStrings(rt.mutations(0, id)); !slices.Equal(got, want) {
			t.Errorf("calls on %s = %q, want %q", id, got, want)
		}
	}
	if got := rt.ids(); len(got) != 2 {
		t.Errorf("containers %v, want exactly the two tasks'", got)
	}
}

// (b) A changed spec replaces the container, stop-first: the old one is
// stopped and deleted before the new one is created and started.
func TestControllerReplacesChangedSpecStopFirst(t *testing.T) {
	rt := newFakeRuntime()
	v1 := parseTask(t, "web.yaml", "web", "MODE=a")
	api := parseTask(t, "api.yaml", "api")
	c, _ := startController(t, rt, Config{Workers: 2}, stateOf(v1, api))
	waitReady(t, c)
	eventually(t, func() bool { return rt.running(idOf(v1)) && rt.running(idOf(api)) })

	v2 := parseTask(t, "web.yaml", "web", "MODE=b")
	if idOf(v2) == idOf(v1) {
		t.Fatalf("changing env did not change the container id %s", idOf(v1))
	}
	mark := rt.mark()
	c.SetDesired(stateOf(v2, api))
	eventually(t, func() bool { return rt.running(idOf(v2)) }, "new container not running; containers %v", rt.ids())
	eventually(t, func() bool { _, ok := rt.container(idOf(v1)); return !ok }, "old container still there")

	want := []string{"stop " + idOf(v1), "delete " + idOf(v1), "create " + idOf(v2), "start " + idOf(v2)}
	if got := callStrings(rt.mutations(mark, idOf(v1), idOf(v2))); !slices.Equal(got, want) {
		t.Errorf("calls for web = %q, want %q", got, want)
	}
	if got := rt.mutations(mark, idOf(api)); len(got) != 0 {
		t.Errorf("unchanged task api was touched: %v", got)
	}
}

// A new revision of the same spec (another git commit that left the file
// alone) touches no container and is named on the task's status.
func TestControllerRevisionOnlyChangesTheStatus(t *testing.T) {
	rt := newFakeRuntime()
	v1 := parseTask(t, "web.yaml", "web")
	v1.Revision = "c1"
	c, _ := startController(t, rt, Config{Workers: 1}, stateOf(v1))
	waitReady(t, c)
	eventually(t, func() bool { st, _ := c.TaskStatus("web"); return rt.running(idOf(v1)) && st.Revision == "c1" })
	mark := rt.mark()
	v2 := v1
	v2.Revision = "c2"
	c.SetDesired(stateOf(v2))
	eventually(t, func() bool { st, _ := c.TaskStatus("web"); return st.Revision == "c2" },
		"status revision %q, want c2", func() string { st, _ := c.TaskStatus("web"); return st.Revision }())
	if got := rt.mutations(mark, idOf(v1)); len(got) != 0 {
		t.Errorf("a new revision of the same spec touched the container: %v", got)
	}
}

// (b2) Stop-first stops nothing until the new container can be created: a
// new spec whose image cannot be had, or that the node policy refuses,
// leaves the old container running and says why; once it can, the
// replacement goes ahead.
func TestControllerStopFirstKeepsOldContainerUntilNewCanBeCreated(t *testing.T) {
	rt := newFakeRuntime()
	v1 := parseTask(t, "web.yaml", "web", "MODE=a")
	c, _ := startController(t, rt, Config{Workers: 1}, stateOf(v1))
	waitReady(t, c)
	eventually(t, func() bool { return rt.running(idOf(v1)) })

	// Each case's spec has an image of its own, which Prepare refuses.
	withImage := func(image string) desired.Task {
		tasks, err := desired.Parse("web.yaml", []byte("apiVersion: warren/v1\nkind: Task\nmetadata: {name: web}\nspec: {image: "+image+"}\n"))
		if err != nil || len(tasks) != 1 {
			t.Fatalf("parse: %v", err)
		}
		return tasks[0]
	}
	for _, tc := range []struct {
		name, image string
		err         error
		phase       Phase
	}{
		{"image not available", "registry.example/app:typo", errors.New("pull image registry.example/app:typo: registry down"), PhaseError},
		{"refused by the node policy", "registry.example/app:privileged", policyError{}, PhaseFailed},
	} {
		rt.unprepare(tc.image, tc.err)
		mark := rt.mark()
		v2 := withImage(tc.image)
		c.SetDesired(stateOf(v2))
		eventually(t, func() bool {
			st, _ := c.TaskStatus("web")
			return st.Phase == tc.phase && strings.Contains(st.Message, "the running container is kept") && strings.Contains(st.Message, tc.err.Error())
		}, "%s: status %+v", tc.name, func() TaskStatus { st, _ := c.TaskStatus("web"); return st }())
		if got := rt.mutations(mark, idOf(v1), idOf(v2)); len(got) != 0 {
			t.Errorf("%s: calls %v, want none: the old container must keep running", tc.name, got)
		}
		if !rt.running(idOf(v1)) {
			t.Fatalf("%s: the old container stopped", tc.name)
		}
	}

	// A spec that can be created replaces it.
	v3 := parseTask(t, "web.yaml", "web", "MODE=c")
	mark := rt.mark()
	c.SetDesired(stateOf(v3))
	eventually(t, func() bool { return rt.running(idOf(v3)) }, "new container not running; containers %v", rt.ids())
	want := []string{"stop " + idOf(v1), "delete " + idOf(v1), "create " + idOf(v3), "start " + idOf(v3)}
	if got := callStrings(rt.mutations(mark, idOf(v1), idOf(v3))); !slices.Equal(got, want) {
		t.Errorf("calls once the spec can be created = %q, want %q", got, want)
	}
}

// (c) A task removed from a valid desired state is stopped and deleted; the
// others are left alone.
func TestControllerRemovesUndesiredTask(t *testing.T) {
	rt := newFakeRuntime()
	web := parseTask(t, "web.yaml", "web")
	api := parseTask(t, "api.yaml", "api")
	c, _ := startController(t, rt, Config{Workers: 2}, stateOf(web, api))
	waitReady(t, c)
	eventually(t, func() bool { return rt.running(idOf(web)) && rt.running(idOf(api)) })

	mark := rt.mark()
	c.SetDesired(stateOf(api))
	eventually(t, func() bool { _, ok := rt.container(idOf(web)); return !ok }, "removed task's container still there")

	want := []string{"stop " + idOf(web), "delete " + idOf(web)}
	if got := callStrings(rt.mutations(mark, idOf(web))); !slices.Equal(got, want) {
		t.Errorf("calls for web = %q, want %q", got, want)
	}
	if got := rt.mutations(mark, idOf(api)); len(got) != 0 {
		t.Errorf("still-desired task api was touched: %v", got)
	}
	if !rt.running(idOf(api)) {
		t.Error("api no longer running")
	}
}

// (d) A desired state whose directory could not be read deletes nothing and
// keeps the previous tasks (they are still created and kept running); when
// the directory reads again, deletions resume.
func TestControllerUnreadableDirectoryDeletesNothing(t *testing.T) {
	rt := newFakeRuntime()
	web := parseTask(t, "web.yaml", "web")
	old := parseTask(t, "old.yaml", "old")
	rt.put(ownedBy(old, observed.Running)) // left by a previous run, not desired

	c, _ := startController(t, rt, Config{Workers: 2},
		stateOf(web),
		desired.State{Err: errors.New("open manifests: permission denied")})
	waitReady(t, c) // every task on either side, old included, was worked once

	if got := rt.mutations(0, idOf(old)); len(got) != 0 {
		t.Errorf("undesired container touched while the directory is unreadable: %v", got)
	}
	if !rt.running(idOf(old)) {
		t.Error("undesired container no longer running while the directory is unreadable")
	}
	if !rt.running(idOf(web)) {
		t.Error("previous task web was not kept: not running after the first pass")
	}

	mark := rt.mark()
	c.SetDesired(stateOf(web))
	eventually(t, func() bool { _, ok := rt.container(idOf(old)); return !ok }, "old not deleted once the directory reads again")
	if got := rt.mutations(mark, idOf(web)); len(got) != 0 {
		t.Errorf("web touched when the directory read again: %v", got)
	}
}

// (e) A container whose source file is broken, and whose task is therefore
// absent from Tasks (a fresh process never saw the file valid), is kept. The
// protection is per file: a container from a file that is simply gone is
// removed in the same pass.
func TestControllerKeepsTasksOfBrokenFile(t *testing.T) {
	rt := newFakeRuntime()
	web := parseTask(t, "web.yaml", "web")
	gone := parseTask(t, "gone.yaml", "gone")
	api := parseTask(t, "api.yaml", "api")
	rt.put(ownedBy(web, observed.Running))
	rt.put(ownedBy(gone, observed.Running))

	broken := stateOf(api)
	broken.Broken = map[string]error{"web.yaml": errors.New("web.yaml:3: spec.image: required")}
	c, _ := startController(t, rt, Config{Workers: 2}, broken)
	waitReady(t, c)

	if got := rt.mutations(0, idOf(web)); len(got) != 0 {
		t.Errorf("container of a broken file was touched: %v", got)
	}
	if !rt.running(idOf(web)) {
		t.Error("container of a broken file no longer running")
	}
	if _, ok := rt.container(idOf(gone)); ok {
		t.Error("container of a file that is gone was kept")
	}
	if !rt.running(idOf(api)) {
		t.Error("api not running after the first pass")
	}

	// The file is fixed and no longer defines web: now it goes.
	c.SetDesired(stateOf(api))
	eventually(t, func() bool { _, ok := rt.container(idOf(web)); return !ok }, "web kept after its file was fixed without it")
	want := []string{"stop " + idOf(web), "delete " + idOf(web)}
	if got := callStrings(rt.mutations(0, idOf(web))); !slices.Equal(got, want) {
		t.Errorf("calls for web = %q, want %q", got, want)
	}
}

// When the set of broken files changes but not its size (one file fixed,
// another broken, as one git pull can do), the containers the fixed file
// protected must be looked at again.
func TestControllerBrokenFileSwapRechecksProtectedContainers(t *testing.T) {
	rt := newFakeRuntime()
	x := parseTask(t, "a.yaml", "x")
	rt.put(ownedBy(x, observed.Running))

	s := stateOf()
	s.Broken = map[string]error{"a.yaml": errors.New("a.yaml:1: bad")}
	c, _ := startController(t, rt, Config{Workers: 2}, s)
	waitReady(t, c)
	if !rt.running(idOf(x)) {
		t.Fatal("x not kept while a.yaml is broken")
	}

	s = stateOf()
	s.Broken = map[string]error{"b.yaml": errors.New("b.yaml:1: bad")}
	c.SetDesired(s) // a.yaml is now gone (or valid without x)
	eventually(t, func() bool { _, ok := rt.container(idOf(x)); return !ok }, "x kept after a.yaml stopped being broken")
}

// (f) Containers the reconciler does not own (no ownership label, or labels
// that do not match the id) are never passed to any call, through creation,
// replacement and removal of the task whose name they carry.
func TestControllerNeverTouchesUnmanaged(t *testing.T) {
	rt := newFakeRuntime()
	v1 := parseTask(t, "web.yaml", "web", "MODE=a")
	v2 := parseTask(t, "web.yaml", "web", "MODE=b")
	unmanaged := []observed.Raw{
		{ID: "foreign", Status: observed.Running},
		{ID: "foreign-labelled", Labels: map[string]string{observed.LabelTask: "web", "app": "other"}, Status: observed.Running},
		{ID: "owned-no-task", Labels: map[string]string{observed.LabelManagedBy: observed.ManagedByValue}, Status: observed.Stopped},
		{ID: "web-ffffffffffff", Labels: map[string]string{ // id does not match the spec-hash label
			observed.LabelManagedBy: observed.ManagedByValue, observed.LabelTask: "web",
			observed.LabelSpecHash: "000000000000", observed.LabelSource: "web.yaml",
		}, Status: observed.Running},
		{ID: "web-aaaaaaaaaaaa", Labels: map[string]string{ // bad grace label
			observed.LabelManagedBy: observed.ManagedByValue, observed.LabelTask: "web",
			observed.LabelSpecHash: "aaaaaaaaaaaa", observed.LabelStopGrace: "forever",
		}, Status: observed.Stopped},
	}
	for _, r := range unmanaged {
		rt.put(r)
	}

	c, _ := startController(t, rt, Config{Workers: 2}, stateOf(v1))
	waitReady(t, c)
	eventually(t, func() bool { return rt.running(idOf(v1)) })
	c.SetDesired(stateOf(v2))
	eventually(t, func() bool { return rt.running(idOf(v2)) })
	c.SetDesired(stateOf())
	eventually(t, func() bool { _, ok := rt.container(idOf(v2)); return !ok }, "web not removed")
	// A resync pass sees the unmanaged containers as well.
	c.SetDesired(desired.State{Err: errors.New("unreadable")})
	eventually(t, func() bool { return rt.count(0, opList, "") >= 2 }, "no resync after the directory became unreadable")
	c.SetDesired(stateOf())
	eventually(t, func() bool { return rt.count(0, opList, "") >= 3 }, "no resync after the directory read again")

	for _, r := range unmanaged {
		if got := rt.mutations(0, r.ID); len(got) != 0 {
			t.Errorf("unmanaged %s was touched: %v", r.ID, got)
		}
		if now, ok := rt.container(r.ID); !ok || now.Status != r.Status {
			t.Errorf("unmanaged %s changed: present %v, status %s (was %s)", r.ID, ok, now.Status, r.Status)
		}
	}
}

// An unmanaged container that happens to have the id of a desired task's
// container must not be adopted: Create of an existing id succeeds, so
// nothing but the ownership check stands between it and Start/Stop.
func TestControllerNeverTouchesUnmanagedWithDesiredID(t *testing.T) {
	rt := newFakeRuntime()
	web := parseTask(t, "web.yaml", "web")
	squatter := observed.Raw{ID: idOf(web), Labels: map[string]string{"app": "someone-else"}, Status: observed.Stopped}
	rt.put(squatter)

	c, _ := startController(t, rt, Config{Workers: 2}, stateOf(web))
	waitReady(t, c)
	if got := rt.mutations(0, squatter.ID); len(got) != 0 {
		t.Errorf("unmanaged %s was touched: %v", squatter.ID, got)
	}
	if now, _ := rt.container(squatter.ID); now.Status != observed.Stopped {
		t.Errorf("unmanaged %s status %s, want it left stopped", squatter.ID, now.Status)
	}
}

// (g) One task whose Create blocks does not keep another task from being
// created and started.
func TestControllerBlockedTaskDoesNotDelayOthers(t *testing.T) {
	rt := newFakeRuntime()
	slow := parseTask(t, "slow.yaml", "slow")
	fast := parseTask(t, "fast.yaml", "fast")
	release := rt.block(OpCreate, idOf(slow))
	defer release()

	startController(t, rt, Config{Workers: 2}, stateOf(slow, fast))
	eventually(t, func() bool { return rt.count(0, OpCreate, idOf(slow)) == 1 }, "slow's Create not called")
	eventually(t, func() bool { return rt.running(idOf(fast)) }, "fast not running while slow's Create blocks")
	if _, ok := rt.container(idOf(slow)); ok {
		t.Fatal("slow created while its Create is blocked")
	}

	release()
	eventually(t, func() bool { return rt.running(idOf(slow)) }, "slow not running after release")
	if n := rt.count(0, OpCreate, idOf(slow)); n != 1 {
		t.Errorf("slow created %d times, want 1 (its key must not be worked twice at once)", n)
	}
}

// (h) A failing Create is retried with backoff until it succeeds; meanwhile
// other tasks converge.
func TestControllerRetriesFailedCreate(t *testing.T) {
	rt := newFakeRuntime()
	flaky := parseTask(t, "flaky.yaml", "flaky")
	other := parseTask(t, "other.yaml", "other")
	rt.fail(OpCreate, idOf(flaky), errors.New("pull image: connection refused"))

	startController(t, rt, Config{Workers: 2}, stateOf(flaky, other))
	eventually(t, func() bool { return rt.count(0, OpCreate, idOf(flaky)) >= 3 }, "failed Create not retried")
	eventually(t, func() bool { return rt.running(idOf(other)) }, "other not running while flaky fails")
	if _, ok := rt.container(idOf(flaky)); ok {
		t.Fatal("flaky created although Create fails")
	}

	rt.fail(OpCreate, idOf(flaky), nil)
	eventually(t, func() bool { return rt.running(idOf(flaky)) }, "flaky not running after Create stopped failing")
}

// (i) Ready closes once the first pass is done, failures included, and by
// then every task has been worked once.
func TestControllerReadyAfterFirstPass(t *testing.T) {
	t.Run("tasks", func(t *testing.T) {
		rt := newFakeRuntime()
		web := parseTask(t, "web.yaml", "web")
		bad := parseTask(t, "bad.yaml", "bad")
		rt.fail(OpCreate, idOf(bad), errors.New("image not found"))
		cfg := Config{Workers: 2, RetryInitial: time.Hour, RetryMax: time.Hour} // one attempt in the test
		releaseList := rt.block(opList, "")                                     // hold the first resync's List
		defer releaseList()
		c, _ := startController(t, rt, cfg, stateOf(web, bad))
		eventually(t, func() bool { return rt.count(0, opList, "") == 1 }, "first resync did not list")
		select {
		case <-c.Ready():
			t.Fatal("Ready closed before the node was listed")
		default:
		}
		releaseList()
		waitReady(t, c)
		if !rt.running(idOf(web)) {
			t.Error("Ready closed before web was created and started")
		}
		if rt.count(0, OpCreate, idOf(bad)) == 0 {
			t.Error("Ready closed before bad was worked")
		}
	})
	t.Run("empty", func(t *testing.T) {
		c, _ := startController(t, newFakeRuntime(), Config{})
		waitReady(t, c)
	})
}

// Level-triggered (DESIGN invariant 7): with no event at all, the periodic
// resync repairs drift: a container removed or stopped behind the
// controller's back comes back, and an owned container of no task goes.
func TestControllerResyncRepairsDrift(t *testing.T) {
	rt := newFakeRuntime()
	web := parseTask(t, "web.yaml", "web")
	api := parseTask(t, "api.yaml", "api")
	c, _ := startController(t, rt, Config{Workers: 2, Resync: 20 * time.Millisecond}, stateOf(web, api))
	waitReady(t, c)
	eventually(t, func() bool { return rt.running(idOf(web)) && rt.running(idOf(api)) })

	rt.remove(idOf(web))
	r, _ := rt.container(idOf(api))
	r.Status, r.ExitCode = observed.Stopped, 1
	rt.put(r)
	stray := ownedBy(parseTask(t, "stray.yaml", "stray"), observed.Running)
	rt.put(stray)

	eventually(t, func() bool { return rt.running(idOf(web)) }, "removed container not recreated by resync")
	eventually(t, func() bool { return rt.running(idOf(api)) }, "stopped container not restarted by resync")
	eventually(t, func() bool { _, ok := rt.container(stray.ID); return !ok }, "stray owned container not removed by resync")
}

// Statelessness (DESIGN invariant 3): a new controller over a node that
// already matches the desired state does nothing.
func TestControllerRestartIsNoOp(t *testing.T) {
	rt := newFakeRuntime()
	web := parseTask(t, "web.yaml", "web")
	api := parseTask(t, "api.yaml", "api")
	c1, stop1 := startController(t, rt, Config{Workers: 2}, stateOf(web, api))
	waitReady(t, c1)
	eventually(t, func() bool { return rt.running(idOf(web)) && rt.running(idOf(api)) })
	stop1()

	mark := rt.mark()
	c2, _ := startController(t, rt, Config{Workers: 2}, stateOf(web, api))
	waitReady(t, c2)
	if got := rt.mutations(mark); len(got) != 0 {
		t.Errorf("restarted controller acted on a converged node: %v", got)
	}
}

// TestControllerReloadsAtEachResync: Config.Reload runs at each resync
// period, before the re-list, so a desired state it sets is what that pass
// acts on: a file event that was lost costs one period, not forever.
func TestControllerReloadsAtEachResync(t *testing.T) {
	rt := newFakeRuntime()
	clk := newFakeClock()
	web := parseTask(t, "web.yaml", "web")
	api := parseTask(t, "api.yaml", "api")
	var c *Controller
	var mu sync.Mutex
	reloads := 0
	reload := func() {
		mu.Lock()
		reloads++
		mu.Unlock()
		c.SetDesired(stateOf(web, api)) // api's file event was lost
	}
	c, _ = startController(t, rt, Config{Workers: 1, Clock: clk, Resync: time.Minute, Reload: reload}, stateOf(web))
	waitPhase(t, c, "web", PhaseRunning)
	mu.Lock()
	n := reloads
	mu.Unlock()
	if n != 0 || rt.running(idOf(api)) {
		t.Fatalf("%d reloads and api running before any resync period", n)
	}
	clk.Step(time.Minute)
	waitPhase(t, c, "api", PhaseRunning)
	mu.Lock()
	defer mu.Unlock()
	if reloads != 1 {
		t.Errorf("%d reloads after one period, want 1", reloads)
	}
}
