package reconcile

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/warren/reconciler/pkg/desired"
	"github.com/warren/reconciler/pkg/observed"
)

// A rollout replaces a task's last good container with the container of
// its changed spec, and keeps the good one until the new one has proved
// itself (see the README's "Safe updates"). Everything it knows is on the
// containers' labels, so a reconciler killed at any moment resumes it:
//
//   - the last good container carries io.warren.proven (set when the
//     rollout begins, if the running container had not been marked yet);
//   - stop-first stops it and marks it io.warren.held-for=NEWHASH: stopped,
//     not deleted; start-first leaves it running;
//   - the new container carries io.warren.created-at: its deadline counts
//     from there;
//   - proved: the new container is marked proven, then the old one goes;
//   - failed: the old one is marked io.warren.rolled-back={hash, reason,
//     at}, the new one goes, the old one runs again. That hash is not tried
//     again while the manifest asks for it.

// Rollout results, for the metrics and the logs.
const (
	rolloutStarted    = "started"
	rolloutSucceeded  = "succeeded"
	rolloutRolledBack = "rolled_back"
)

// rolloutFailures is how many failed exits of the new container fail its
// rollout (fewer if its restart policy does not restart it): a new
// container may be restarted by its policy while it proves itself, but a
// crash loop rolls back without waiting out the deadline.
const rolloutFailures = 3

// verdict is what a new container has shown so far.
type verdict int

const (
	pending verdict = iota
	proven
	failedProof
)

// lastGood returns the container among old (the task's containers of other
// specs) that a rollout keeps: the one marked proven last, or, before a
// rollout begins (cur is nil), the running container that would prove
// itself now (running minReady since its last start, not unhealthy).
// Containers made before these labels existed are so taken as good.
func lastGood(old []observed.Container, cur *observed.Container, t *desired.Task, f facts, now time.Time) *observed.Container {
	var good *observed.Container
	for i, c := range old {
		if !c.Proven.IsZero() && (good == nil || c.Proven.After(good.Proven)) {
			good = &old[i]
		}
	}
	if good != nil || cur != nil {
		return good
	}
	for i, c := range old {
		_, sick := f.unhealthy[c.ID]
		if c.Status == observed.Running && !sick && c.Unhealthy == "" && !c.StartedAt.IsZero() &&
			!now.Before(c.StartedAt.Add(t.Spec.MinReadyTime())) && (good == nil || c.StartedAt.After(good.StartedAt)) {
			good = &old[i]
		}
	}
	return good
}

// refusedBy returns the container among have that a rollback to it refused
// hash for, nil when none did.
func refusedBy(have []observed.Container, hash string) *observed.Container {
	for i, c := range have {
		if c.RolledBack != nil && c.RolledBack.Hash == hash && !c.Proven.IsZero() {
			return &have[i]
		}
	}
	return nil
}

// Serving returns the container of task name that serves it: the last good
// one when the desired spec (hash), or an image its tag moved to, was
// rolled back; else the newest container of that spec (the one a rollout
// of a moved tag is proving); nil when there is none. Its health is what
// is probed, its state what the status shows.
func Serving(name, hash string, have []observed.Container) *observed.Container {
	var newest *observed.Container
	for i, c := range have {
		if c.RolledBack != nil && !c.Proven.IsZero() && refuses(c.RolledBack.Hash, hash) {
			return &have[i]
		}
		if c.SpecHash == hash && (newest == nil || bornAt(c).After(bornAt(*newest))) {
			newest = &have[i]
		}
	}
	return newest
}

// refuses reports whether a rollback of key (a spec hash, or "hash@digest"
// for a moved tag) refuses spec hash.
func refuses(key, hash string) bool {
	return key == hash || strings.HasPrefix(key, hash+"@")
}

// keepGood plans a task whose desired spec was rolled back to good: every
// other container goes, good runs (its restart policy and health as
// usual), and a note says why.
func keepGood(name string, t *desired.Task, good *observed.Container, have []observed.Container, f facts, now time.Time) []Action {
	rb := good.RolledBack
	var actions []Action
	for _, c := range have {
		if c.ID != good.ID {
			actions = append(actions, remove(c, "rolled back to "+good.ID+": "+rb.Reason)...)
		}
	}
	if good.HeldFor != "" && good.Status != observed.Running && good.Status != observed.Paused {
		actions = append(actions, resume(*good, "rolled back: "+rb.Reason, now))
	} else {
		actions = append(actions, ensureRunning(name, good.ID, t, good, f, now)...)
	}
	return append(actions, Action{Op: OpRefused, Task: name, ContainerID: good.ID,
		Reason: fmt.Sprintf("the change to spec %s was rolled back at %s (%s); %s runs until the manifest changes",
			rb.Hash, rb.At.UTC().Format(time.RFC3339), rb.Reason, good.ID)})
}

// resume starts the last good container again after a rollout stopped it.
func resume(good observed.Container, reason string, now time.Time) Action {
	labels := observed.StartLabels(now, good.Restarts, good.Streak)
	labels[observed.LabelHeldFor], labels[observed.LabelHeldAt] = "", "" // removed
	return Action{Op: OpStart, Task: good.Task, ContainerID: good.ID, Reason: reason, Labels: labels}
}

// beginRollout plans the first steps of a rollout from good to the new
// container id: the other old containers go; stop-first stops good (kept,
// held for the new spec); the new container is created and started. good
// is marked proven first if it was not.
func beginRollout(name, id, hash string, t *desired.Task, good *observed.Container, others []observed.Container, diff []string, digest string, now time.Time) []Action {
	var actions []Action
	for _, c := range others {
		actions = append(actions, remove(c, "spec changed (hash "+c.SpecHash+" -> "+hash+")")...)
	}
	labels := map[string]string{}
	if good.Proven.IsZero() {
		labels[observed.LabelProven] = observed.TimeLabel(now)
	}
	keep := fmt.Sprintf("spec changed (hash %s -> %s); kept until the new container proves itself", good.SpecHash, hash)
	if spec, d, moved := strings.Cut(hash, "@"); moved && spec == good.SpecHash {
		keep = fmt.Sprintf("image %s moved to %s; kept until the new container proves itself", t.Spec.Image, d)
	}
	if t.Spec.UpdateStrategy != desired.UpdateStartFirst && good.HeldFor != hash {
		labels[observed.LabelHeldFor], labels[observed.LabelHeldAt] = hash, observed.TimeLabel(now)
	}
	switch {
	case t.Spec.UpdateStrategy != desired.UpdateStartFirst && isLive(good.Status):
		actions = append(actions, Action{Op: OpStop, Task: name, ContainerID: good.ID, Reason: keep,
			StopSignal: good.StopSig, StopGrace: good.StopGrace, Labels: labels, Diff: diff})
	case len(labels) > 0:
		actions = append(actions, Action{Op: OpMark, Task: name, ContainerID: good.ID, Reason: keep, Labels: labels})
	}
	create := newContainer(name, id, t, now, "rollout from "+good.ID)
	create[0].Diff = diff
	if create[0].Labels[observed.LabelRevision] != "" {
		// The tag moved: the new container runs beside the old one of the
		// same spec, under the new digest's revision.
		create[0].Reason = "image " + t.Spec.Image + " moved to " + digest + "; rollout from " + good.ID
	}
	create[0].Rollout, create[0].From, create[0].Since = rolloutStarted, good.ID, now
	create[1].Proving = true
	return append(actions, create...)
}

// heldTooLong plans the rollback of a stop-first rollout whose new
// container could not be created and started within the deadline (its
// creates fail, its image cannot be had): the kept container runs again,
// the change is refused. nil while there is time left.
func heldTooLong(name, hash string, t *desired.Task, good *observed.Container, others []observed.Container, now time.Time) []Action {
	if good.HeldFor != hash || good.HeldAt.IsZero() || now.Before(good.HeldAt.Add(t.Spec.Deadline())) {
		return nil
	}
	why := fmt.Sprintf("no new container created and started within %s", t.Spec.Deadline())
	var actions []Action
	for _, c := range others {
		actions = append(actions, remove(c, "rolled back: "+why)...)
	}
	rb := observed.Rollback{Hash: hash, Reason: why, At: now}
	actions = append(actions, Action{Op: OpMark, Task: name, ContainerID: good.ID, Reason: "rolling back: " + why,
		Labels: map[string]string{observed.LabelRolledBack: observed.RollbackLabel(rb)}, Rollout: rolloutRolledBack,
		From: good.ID, Since: good.HeldAt})
	if good.Status != observed.Running && good.Status != observed.Paused {
		actions = append(actions, resume(*good, "rolled back: "+why, now))
	}
	return actions
}

// continueRollout plans a rollout under way: the new container cur has
// proved itself (it is marked, good goes), failed (good is marked with the
// refused change, cur goes, good runs again) or is still proving itself
// (its restart policy applies; the task is looked at again when the proof
// or the deadline is due).
func continueRollout(name, hash string, t *desired.Task, cur, good *observed.Container, others []observed.Container, f facts, now time.Time) []Action {
	var actions []Action
	for _, c := range others {
		actions = append(actions, remove(c, "spec changed (hash "+c.SpecHash+" -> "+hash+")")...)
	}
	since := bornAt(*cur)
	v, why, next := judge(t, cur, f, now)
	switch v {
	case proven:
		mark := Action{Op: OpMark, Task: name, ContainerID: cur.ID, Reason: "proved itself: " + why,
			Labels:  map[string]string{observed.LabelProven: observed.TimeLabel(now)},
			Rollout: rolloutSucceeded, From: good.ID, Since: since}
		actions = append(actions, mark)
		return append(actions, remove(*good, "replaced by "+cur.ID+", which proved itself")...)
	case failedProof:
		rb := observed.Rollback{Hash: hash, Reason: why, At: now}
		mark := Action{Op: OpMark, Task: name, ContainerID: good.ID, Reason: "rolling back from " + cur.ID + ": " + why,
			Labels:  map[string]string{observed.LabelRolledBack: observed.RollbackLabel(rb)},
			Rollout: rolloutRolledBack, From: good.ID, Since: since}
		actions = append(append(actions, mark), remove(*cur, "rolled back: "+why)...)
		if good.Status != observed.Running && good.Status != observed.Paused {
			actions = append(actions, resume(*good, "rolled back: "+why, now))
		}
		return actions
	}
	if t.Spec.UpdateStrategy != desired.UpdateStartFirst && isLive(good.Status) {
		// A stop cut short (the reconciler killed mid-stop): finish it.
		labels := map[string]string{observed.LabelHeldFor: hash}
		if good.HeldFor != hash {
			labels[observed.LabelHeldAt] = observed.TimeLabel(now)
		}
		actions = append(actions, Action{Op: OpStop, Task: name, ContainerID: good.ID,
			Reason:     fmt.Sprintf("spec changed (hash %s -> %s); kept until the new container proves itself", good.SpecHash, hash),
			StopSignal: good.StopSig, StopGrace: good.StopGrace, Labels: labels})
	}
	noUnhealthy := f
	noUnhealthy.unhealthy = nil // judged above: an unhealthy new container fails its rollout
	ensure := ensureRunning(name, cur.ID, t, cur, noUnhealthy, now)
	for i := range ensure {
		ensure[i].Proving = ensure[i].Op == OpStart
	}
	actions = append(actions, ensure...)
	return append(actions, Action{Op: OpRollout, Task: name, ContainerID: cur.ID, NotBefore: next,
		Reason: why, From: good.ID, Since: since})
}

// bornAt is when c was created, by the reconciler's clock when it said.
func bornAt(c observed.Container) time.Time {
	if !c.Created.IsZero() {
		return c.Created
	}
	return c.CreatedAt
}

// judge says what the new container c of t has shown: proven (running
// minReady since its last start and, with a health check, healthy; or, for
// a task whose policy leaves exit 0 alone, completed), failed (exited
// rolloutFailures times or once with no restart to come, turned
// unhealthy, or missed its deadline), or pending, with what it still has to
// show and when to look again.
func judge(t *desired.Task, c *observed.Container, f facts, now time.Time) (v verdict, why string, next time.Time) {
	minReady, deadline := t.Spec.MinReadyTime(), t.Spec.Deadline()
	born := bornAt(*c)
	due := born.Add(deadline)
	_, checked := checkOf(t, c)
	healthy := !checked || f.healthy[c.ID]
	switch c.Status {
	case observed.Stopped:
		failed := c.ExitCode != 0 || c.Unhealthy != ""
		if !failed && (t.Spec.RestartPolicy == desired.RestartOnFailure || t.Spec.RestartPolicy == desired.RestartNever) {
			return proven, "completed (exited with code 0)", time.Time{}
		}
		if c.Unhealthy != "" {
			return failedProof, "unhealthy: " + c.Unhealthy, time.Time{}
		}
		n := c.Restarts + 1
		if n >= rolloutFailures || t.Spec.RestartPolicy == desired.RestartNever {
			return failedProof, fmt.Sprintf("exited with code %d, %s in %s", c.ExitCode, times(n), c.ExitedAt.Sub(born).Round(time.Second)), time.Time{}
		}
	case observed.Running, observed.Paused:
		if sick, ok := f.unhealthy[c.ID]; ok {
			return failedProof, "unhealthy: " + sick, time.Time{}
		}
		ready := c.StartedAt.Add(minReady)
		if !c.StartedAt.IsZero() && !now.Before(ready) && healthy {
			how := fmt.Sprintf("ran %s without a restart", minReady)
			if checked {
				how += " and passed its health check"
			}
			return proven, how, time.Time{}
		}
		if now.Before(due) {
			next = due
			if ready.After(now) && ready.Before(due) {
				next = ready
			}
			what := fmt.Sprintf("to run %s without a restart", minReady)
			if checked {
				what += " and pass its health check"
			}
			return pending, fmt.Sprintf("new container %s proving itself: it has until %s %s", c.ID, due.UTC().Format(time.RFC3339), what), next
		}
	}
	if !now.Before(due) {
		if checked && !healthy {
			return failedProof, fmt.Sprintf("not healthy within %s", deadline), time.Time{}
		}
		return failedProof, fmt.Sprintf("did not run %s without a restart within %s", minReady, deadline), time.Time{}
	}
	return pending, fmt.Sprintf("new container %s proving itself: it has until %s to run %s without a restart", c.ID, due.UTC().Format(time.RFC3339), minReady), due
}

func times(n int) string {
	if n == 1 {
		return "once"
	}
	return fmt.Sprintf("%d times", n)
}

// specOf returns the spec container c was created from, as it recorded it;
// nil when it did not, or it does not decode.
func specOf(c *observed.Container) *desired.Spec {
	if c == nil || c.Spec == nil {
		return nil
	}
	var s desired.Spec
	if err := json.Unmarshal(c.Spec, &s); err != nil {
		return nil
	}
	return &s
}
