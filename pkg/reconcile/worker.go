package reconcile

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/warren/reconciler/pkg/desired"
	"github.com/warren/reconciler/pkg/observed"
)

// result is what one sync asks of the queue; the zero result is "done".
type result struct {
	err   error         // failed: retry with the key's backoff
	again bool          // acted: look again at once, with fresh state
	after time.Duration // look again after this long (a held-back restart)
}

// work takes one key from the queue, syncs it, and turns the result into
// queue calls: the only place that does so for a worked key.
func (c *Controller) work(ctx context.Context) bool {
	key, ok := c.q.Get()
	if !ok {
		return false
	}
	defer c.q.Done(key)
	if ctx.Err() != nil {
		return false
	}
	var res result
	if key == resyncKey {
		res = c.resync(ctx)
	} else {
		began := c.cfg.Clock.Now()
		res = c.sync(ctx, key)
		c.cfg.Metrics.observeSync(c.cfg.Clock.Now().Sub(began))
		c.firstPassDone(key)
	}
	switch {
	case res.err != nil:
		if ctx.Err() == nil {
			delay := c.q.AddRateLimited(key)
			c.cfg.Log.Error(res.err, "sync failed, will retry", "task", key, "retryIn", delay)
		}
	case res.again:
		c.q.Forget(key)
		c.q.Add(key)
	case res.after > 0:
		c.q.Forget(key)
		c.q.AddAfter(key, res.after)
	default:
		c.q.Forget(key)
	}
	return true
}

// sync re-reads both states for one task, plans, writes its status and
// applies the plan.
func (c *Controller) sync(ctx context.Context, name string) result {
	want, t, hash, refused := c.desiredFor(name)
	have, err := observed.Observe(ctx, c.rt, name)
	if err != nil {
		return result{err: err}
	}
	have.Pulled = c.pulled.snapshot()
	verdict := c.watchHealth(name, t, hash, have.Containers)
	have.Unhealthy, have.Healthy, have.Peers = unhealthy(verdict), healthy(verdict), c.peers(t)
	now := c.cfg.Clock.Now()
	actions := Plan(want, have, now)
	in := statusInput{name: name, task: t, hash: hash, have: have.Containers, actions: actions, broken: want.Broken, health: verdict}

	switch {
	case t == nil && len(have.Containers) == 0:
		c.forget(name)
		c.queueDependents(name)
		return result{}
	case t != nil && refused.err != nil && refused.hash == hash:
		// Refused for good (node policy): nothing changes until the spec does.
		c.setStatus(taskStatus(in, progress{refused: refused.err}))
		return result{}
	case !Changes(actions):
		c.settled(name)
		c.setStatus(taskStatus(in, progress{}))
		return waiting(actions, now)
	}
	c.cfg.Log.V(1).Info("reconciled", "task", name, "actions", len(actions), "containers", len(have.Containers))
	c.acted(name, now)
	if err := c.prepare(ctx, actions, in); err != nil {
		return c.failed(in, fmt.Errorf("the new spec cannot be applied, the running container is kept: %w", err))
	}
	for _, a := range actions {
		began := c.cfg.Clock.Now()
		err := c.apply(ctx, a, in)
		c.cfg.Metrics.observeAction(a.Op, c.cfg.Clock.Now().Sub(began), err)
		if err != nil {
			return c.failed(in, err)
		}
		if a.Restart {
			c.cfg.Metrics.restarted()
		}
		if a.Rollout != "" {
			c.rolloutStep(a)
		}
	}
	// Look again with fresh state: the status then says what is, and a
	// task that died at once meets its restart policy.
	return result{again: true}
}

// waiting is the result of a plan that changes nothing: a task whose ID is
// blocked is retried with backoff; a held-back restart is looked at when due.
func waiting(actions []Action, now time.Time) result {
	var res result
	for _, a := range actions {
		switch a.Op {
		case OpBlocked:
			return result{err: errors.New(a.Reason)}
		case OpWait, OpRollout:
			if a.NotBefore.IsZero() {
				continue
			}
			after := max(a.NotBefore.Sub(now), time.Nanosecond)
			if res.after == 0 || after < res.after {
				res.after = after
			}
		}
	}
	return res
}

// desiredFor returns the desired state as it bears on task name: the task
// alone (nil when not desired) with its spec hash, the broken files and the
// directory's error, and what the node refused of it.
func (c *Controller) desiredFor(name string) (want desired.State, t *desired.Task, hash string, refused refusal) {
	c.mu.Lock()
	defer c.mu.Unlock()
	want = c.want.Only(name)
	if task, ok := want.Tasks[name]; ok {
		t, hash = &task, want.Hash(name)
	}
	return want, t, hash, c.refused[name]
}

// forget drops what the controller keeps of a task that is gone from both
// sides.
func (c *Controller) forget(name string) {
	c.mu.Lock()
	delete(c.refused, name)
	delete(c.changedAt, name)
	c.mu.Unlock()
	c.health.Forget(name)
	if c.status.remove(name) {
		c.cfg.Log.Info("task removed", "task", name)
	}
}

// settled ends the wait of a task that a desired change queued and that
// needed no action.
func (c *Controller) settled(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.changedAt, name)
}

// acted ends the wait of a task that a desired change queued with its first
// action, and records how long the change waited for it.
func (c *Controller) acted(name string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if at, ok := c.changedAt[name]; ok {
		delete(c.changedAt, name)
		c.cfg.Metrics.observeEventToAction(now.Sub(at))
	}
}

// failed records why the actions for a task stopped: a permanent error (the
// node policy) marks the spec refused until it changes and is not retried;
// any other is retried with backoff.
func (c *Controller) failed(in statusInput, err error) result {
	var p interface{ Permanent() bool }
	if in.task != nil && errors.As(err, &p) && p.Permanent() {
		c.mu.Lock()
		c.refused[in.name] = refusal{hash: in.hash, err: err}
		c.mu.Unlock()
		c.setStatus(taskStatus(in, progress{refused: err}))
		return result{}
	}
	c.setStatus(taskStatus(in, progress{err: err}))
	return result{err: err}
}

// setStatus records st and logs a phase transition once; a change of
// phase or health queues the tasks that depend on it.
func (c *Controller) setStatus(st TaskStatus) {
	prev, transition := c.status.set(st, c.cfg.Clock.Now())
	if transition {
		c.cfg.Log.Info("task phase changed", "task", st.Name, "from", string(prev.Phase), "to", string(st.Phase), "message", st.Message)
	}
	if transition || prev.Health.State != st.Health.State {
		c.queueDependents(st.Name)
	}
}

// fetches reports whether creating t's container fetches its image first
// (it is not on the node yet, or its pull policy is Always), when the
// runtime can tell.
func (c *Controller) fetches(ctx context.Context, t *desired.Task) bool {
	if c.cfg.Images == nil {
		return false
	}
	has, err := c.cfg.Images.HasImage(ctx, t.Spec.Image)
	return err == nil && (!has || t.Spec.ImagePullPolicy == desired.PullAlways)
}

// prepare runs the Preparer, when there is one, before actions that stop or
// delete a container of the task and then create its new one: the old
// container goes only once the new one can be created.
func (c *Controller) prepare(ctx context.Context, actions []Action, in statusInput) error {
	if c.cfg.Preparer == nil {
		return nil
	}
	destructive := false
	for i, a := range actions {
		switch a.Op {
		case OpStop, OpDelete:
			destructive = true
		case OpCreate:
			if !destructive || a.Desired == nil {
				return nil
			}
			if c.fetches(ctx, a.Desired) {
				c.setStatus(taskStatus(in, progress{doing: &actions[i], pulling: true}))
			}
			pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), actionTimeout)
			defer cancel()
			return c.cfg.Preparer.Prepare(pctx, *a.Desired)
		}
	}
	return nil
}

// actionTimeout bounds an action that shutdown does not interrupt.
const actionTimeout = 5 * time.Minute

// apply carries out one action, showing it on the task's status first.
func (c *Controller) apply(ctx context.Context, a Action, in statusInput) error {
	log := c.cfg.Log.WithValues("task", a.Task, "container", a.ContainerID, "reason", a.Reason)
	if a.Op != OpStop {
		// Create, start and delete are short and must not be cut in half by
		// shutdown (a start cancelled after the process began would look
		// failed). A stop can wait out a long grace period: shutdown
		// interrupts it, and the next start of the reconciler resumes it.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), actionTimeout)
		defer cancel()
	}
	p := progress{doing: &a}
	if a.Op == OpCreate {
		p.pulling = c.fetches(ctx, a.Desired)
	}
	if a.Op != OpDelete { // a delete follows a stop: the phase stays Stopping
		c.setStatus(taskStatus(in, p))
	}
	switch a.Op {
	case OpCreate:
		t := a.Desired
		log.Info("creating container", "image", t.Spec.Image)
		labels := observed.Labels(t.Metadata.Name, specHashOf(a), t.Source, t.Spec.StopSig(), t.Spec.StopGrace())
		maps.Copy(labels, a.Labels)
		return c.rt.Create(ctx, a.ContainerID, *t, labels)
	case OpStart:
		log.Info("starting task")
		if err := c.rt.SetLabels(ctx, a.ContainerID, a.Labels); err != nil {
			return err
		}
		if err := c.rt.Start(ctx, a.ContainerID); err != nil || !a.Proving {
			return err
		}
		return c.rt.SetLabels(ctx, a.ContainerID, map[string]string{observed.LabelStartedAt: observed.TimeLabel(c.cfg.Clock.Now())})
	case OpStop:
		log.Info("stopping container", "signal", a.StopSignal, "grace", a.StopGrace)
		if err := c.rt.SetLabels(ctx, a.ContainerID, a.Labels); err != nil {
			return err
		}
		return c.rt.Stop(ctx, a.ContainerID, a.StopSignal, a.StopGrace)
	case OpDelete:
		log.Info("deleting container")
		return c.rt.Delete(ctx, a.ContainerID)
	case OpMark:
		log.V(1).Info("labelling container", "labels", a.Labels)
		return c.rt.SetLabels(ctx, a.ContainerID, a.Labels)
	case OpBlocked:
		return errors.New(a.Reason)
	case OpWait, OpAwait, OpRollout, OpRefused:
		return nil
	}
	return fmt.Errorf("unknown action %q", a.Op)
}

// rolloutStep logs and counts a rollout's step once it is applied.
func (c *Controller) rolloutStep(a Action) {
	took := c.cfg.Clock.Now().Sub(a.Since)
	switch a.Rollout {
	case rolloutStarted:
		c.cfg.Log.Info("rollout started", "task", a.Task, "from", a.From, "to", a.ContainerID)
	case rolloutSucceeded:
		c.cfg.Log.Info("rollout succeeded", "task", a.Task, "from", a.From, "to", a.ContainerID, "took", took, "reason", a.Reason)
		c.cfg.Metrics.rolledOut(a.Task, a.Rollout, took)
	case rolloutRolledBack:
		c.cfg.Log.Info("rollout rolled back", "task", a.Task, "to", a.From, "reason", a.Reason, "took", took)
		c.cfg.Metrics.rolledOut(a.Task, a.Rollout, took)
	}
}

// specHashOf is the spec hash in the ID of an action's container
// (observed.ContainerID).
func specHashOf(a Action) string {
	id := strings.TrimPrefix(a.ContainerID, a.Task+"-")
	if rev := a.Labels[observed.LabelRevision]; rev != "" {
		id = strings.TrimSuffix(id, "-"+rev)
	}
	return id
}
