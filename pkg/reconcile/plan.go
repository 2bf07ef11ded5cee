package reconcile

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/warren/reconciler/pkg/desired"
	"github.com/warren/reconciler/pkg/observed"
)

// Op is what an action does.
type Op string

// Operations.
const (
	OpStop   Op = "stop"   // signal, grace period, SIGKILL
	OpDelete Op = "delete" // task, container, snapshot
	OpCreate Op = "create" // container with a new snapshot (image made available first)
	OpStart  Op = "start"  // a new task in an existing container (first start or restart)

	// OpWait changes nothing: the task's process exited and its restart is
	// held back until NotBefore by its crash backoff (CrashLoopBackOff).
	OpWait Op = "wait"
	// OpBlocked changes nothing: the task's container ID is held by a
	// container the reconciler does not own. Applying it fails, so the task
	// is retried with backoff until the operator removes that container.
	OpBlocked Op = "blocked"
	// OpAwait changes nothing: the task's new container waits for the
	// tasks it depends on (spec.dependsOn) to meet their conditions. Their
	// status changes queue it again.
	OpAwait Op = "await"
	// OpMark sets labels on a container: a rollout's last good container
	// or the new container that proved itself (see rollout.go).
	OpMark Op = "mark"
	// OpRollout changes nothing: the task's new container is proving
	// itself, its last good one kept; the task is looked at again at
	// NotBefore (the proof or the deadline is due) or when its health
	// changes.
	OpRollout Op = "rollout"
	// OpRefused changes nothing: the desired spec was rolled back and is
	// not tried again until the manifest changes; the last good container
	// runs. Reason says why.
	OpRefused Op = "refused"
)

// Action is one step towards the desired state.
type Action struct {
	Op          Op
	Task        string // task name
	ContainerID string
	Reason      string

	// Desired is the task to create (OpCreate only).
	Desired *desired.Task
	// StopSignal and StopGrace come from the container's labels (OpStop only):
	// a replaced container stops the way its own spec said.
	StopSignal string
	StopGrace  time.Duration
	// Labels are set on the container before its task starts (OpStart):
	// start time and restart counts, so that a restarted reconciler knows
	// them. A new container gets them when it is created (OpCreate), which
	// saves containerd a write per start. An OpStop of an unhealthy task
	// sets why before the stop, so that its exit counts as a failure.
	Labels map[string]string
	// NotBefore is when a held-back restart may happen (OpWait).
	NotBefore time.Time
	// Restart marks an OpStart that restarts an exited task.
	Restart bool
	// Diff lists the spec fields that changed, on the actions of a
	// replacement (when the old container recorded its spec).
	Diff []string
	// Rollout marks the actions that begin, prove or roll back a rollout
	// (rolloutStarted, rolloutSucceeded, rolloutRolledBack), for the
	// metrics and the logs; From is the last good container, Since when
	// the new one was created (also on OpRollout).
	Rollout string
	From    string
	Since   time.Time
	// Proving marks the start of a rollout's new container: its start time
	// is written again once the start returned, as minReady counts from
	// when the process runs, not from when its start was asked for (a
	// start can take seconds on a loaded node).
	Proving bool
}

func (a Action) String() string {
	return fmt.Sprintf("%s %s %s: %s", a.Op, a.Task, a.ContainerID, a.Reason)
}

// Plan returns the actions that make have equal to want, ordered by task name.
// Within a task the order follows its update strategy: stop-first removes the
// old container before the new one comes (safe with host networking);
// start-first keeps the old one until the new one runs. Restarts follow the
// restart policy, held back by the task's crash backoff as of now. A
// container whose image tag moved (have.Pulled) is replaced. A running
// container that failed its health check (have.Unhealthy) is stopped, and
// its exit counts as a failure. A new container waits until the tasks it
// depends on meet their conditions (have.Peers).
//
// Plan is pure: no I/O, no clock but now.
func Plan(want desired.State, have observed.State, now time.Time) []Action {
	names := map[string]bool{}
	for name := range want.Tasks {
		names[name] = true
	}
	byTask := map[string][]observed.Container{}
	for _, c := range have.Containers {
		byTask[c.Task] = append(byTask[c.Task], c)
		names[c.Task] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	foreign := make(map[string]string, len(have.Unmanaged))
	for _, u := range have.Unmanaged {
		foreign[u.ID] = u.Reason
	}

	var actions []Action
	for _, name := range sorted {
		var tp *desired.Task
		if t, ok := want.Tasks[name]; ok {
			tp = &t
		}
		f := facts{foreign: foreign, pulled: have.Pulled, unhealthy: have.Unhealthy, healthy: have.Healthy, peers: have.Peers}
		actions = append(actions, planTask(name, tp, byTask[name], want, f, now)...)
	}
	return actions
}

// facts is what the plan of a task needs besides its containers: the
// unmanaged containers (ID -> why), the re-pulled digests (image ->
// digest), the health verdicts (container ID -> why unhealthy) and what
// the other tasks are doing.
type facts struct {
	foreign, pulled, unhealthy map[string]string
	healthy                    map[string]bool
	peers                      map[string]observed.Peer
}

// planTask plans one task. t is nil when the task is not desired.
func planTask(name string, t *desired.Task, have []observed.Container, want desired.State, f facts, now time.Time) []Action {
	if t == nil {
		if want.Err != nil {
			// The directory could not be read: whether this task is still
			// wanted is unknown, and unknown never means "delete".
			return nil
		}
		var actions []Action
		for _, c := range have {
			if _, ok := want.Broken[c.Source]; ok {
				// Its file is there but does not parse: last known good, keep it.
				continue
			}
			actions = append(actions, remove(c, fmt.Sprintf("no longer desired (source %s)", orUnknown(c.Source)))...)
		}
		return actions
	}

	hash := want.Hash(name)
	id, key, current := desiredContainer(name, hash, t, have, f.pulled)
	var old []observed.Container
	for _, c := range have {
		if current == nil || c.ID != current.ID {
			old = append(old, c)
		}
	}
	var removals []Action
	var diff []string
	for _, c := range old {
		why := "spec changed (hash " + c.SpecHash + " -> " + hash + ")"
		if _, d, moved := strings.Cut(key, "@"); moved && c.SpecHash == hash {
			why = "image " + t.Spec.Image + " moved to " + d
		}
		rm := remove(c, why)
		if c.Spec != nil && c.SpecHash != hash {
			if d, err := desired.DiffJSON(c.Spec, t.Spec); err == nil {
				diff = d
				for i := range rm {
					rm[i].Diff = d
				}
			}
		}
		removals = append(removals, rm...)
	}
	if good := refusedBy(have, key); good != nil {
		// The change was rolled back: the last good container stays.
		return keepGood(name, t, good, have, f, now)
	}
	if good := lastGood(old, current, t, f, now); good != nil && (current == nil || current.Proven.IsZero()) {
		var others []observed.Container
		for _, c := range old {
			if c.ID != good.ID {
				others = append(others, c)
			}
		}
		if current != nil {
			return continueRollout(name, key, t, current, good, others, f, now)
		}
		if reason, ok := f.foreign[id]; ok {
			return []Action{{Op: OpBlocked, Task: name, ContainerID: id,
				Reason: "container id taken by an unmanaged container (" + reason + "); remove it to let the task run"}}
		}
		if back := heldTooLong(name, key, t, good, others, now); back != nil {
			return back
		}
		if w := await(name, id, t, f.peers); w != nil {
			return w
		}
		var d []string
		if good.Spec != nil {
			d, _ = desired.DiffJSON(good.Spec, t.Spec)
		}
		return beginRollout(name, id, key, t, good, others, d, f.pulled[t.Spec.Image], now)
	}
	if _, d, moved := strings.Cut(key, "@"); moved && current == nil {
		// The tag moved (auto-update) and the old container is no rollback
		// target: replaced as for a changed spec, by a container named by
		// the new digest's revision.
		reason := "image " + t.Spec.Image + " moved to " + d
		if w := await(name, id, t, f.peers); w != nil {
			return w
		}
		return append(removals, newContainer(name, id, t, now, reason)...)
	}
	ensure := ensureRunning(name, id, t, current, f, now)
	if len(ensure) > 0 && ensure[0].Op == OpCreate {
		if w := await(name, id, t, f.peers); w != nil {
			// Nothing is created, nothing of the old spec removed.
			return w
		}
	}
	for i := range ensure {
		if ensure[i].Op == OpCreate {
			ensure[i].Diff = diff
		}
	}

	if t.Spec.UpdateStrategy == desired.UpdateStartFirst && (current == nil || current.Proven.IsZero()) {
		// The old containers stay until the new one runs; stopped ones go
		// at once, they serve nothing.
		if current != nil && current.Status == observed.Running {
			return append(ensure, removals...)
		}
		var out []Action
		for _, c := range old {
			if !isLive(c.Status) {
				out = append(out, remove(c, "spec changed (hash "+c.SpecHash+" -> "+hash+")")...)
			}
		}
		return append(out, ensure...)
	}
	if len(ensure) == 1 && ensure[0].Op == OpBlocked {
		// The new container cannot be made: the old one stays.
		return ensure
	}
	return append(removals, ensure...)
}

// desiredContainer returns the ID of the container that runs t (named
// name, spec hash) as it is desired now, the key a rollback of it refuses,
// and that container among have (nil when it does not exist yet).
//
// That is the container of the spec hash (observed.ContainerID), unless
// the task follows its tag (imagePullPolicy Always) and the tag moved to
// digest d (pulled): then the task's containers of that spec run another
// digest, and the desired one is observed.RevisionID(name, hash, d),
// refused as "hash@d". Without a re-pull to go by (a restarted reconciler),
// the newest container of the spec is taken.
func desiredContainer(name, hash string, t *desired.Task, have []observed.Container, pulled map[string]string) (id, key string, current *observed.Container) {
	id, key = observed.ContainerID(name, hash), hash
	var mine []*observed.Container
	for i := range have {
		if have[i].SpecHash == hash {
			mine = append(mine, &have[i])
		}
	}
	d := ""
	if t.Spec.ImagePullPolicy == desired.PullAlways {
		d = pulled[t.Spec.Image]
	}
	if d == "" {
		for _, c := range mine {
			if current == nil || bornAt(*c).After(bornAt(*current)) {
				current = c
			}
		}
	} else {
		for _, c := range mine {
			if c.ImageDigest == d || c.ImageDigest == "" {
				current = c
			}
		}
		if current == nil && len(mine) > 0 {
			return observed.RevisionID(name, hash, d), hash + "@" + d, nil
		}
	}
	if current != nil {
		id = current.ID
		if current.Revision != "" {
			key = hash + "@" + current.ImageDigest
		}
	}
	return id, key, current
}

// await holds the creation of t's container id while a task it depends on
// does not meet its condition; nil when none holds it.
func await(name, id string, t *desired.Task, peers map[string]observed.Peer) []Action {
	var unmet []string
	for _, d := range t.Spec.DependsOn {
		p, known := peers[d.Task]
		switch {
		case !known:
			unmet = append(unmet, d.Task+" to be "+string(d.Condition)+" (no such task yet)")
		case !p.Meets(d.Condition):
			unmet = append(unmet, d.Task+" to be "+string(d.Condition))
		}
	}
	if len(unmet) == 0 {
		return nil
	}
	return []Action{{Op: OpAwait, Task: name, ContainerID: id, Reason: "waiting for " + strings.Join(unmet, ", ")}}
}

// restartsWhenUnhealthy reports whether an unhealthy verdict stops t's
// container: not with onUnhealthy: none (a readiness check: the verdict
// only gates rollouts and dependsOn, and shows).
func restartsWhenUnhealthy(t *desired.Task) bool {
	return t == nil || t.Spec.HealthCheck == nil || t.Spec.HealthCheck.OnUnhealthy != desired.OnUnhealthyNone
}

// ensureRunning plans what makes the container id of t run (or stay exited,
// as its restart policy says).
func ensureRunning(name, id string, t *desired.Task, current *observed.Container, f facts, now time.Time) []Action {
	if current == nil {
		if reason, ok := f.foreign[id]; ok {
			return []Action{{Op: OpBlocked, Task: name, ContainerID: id,
				Reason: "container id taken by an unmanaged container (" + reason + "); remove it to let the task run"}}
		}
		return newContainer(name, id, t, now, "not present")
	}
	switch current.Status {
	case observed.Running, observed.Paused:
		if why, ok := f.unhealthy[id]; ok && current.Status == observed.Running && restartsWhenUnhealthy(t) {
			// As a liveness failure: stopped as for a delete, its exit a
			// failure; the restart policy and the backoff decide the rest.
			return []Action{{Op: OpStop, Task: name, ContainerID: id, Reason: "unhealthy: " + why,
				StopSignal: current.StopSig, StopGrace: current.StopGrace,
				Labels: map[string]string{observed.LabelUnhealthy: why}}}
		}
		return nil
	case observed.Stopped:
		if current.HeldFor != "" {
			// Stopped by a rollout that is no longer wanted (the manifest
			// went back to this spec): not an exit, started at once.
			return []Action{resume(*current, "the manifest went back to this spec", now)}
		}
		return restart(name, id, t, current, now)
	default: // created but never started, no task, unknown
		return []Action{{Op: OpStart, Task: name, ContainerID: id, Reason: "task " + string(current.Status),
			Labels: observed.StartLabels(now, current.Restarts, current.Streak)}}
	}
}

// newContainer creates and starts container id of t.
func newContainer(name, id string, t *desired.Task, now time.Time, reason string) []Action {
	labels := observed.StartLabels(now, 0, 0)
	labels[observed.LabelCreatedAt] = observed.TimeLabel(now)
	if plain := observed.ContainerID(name, t.Hash()); id != plain {
		labels[observed.LabelRevision] = strings.TrimPrefix(id, plain+"-")
	}
	return []Action{
		{Op: OpCreate, Task: name, ContainerID: id, Desired: t, Reason: reason, Labels: labels},
		{Op: OpStart, Task: name, ContainerID: id, Reason: "new container"},
	}
}

// restart applies the restart policy and the crash backoff to an exited task.
func restart(name, id string, t *desired.Task, c *observed.Container, now time.Time) []Action {
	// A task stopped for failing its health check failed, whatever its
	// exit code.
	failed := c.ExitCode != 0 || c.Unhealthy != ""
	switch t.Spec.RestartPolicy {
	case desired.RestartNever:
		return nil
	case desired.RestartOnFailure:
		if !failed {
			return nil
		}
	}
	due, streak := NextRestart(t.Spec, *c)
	reason := exitReason(*c)
	if now.Before(due) {
		return []Action{{Op: OpWait, Task: name, ContainerID: id, NotBefore: due,
			Reason: fmt.Sprintf("%s; back-off %s before restart %d", reason, due.Sub(now).Round(time.Millisecond), c.Restarts+1)}}
	}
	labels := observed.StartLabels(now, c.Restarts+1, streak+1)
	if c.Unhealthy != "" {
		labels[observed.LabelUnhealthy] = "" // removed: the new run is not
	}
	return []Action{{Op: OpStart, Task: name, ContainerID: id, Reason: reason + "; restart " + fmt.Sprint(c.Restarts+1),
		Labels: labels, Restart: true}}
}

// exitReason says why an exited container stopped.
func exitReason(c observed.Container) string {
	if c.Unhealthy != "" {
		return "unhealthy: " + c.Unhealthy
	}
	return fmt.Sprintf("exited with code %d", c.ExitCode)
}

// NextRestart returns when the exited container c may be restarted, and the
// crash streak that delay was computed from: initial, doubled for each restart
// in the streak, capped at max; a task that ran at least resetAfter before it
// exited starts a new streak.
func NextRestart(s desired.Spec, c observed.Container) (due time.Time, streak int) {
	initial, maxDelay, resetAfter := s.Backoff()
	streak = c.Streak
	if !c.StartedAt.IsZero() && !c.ExitedAt.IsZero() && c.ExitedAt.Sub(c.StartedAt) >= resetAfter {
		streak = 0
	}
	delay := initial
	for i := 0; i < streak && delay < maxDelay; i++ {
		delay *= 2
	}
	delay = min(delay, maxDelay)
	return c.ExitedAt.Add(delay), streak
}

func isLive(s observed.Status) bool {
	return s == observed.Running || s == observed.Paused || s == observed.Unknown || s == observed.Created
}

func remove(c observed.Container, reason string) []Action {
	var out []Action
	if isLive(c.Status) {
		out = append(out, Action{Op: OpStop, Task: c.Task, ContainerID: c.ID, Reason: reason,
			StopSignal: c.StopSig, StopGrace: c.StopGrace})
	}
	return append(out, Action{Op: OpDelete, Task: c.Task, ContainerID: c.ID, Reason: reason})
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// Changes reports whether actions change anything (waits, awaits, blocks,
// rollouts under way and refused changes do not).
func Changes(actions []Action) bool {
	for _, a := range actions {
		if !a.Op.note() {
			return true
		}
	}
	return false
}

// note reports whether op changes nothing: it says what the task waits for.
func (op Op) note() bool {
	switch op {
	case OpWait, OpBlocked, OpAwait, OpRollout, OpRefused:
		return true
	}
	return false
}

// Describe renders actions one per line, for `reconciler plan` and logs.
func Describe(actions []Action) string {
	if len(actions) == 0 {
		return "nothing to do\n"
	}
	var b strings.Builder
	for _, a := range actions {
		fmt.Fprintf(&b, "%-7s %-24s %-40s %s\n", a.Op, a.Task, a.ContainerID, a.Reason)
		if a.Op == OpCreate {
			for _, d := range a.Diff {
				fmt.Fprintf(&b, "        %s\n", d)
			}
			if a.Desired != nil {
				fmt.Fprintf(&b, "        health check: %s\n", HealthPlan(a.Desired))
			}
		}
	}
	return b.String()
}
