package chaos

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"

	"github.com/warren/reconciler/e2e/invariants"
	"github.com/warren/reconciler/e2e/testenv"
	"github.com/warren/reconciler/pkg/observed"
)

// How a change of the update fault fails, or does not.
type change int

const (
	exits     change = iota // exits 1 at once: rolled back after its third failed exit
	unhealthy               // runs, fails its health check (retries 2): rolled back once unhealthy
	slow                    // runs, never passes its health check (retries 1000): only the deadline rolls it back
	good                    // a good change: it proves itself, the old container goes
)

func (c change) String() string {
	return [...]string{"exits 1", "fails its health check", "never healthy before its deadline", "good change"}[c]
}

// slowDeadline is the progressDeadline of a change that never turns healthy.
const slowDeadline = 6 * time.Second

// updateSpec is the spec of a task of the update pool: minReady 2s, a
// deadline of 20s, a quick health check that passes and a short crash
// back-off, with strategy; then how change c breaks it.
func updateSpec(strategy string, c change) []string {
	spec := []string{
		"updateStrategy: " + strategy,
		"minReady: 2s",
		"restartBackoff: {initial: 500ms, max: 2s, resetAfter: 5s}",
	}
	deadline := "progressDeadline: 20s"
	check := "healthCheck: {exec: {command: [/testapp, probe]}, interval: 500ms, timeout: 5s, retries: 2}"
	switch c {
	case exits:
		spec = append(spec, "args: [-exit-after, 50ms, -exit-code, '1']")
	case unhealthy:
		check = "healthCheck: {exec: {command: [/testapp, probe, -file, /no/such/file]}, interval: 500ms, timeout: 5s, retries: 2}"
	case slow:
		check = "healthCheck: {exec: {command: [/testapp, probe, -file, /no/such/file]}, interval: 500ms, timeout: 5s, retries: 1000}"
		deadline = fmt.Sprintf("progressDeadline: %s", slowDeadline)
	}
	return append(spec, deadline, check)
}

// victim is one task the update fault changes, as it was before.
type victim struct {
	name     string
	strategy string
	change   change
	old      invariants.Container // its container before the change
	newHash  string               // the spec hash of the change
}

func (v victim) newID() string { return observed.ContainerID(v.name, v.newHash) }

// TestChaosBadUpdate (fault 8): random tasks get a changed spec that fails
// to prove itself (exits at once, fails its health check, or never turns
// healthy before its deadline), or now and then a good one; a third of the
// time the reconciler is killed (SIGKILL) during the rollout and started
// again. A bad change must be rolled back to the very container that ran
// before (same ID, same snapshot; for start-first the same process),
// with the status saying rolledBack with the refused hash; a good one must
// leave only its new container, proven. At every moment the old
// container is there until the new one has proved itself, and a
// stop-first task never has both running. Every other task is left as it
// was.
func TestChaosBadUpdate(t *testing.T) {
	w := newWorld(t, "update", "", "")
	w.addStable("stable-a", "stable-b")
	w.addBystander("bystander")
	const pool = 6
	var names []string
	strategy := map[string]string{}
	for j := range pool {
		name := fmt.Sprintf("u-%d", j)
		strategy[name] = "stop-first"
		if j%2 == 1 {
			strategy[name] = "start-first"
		}
		w.setTask(name, 1, updateSpec(strategy[name], good)...)
		names = append(names, name)
	}
	w.start()
	w.ready("set-up")
	// The first change of a task is a rollout only once its container has
	// run minReady (2s).
	time.Sleep(2 * time.Second)
	iterations(t, func(i int) {
		vnames, b := w.victims(names)
		running := w.running()
		var vs []victim
		var did []string
		for _, name := range vnames {
			c, ok := running[name]
			if !ok {
				t.Fatalf("victim %s not running", name)
			}
			v := victim{name: name, strategy: strategy[name], change: change(w.rng.IntN(4)), old: c}
			ver := w.versions[name] + 1
			w.setTask(name, ver, updateSpec(v.strategy, v.change)...)
			v.newHash = parse(t, taskYAML(name, ver, updateSpec(v.strategy, v.change)...)).Hash()
			vs = append(vs, v)
			did = append(did, fmt.Sprintf("%s (%s): %s", name, v.strategy, v.change))
		}
		before := len(w.d.Output())
		since := time.Now()
		watch := w.watchRollouts(vs)
		if w.rng.IntN(3) == 0 {
			// During the rollout: half the time just after the new
			// container's create began, else at a random moment of the
			// first 4s (before, during or after a quick rollback).
			if w.rng.IntN(2) == 0 {
				for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
					if strings.Contains(w.d.Output()[before:], "creating container") {
						break
					}
				}
				time.Sleep(w.jitter(time.Second))
			} else {
				time.Sleep(w.jitter(4 * time.Second))
			}
			w.d.Kill()
			down := w.jitter(time.Second)
			time.Sleep(down)
			did = append(did, fmt.Sprintf("reconciler killed %s after the change, down %s",
				time.Since(since).Round(time.Millisecond), down.Round(time.Millisecond)))
			w.start()
			since = time.Now()
		}
		what := fmt.Sprintf("update %d (%s)", i, strings.Join(did, "; "))
		var wrong []string
		err := testenv.Poll(*flagConverge, 200*time.Millisecond, "every victim rolled back or rolled out", func() bool {
			var ended bool
			ended, wrong = w.rolloutsEnded(vs)
			return ended
		})
		seen := append(watch.stop(), wrong...)
		for _, e := range seen {
			t.Errorf("%s: %s (seed %d)", what, e, env.seed)
		}
		stats.violated(w.kind, len(seen))
		if err != nil {
			stats.record(w.kind, -1, 1)
			t.Errorf("%s: %v (seed %d)", what, err, env.seed)
			w.dump()
			return
		}
		w.converge(what, since, b)
	})
}

// rolloutWatch checks the victims' containers every 100 ms while their
// changes roll out (whatever happens to the reconciler meanwhile): the old
// container is kept, with its snapshot, until the new one has proved
// itself, and a stop-first task never has both running.
type rolloutWatch struct {
	quit     chan struct{}
	finished chan struct{}
	errs     []string // written by the watch until finished
}

func (w *world) watchRollouts(vs []victim) *rolloutWatch {
	rw := &rolloutWatch{quit: make(chan struct{}), finished: make(chan struct{})}
	go func() {
		defer close(rw.finished)
		seen := map[string]bool{}
		report := func(format string, args ...any) {
			if e := fmt.Sprintf(format, args...); !seen[e] {
				seen[e] = true
				rw.errs = append(rw.errs, e)
			}
		}
		for {
			select {
			case <-rw.quit:
				return
			case <-time.After(100 * time.Millisecond):
			}
			n, err := w.check.Read(w.t.Context())
			if err != nil {
				continue // containerd busy: the next look
			}
			for _, v := range invariants.Violations(n, invariants.Baseline{}) {
				if v.Kind == invariants.Overlap {
					report("%s", v)
				}
			}
			for _, v := range vs {
				old, hasOld := n.Containers[v.old.ID]
				cur, hasNew := n.Containers[v.newID()]
				proven := hasNew && cur.Labels[observed.LabelProven] != ""
				if !hasOld && !proven {
					report("%s: its old container %s is gone before the new one proved itself (new container there: %v)", v.name, v.old.ID, hasNew)
				}
				if hasOld && old.Snapshot != v.old.Snapshot {
					report("%s: its old container %s has snapshot %s, had %s", v.name, v.old.ID, old.Snapshot, v.old.Snapshot)
				}
			}
		}
	}()
	return rw
}

// stop ends the watch and returns what it saw.
func (rw *rolloutWatch) stop() []string {
	select {
	case <-rw.finished:
	default:
		close(rw.quit)
		<-rw.finished
	}
	return rw.errs
}

// rolloutsEnded reports whether every victim's change has ended as it
// must: a bad one rolled back to its old container (the only one of the
// task, running, marked with the refused hash, the status saying
// rolledBack with that hash and that container), a good one rolled out
// (its new container alone, running, proven). Once they have, it also
// returns what is wrong in how they did: a rolled-back container with
// another snapshot, or, for start-first (which never stops it), another
// process.
func (w *world) rolloutsEnded(vs []victim) (bool, []string) {
	n, err := w.check.Read(w.t.Context())
	if err != nil {
		return false, nil
	}
	var wrong []string
	for _, v := range vs {
		var mine []invariants.Container
		for _, c := range n.Containers {
			if c.Owned && c.Task == v.name {
				mine = append(mine, c)
			}
		}
		if len(mine) != 1 || mine[0].Status != containerd.Running {
			return false, nil
		}
		c := mine[0]
		if v.change == good {
			if c.ID != v.newID() || c.Labels[observed.LabelProven] == "" {
				return false, nil
			}
			continue
		}
		var rb observed.Rollback
		if c.ID != v.old.ID || json.Unmarshal([]byte(c.Labels[observed.LabelRolledBack]), &rb) != nil || rb.Hash != v.newHash {
			return false, nil
		}
		if c.Snapshot != v.old.Snapshot {
			wrong = append(wrong, fmt.Sprintf("%s rolled back to %s with snapshot %s, had %s", v.name, c.ID, c.Snapshot, v.old.Snapshot))
		}
		if v.strategy == "start-first" && c.Pid != v.old.Pid {
			wrong = append(wrong, fmt.Sprintf("%s (start-first) rolled back to %s with pid %d, had pid %d: the old container was stopped", v.name, c.ID, c.Pid, v.old.Pid))
		}
		st, err := w.rolloutStatus(v.name)
		if err != nil || st.RolledBack.RefusedHash != v.newHash || st.ContainerID != v.old.ID {
			return false, nil
		}
	}
	return true, wrong
}

// rolloutState is the part of `reconciler status TASK -o json` about
// rollouts (testenv.TaskStatus does not decode it).
type rolloutState struct {
	ContainerID string `json:"containerID"`
	Rollout     struct {
		From     string    `json:"from"`
		Deadline time.Time `json:"deadline"`
	} `json:"rollout"`
	RolledBack struct {
		RefusedHash string    `json:"refusedHash"`
		Reason      string    `json:"reason"`
		At          time.Time `json:"at"`
	} `json:"rolledBack"`
}

func (w *world) rolloutStatus(task string) (rolloutState, error) {
	var st rolloutState
	out, err := exec.Command(env.bin, "status", task, "-o", "json", "--state-dir", w.state).Output()
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(out, &st)
}
