package reconcile

import (
	"context"

	"github.com/warren/reconciler/pkg/health"
	"github.com/warren/reconciler/pkg/observed"
)

// resyncKey is the queue key of a full pass: list everything once, queue
// every task seen on either side.
const resyncKey = "\x00resync"

// resync lists the whole namespace once and queues every task on either
// side that is not in sync or whose status would change.
func (c *Controller) resync(ctx context.Context) result {
	began := c.cfg.Clock.Now()
	have, err := observed.Observe(ctx, c.rt, "")
	if err != nil {
		return result{err: err}
	}
	have.Pulled = c.pulled.snapshot()
	if c.cfg.Collector != nil {
		if err := c.cfg.Collector.Collect(ctx); err != nil {
			c.cfg.Log.Error(err, "remove what interrupted operations left behind; trying again at the next resync")
		}
	}
	running := 0
	for _, ct := range have.Containers {
		if ct.Status == observed.Running {
			running++
		}
	}
	took := c.cfg.Clock.Now().Sub(began)
	c.cfg.Metrics.observeResync(took, running, len(have.Containers), len(have.Unmanaged))
	c.cfg.Log.V(1).Info("resync listed the node", "containers", len(have.Containers), "running", running, "unmanaged", len(have.Unmanaged), "took", took)
	c.reportUnmanaged(have.Unmanaged)

	// Plan every task from this one listing. A task in sync whose status is
	// already what this listing says is left alone; any other task is
	// queued, and its worker lists it again, fresh, before acting or writing
	// its status (this pass never writes a status: its listing may be older
	// than a worker's). So a pass over a node in sync costs one listing,
	// whatever the number of tasks.
	c.mu.Lock()
	want := c.want
	c.mu.Unlock()
	now := c.cfg.Clock.Now()
	have.Unhealthy, have.Healthy, have.Peers = map[string]string{}, map[string]bool{}, map[string]observed.Peer{}
	// The board holds each task's health state; the monitor's verdict
	// (with why) is read only for the unhealthy ones.
	for _, st := range c.status.list() {
		have.Peers[st.Name] = peerOf(st)
		if st.Health.State == health.Healthy {
			have.Healthy[st.ContainerID] = true
		}
		if st.Health.State != health.Unhealthy {
			continue
		}
		if h := c.healthOf(st.Name, st.ContainerID); h != nil && h.State == health.Unhealthy {
			have.Unhealthy[h.ContainerID] = h.Reason
		}
	}
	byTask := map[string][]Action{}
	for _, a := range Plan(want, have, now) {
		byTask[a.Task] = append(byTask[a.Task], a)
	}
	keys := map[string]bool{}
	for name := range want.Tasks {
		keys[name] = true
	}
	for _, ct := range have.Containers {
		keys[ct.Task] = true
	}
	var queue []string
	for name := range keys {
		// A task waiting out its retry backoff after a failed sync is left
		// to its timer: the resync must not turn the backoff into a retry
		// every period (a registry down, with many tasks, would get a pull
		// storm). A desired change or an exit still queues it at once.
		if c.q.Retrying(name, now) {
			continue
		}
		t, ok := want.Tasks[name]
		if acts(byTask[name]) || !ok {
			queue = append(queue, name)
			continue
		}
		hash := want.Hash(name)
		mine := have.ForTask(name)
		var health *health.Status
		if s := Serving(name, hash, mine); s != nil {
			health = c.healthOf(name, s.ID)
		}
		in := statusInput{name: name, task: &t, hash: hash, have: mine, broken: want.Broken,
			actions: byTask[name], health: health}
		if cur, known := c.status.get(name); !known || !cur.same(taskStatus(in, progress{})) {
			queue = append(queue, name)
		}
	}
	// A task in retry backoff has been worked once already, so the first
	// pass need not wait for it.
	c.mu.Lock()
	if c.firstPass == nil {
		c.firstPass = make(map[string]bool, len(queue))
		for _, k := range queue {
			c.firstPass[k] = true
		}
		c.maybeReadyLocked()
	}
	c.mu.Unlock()
	for _, k := range queue {
		c.q.Add(k)
	}
	return result{}
}

// firstPassDone notes that key was worked once: the first pass waits for
// every key its resync queued.
func (c *Controller) firstPassDone(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.firstPass != nil {
		delete(c.firstPass, key)
		c.maybeReadyLocked()
	}
}

func (c *Controller) maybeReadyLocked() {
	if len(c.firstPass) == 0 {
		c.readyOnce.Do(func() { close(c.ready) })
	}
}

func (c *Controller) reportUnmanaged(list []observed.Unmanaged) {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := make(map[string]string, len(list))
	for _, u := range list {
		seen[u.ID] = u.Reason
		if c.unmanaged[u.ID] != u.Reason {
			c.cfg.Log.Info("leaving unmanaged container alone", "container", u.ID, "reason", u.Reason)
		}
	}
	c.unmanaged = seen
}

// acts reports whether a task's plan asks for its worker: anything but a
// rollout under way (its worker has set a timer for it) and a refused
// change (nothing to do until the manifest changes).
func acts(actions []Action) bool {
	for _, a := range actions {
		if a.Op != OpRollout && a.Op != OpRefused {
			return true
		}
	}
	return false
}
