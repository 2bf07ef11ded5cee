package reconcile

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/warren/reconciler/pkg/clock"
	"github.com/warren/reconciler/pkg/desired"
	"github.com/warren/reconciler/pkg/observed"
)

// taskWith parses a one-task manifest with extra spec lines (indented by two).
func taskWith(t *testing.T, name, extra string) desired.Task {
	t.Helper()
	doc := fmt.Sprintf("apiVersion: warren/v1\nkind: Task\nmetadata:\n  name: %s\nspec:\n  image: %s\n%s", name, testImage, extra)
	tasks, err := desired.Parse(name+".yaml", []byte(doc))
	if err != nil || len(tasks) != 1 {
		t.Fatalf("parse: %v\n%s", err, doc)
	}
	return tasks[0]
}

// running waits until the controller has the task running in the fake.
func waitPhase(t *testing.T, c *Controller, name string, want Phase) TaskStatus {
	t.Helper()
	var st TaskStatus
	eventually(t, func() bool {
		var ok bool
		st, ok = c.TaskStatus(name)
		return ok && st.Phase == want
	}, "task %s never reached phase %s (last %+v)", name, want, &st)
	return st
}

// waitBackOff waits until task name is in CrashLoopBackOff and the queue's
// timer for its restart is set: the status is written before the worker
// sets the timer, and a step of the fake clock in between would pass it by.
func waitBackOff(t *testing.T, c *Controller, clk *clock.Fake, name string) TaskStatus {
	t.Helper()
	st := waitPhase(t, c, name, PhaseCrashLoopBackOff)
	eventually(t, func() bool {
		for _, at := range clk.Pending() {
			if at.Equal(st.NextRetry) {
				return true
			}
		}
		return false
	}, "no timer at the retry time of %s (%v): %v", name, st.NextRetry, clk.Pending())
	return st
}

func TestRestartBackoffGrowsAndIsHeldByTheClock(t *testing.T) {
	rt := newFakeRuntime()
	clk := newFakeClock()
	web := taskWith(t, "web", "")
	id := idOf(web)
	c, _ := startController(t, rt, Config{Workers: 2, Clock: clk}, stateOf(web))
	waitPhase(t, c, "web", PhaseRunning)

	// Default backoff: 1s, 2s, 4s, 8s.
	for i, delay := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second} {
		starts := rt.count(0, OpStart, id)
		rt.exit(id, 1, clk.Now())
		c.Exited(id)
		st := waitBackOff(t, c, clk, "web")
		if want := clk.Now().Add(delay); !st.NextRetry.Equal(want) {
			t.Fatalf("crash %d: next retry %v, want %v (delay %s)", i+1, st.NextRetry, want, delay)
		}
		clk.Step(delay - time.Millisecond)
		if n := rt.count(0, OpStart, id); n != starts {
			t.Fatalf("crash %d: restarted before its back-off of %s", i+1, delay)
		}
		clk.Step(time.Millisecond)
		st = waitPhase(t, c, "web", PhaseRunning)
		if st.Restarts != i+1 {
			t.Errorf("crash %d: restarts %d", i+1, st.Restarts)
		}
		if got := rt.labels(id)[observed.LabelRestarts]; got != fmt.Sprint(i+1) {
			t.Errorf("crash %d: restarts label %q (the count must survive a restart of the reconciler)", i+1, got)
		}
	}
}

func TestRestartBackoffCapAndResetAfterCleanRun(t *testing.T) {
	web := taskWith(t, "web", "  restartBackoff: {initial: 1s, max: 3s, resetAfter: 1m}\n")
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		streak    int
		ran       time.Duration
		wantDelay time.Duration
	}{
		{"first crash", 0, time.Second, time.Second},
		{"second crash doubles", 1, time.Second, 2 * time.Second},
		{"capped at max", 2, time.Second, 3 * time.Second},
		{"long streak stays capped", 40, time.Second, 3 * time.Second},
		{"clean run resets the streak", 5, time.Minute, time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := observed.Container{Streak: tc.streak, Raw: observed.Raw{ExitedAt: start.Add(tc.ran)}, StartedAt: start}
			due, _ := NextRestart(web.Spec, c)
			if got := due.Sub(c.ExitedAt); got != tc.wantDelay {
				t.Errorf("delay %s, want %s", got, tc.wantDelay)
			}
		})
	}
}

func TestRestartPolicies(t *testing.T) {
	tests := []struct {
		policy    string
		code      uint32
		restarted bool
		phase     Phase
	}{
		{"Always", 0, true, PhaseRunning},
		{"Always", 3, true, PhaseRunning},
		{"OnFailure", 0, false, PhaseCompleted},
		{"OnFailure", 3, true, PhaseRunning},
		{"Never", 0, false, PhaseCompleted},
		{"Never", 3, false, PhaseFailed},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s exit %d", tc.policy, tc.code), func(t *testing.T) {
			rt := newFakeRuntime()
			clk := newFakeClock()
			job := taskWith(t, "job", "  restartPolicy: "+tc.policy+"\n")
			id := idOf(job)
			c, _ := startController(t, rt, Config{Workers: 2, Clock: clk}, stateOf(job))
			waitPhase(t, c, "job", PhaseRunning)
			rt.exit(id, tc.code, clk.Now())
			c.Exited(id)
			if !tc.restarted {
				st := waitPhase(t, c, "job", tc.phase)
				if st.ExitCode == nil || *st.ExitCode != int(tc.code) {
					t.Errorf("status exit code %v, want %d", st.ExitCode, tc.code)
				}
				clk.Step(time.Hour)
				c.Exited(id) // even when looked at again
				waitPhase(t, c, "job", tc.phase)
				if n := rt.count(0, OpStart, id); n != 1 {
					t.Errorf("started %d times, want once", n)
				}
				return
			}
			waitBackOff(t, c, clk, "job")
			clk.Step(time.Second)
			waitPhase(t, c, "job", PhaseRunning)
			if n := rt.count(0, OpStart, id); n != 2 {
				t.Errorf("started %d times, want twice", n)
			}
		})
	}
}

func TestRestartCountSurvivesANewController(t *testing.T) {
	rt := newFakeRuntime()
	clk := newFakeClock()
	web := taskWith(t, "web", "")
	id := idOf(web)
	c1, stop := startController(t, rt, Config{Workers: 2, Clock: clk}, stateOf(web))
	waitPhase(t, c1, "web", PhaseRunning)
	rt.exit(id, 1, clk.Now())
	c1.Exited(id)
	waitBackOff(t, c1, clk, "web")
	clk.Step(time.Second)
	waitPhase(t, c1, "web", PhaseRunning)
	rt.exit(id, 1, clk.Now())
	c1.Exited(id)
	waitPhase(t, c1, "web", PhaseCrashLoopBackOff)
	stop()

	// A new process knows the restart count and the streak from the labels:
	// the next delay is 2s, not 1s again.
	c2, _ := startController(t, rt, Config{Workers: 2, Clock: clk}, stateOf(web))
	st := waitPhase(t, c2, "web", PhaseCrashLoopBackOff)
	if st.Restarts != 1 || !st.NextRetry.Equal(clk.Now().Add(2*time.Second)) {
		t.Fatalf("rebuilt status %+v, want 1 restart and a retry in 2s", st)
	}
}

func TestStartFirstReplacement(t *testing.T) {
	rt := newFakeRuntime()
	v1 := taskWith(t, "web", "  updateStrategy: start-first\n  env: [{name: V, value: '1'}]\n")
	v2 := taskWith(t, "web", "  updateStrategy: start-first\n  env: [{name: V, value: '2'}]\n")
	rt.put(ownedBy(v1, observed.Running))
	c, _ := startController(t, rt, Config{Workers: 2}, stateOf(v1))
	waitReady(t, c)
	mark := rt.mark()
	c.SetDesired(stateOf(v2))
	eventually(t, func() bool { _, ok := rt.container(idOf(v1)); return !ok }, "old container not removed")
	got := callStrings(rt.mutations(mark))
	want := []string{"create " + idOf(v2), "start " + idOf(v2), "stop " + idOf(v1), "delete " + idOf(v1)}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("start-first calls %v, want %v", got, want)
	}
}

func TestStartFirstKeepsOldUntilNewRuns(t *testing.T) {
	v1 := taskWith(t, "web", "  updateStrategy: start-first\n  env: [{name: V, value: '1'}]\n")
	v2 := taskWith(t, "web", "  updateStrategy: start-first\n  env: [{name: V, value: '2'}]\n")
	oldC := observed.Classify([]observed.Raw{ownedBy(v1, observed.Running)}).Containers[0]
	newC := observed.Classify([]observed.Raw{ownedBy(v2, observed.Created)}).Containers[0]
	// Crashed after creating the new container, before starting it.
	as := Plan(stateOf(v2), observed.State{Containers: []observed.Container{oldC, newC}}, time.Now())
	if got := steps(as); fmt.Sprint(got) != fmt.Sprint([]step{{OpStart, idOf(v2)}}) {
		t.Fatalf("Plan = %v, want only the start of the new container", got)
	}
}

// policyError is what a runtime returns when the node policy refuses a spec.
type policyError struct{}

func (policyError) Error() string   { return "spec.securityContext.privileged: denied by node policy" }
func (policyError) Permanent() bool { return true }

func TestPermanentErrorIsNotRetriedUntilTheSpecChanges(t *testing.T) {
	rt := newFakeRuntime()
	bad := taskWith(t, "priv", "  env: [{name: V, value: '1'}]\n")
	rt.fail(OpCreate, idOf(bad), policyError{})
	c, _ := startController(t, rt, Config{Workers: 2}, stateOf(bad))
	st := waitPhase(t, c, "priv", PhaseFailed)
	if st.Message == "" || !errors.Is(rt.errs[fakeKey{OpCreate, idOf(bad)}], policyError{}) {
		t.Errorf("status %+v", st)
	}
	c.Exited(idOf(bad)) // looking again does not retry
	waitPhase(t, c, "priv", PhaseFailed)
	if n := rt.count(0, OpCreate, idOf(bad)); n != 1 {
		t.Fatalf("a refused create was tried %d times", n)
	}
	fixed := taskWith(t, "priv", "  env: [{name: V, value: '2'}]\n")
	c.SetDesired(stateOf(fixed))
	waitPhase(t, c, "priv", PhaseRunning)
}

func TestStatusIsRemovedWithTheTask(t *testing.T) {
	rt := newFakeRuntime()
	web := taskWith(t, "web", "")
	c, _ := startController(t, rt, Config{Workers: 2}, stateOf(web))
	st := waitPhase(t, c, "web", PhaseRunning)
	if st.ContainerID != idOf(web) || st.Source != "web.yaml" || st.SpecHash != web.Hash() || st.Image != testImage {
		t.Errorf("status %+v", st)
	}
	changed := c.StatusChanged()
	c.SetDesired(stateOf())
	eventually(t, func() bool { _, ok := c.TaskStatus("web"); return !ok }, "status of a removed task kept")
	select {
	case <-changed:
	default:
		t.Error("StatusChanged not closed by a change")
	}
	if len(c.Status()) != 0 {
		t.Errorf("Status() = %+v", c.Status())
	}
}

func TestInvalidSourceShowsInStatus(t *testing.T) {
	rt := newFakeRuntime()
	web := taskWith(t, "web", "")
	c, _ := startController(t, rt, Config{Workers: 2}, stateOf(web))
	waitPhase(t, c, "web", PhaseRunning)
	s := stateOf(web)
	s.Broken = map[string]error{"web.yaml": errors.New("web.yaml:3: spec.image: required")}
	c.SetDesired(s)
	st := waitPhase(t, c, "web", PhaseInvalid)
	if n := rt.count(0, OpStop, idOf(web)); n != 0 {
		t.Errorf("a broken file stopped its task")
	}
	if want := "manifest invalid, last good spec kept (running): web.yaml:3: spec.image: required"; st.Message != want {
		t.Errorf("message %q, want %q", st.Message, want)
	}
}

func TestRepullReplacesWhenTheTagMoves(t *testing.T) {
	rt := newFakeRuntime()
	clk := newFakeClock()
	web := taskWith(t, "web", "  imagePullPolicy: Always\n")
	pinned := taskWith(t, "pinned", "  imagePullPolicy: IfNotPresent\n")
	rt.setDigest(testImage, "sha256:aaa")
	c, _ := startController(t, rt, Config{Workers: 2, Clock: clk, RepullInterval: time.Minute}, stateOf(web, pinned))
	waitPhase(t, c, "web", PhaseRunning)
	waitPhase(t, c, "pinned", PhaseRunning)
	id := idOf(web)

	// Same digest at the re-pull: nothing happens. (The re-pull loop sets
	// its timer when it starts: a step before would pass it by.)
	waitTimer(t, clk, clk.Now().Add(time.Minute))
	clk.Step(time.Minute)
	eventually(t, func() bool { rt.mu.Lock(); defer rt.mu.Unlock(); return rt.pulls >= 1 }, "no re-pull after the interval")
	mark := rt.mark()

	// The tag moves: the container, which has run long enough to be a
	// rollback target, is stopped and kept while a container of the new
	// digest (named by its revision) proves itself; then it goes.
	rt.setDigest(testImage, "sha256:bbb")
	waitTimer(t, clk, clk.Now().Add(time.Minute))
	clk.Step(time.Minute)
	rev := observed.RevisionID("web", web.Hash(), "sha256:bbb")
	eventually(t, func() bool { return rt.labels(rev)[observed.LabelImageDigest] == "sha256:bbb" && rt.running(rev) },
		"no container of the moved tag")
	got := callStrings(rt.mutations(mark, id, rev))
	want := []string{"stop " + id, "create " + rev, "start " + rev}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("calls %v, want %v", got, want)
	}
	if l := rt.labels(rev); l[observed.LabelRevision] != observed.Revision("sha256:bbb") || l[observed.LabelSpecHash] != web.Hash() {
		t.Errorf("labels of the new container: %v", l)
	}
	var st TaskStatus
	eventually(t, func() bool {
		st, _ = c.TaskStatus("web")
		return st.Phase == PhaseRunning && st.ContainerID == rev && st.Rollout.From == id
	}, "status during the rollout of the moved tag: %+v", &st)
	waitTimer(t, clk, st.Rollout.Since.Add(desired.DefaultMinReady))
	clk.Step(desired.DefaultMinReady)
	eventually(t, func() bool { _, ok := rt.container(id); return !ok }, "the container of the old digest stayed after the new one proved itself")
	if n := len(rt.mutations(mark, idOf(pinned))); n != 0 {
		t.Errorf("an IfNotPresent task was touched by the re-pull: %d calls", n)
	}
}

func TestResyncOfANodeInSyncListsOnce(t *testing.T) {
	rt := newFakeRuntime()
	clk := newFakeClock()
	var tasks []desired.Task
	for i := range 50 {
		tasks = append(tasks, taskWith(t, fmt.Sprintf("t%02d", i), ""))
	}
	c, _ := startController(t, rt, Config{Workers: 4, Clock: clk, Resync: time.Minute}, stateOf(tasks...))
	for _, tk := range tasks {
		waitPhase(t, c, tk.Metadata.Name, PhaseRunning)
	}
	for pass := range 3 {
		eventually(t, c.q.idle, "controller not idle")
		mark := rt.mark()
		clk.Step(time.Minute)
		eventually(t, func() bool { return len(rt.callsSince(mark)) >= 1 }, "no resync")
		eventually(t, c.q.idle, "controller not idle after the pass")
		calls := rt.callsSince(mark)
		if len(calls) != 1 || calls[0].Op != opList || calls[0].ID != "" {
			t.Fatalf("pass %d over 50 tasks in sync made %d calls: %v", pass, len(calls), callStrings(calls))
		}
	}
}

func TestPhasePullingWhileTheImageIsFetched(t *testing.T) {
	for _, tc := range []struct {
		name    string
		present bool
		policy  string
		want    Phase
	}{
		{"absent image", false, "IfNotPresent", PhasePulling},
		{"present image", true, "IfNotPresent", PhaseCreating},
		{"Always pulls", true, "Always", PhasePulling},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt := newFakeRuntime()
			if tc.present {
				rt.setDigest(testImage, "sha256:aaa")
			}
			web := taskWith(t, "web", "  imagePullPolicy: "+tc.policy+"\n")
			release := rt.block(OpCreate, idOf(web))
			defer release()
			c, _ := startController(t, rt, Config{Workers: 2}, stateOf(web))
			st := waitPhase(t, c, "web", tc.want)
			if tc.want == PhasePulling && !strings.Contains(st.Message, "pulling "+testImage) {
				t.Errorf("message %q", st.Message)
			}
			release()
			waitPhase(t, c, "web", PhaseRunning)
		})
	}
}
