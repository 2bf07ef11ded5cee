package reconcile

import (
	"time"

	"github.com/warren/reconciler/pkg/desired"
	"github.com/warren/reconciler/pkg/health"
	"github.com/warren/reconciler/pkg/observed"
)

// HealthStatus is a task's health, for the status: what the probes of its
// running container found, and the check they run.
type HealthStatus struct {
	State     health.State `json:"state"`                // starting, healthy or unhealthy
	Check     string       `json:"check"`                // e.g. `http :8080/healthz every 10s (timeout 2s, 3 retries; from the manifest)`
	Source    string       `json:"source"`               // manifest or image
	Streak    int          `json:"failingStreak"`        // failed probes in a row
	LastProbe time.Time    `json:"lastProbe,omitzero"`   // zero before the first probe
	Output    string       `json:"lastOutput,omitempty"` // of the last probe: the end of its output, the HTTP status, or the error
}

// checkOf returns the health check of task t's container c: the
// manifest's (none when it says disabled), else the image's; false when
// there is none.
func checkOf(t *desired.Task, c *observed.Container) (health.Check, bool) {
	if t == nil {
		return health.Check{}, false
	}
	if t.Spec.HealthCheck != nil {
		return health.FromSpec(t.Spec.HealthCheck, health.SourceManifest)
	}
	if c != nil && c.ImageHealth != nil {
		return health.FromSpec(c.ImageHealth, health.SourceImage)
	}
	return health.Check{}, false
}

// ownTask returns t as container c was created from it: t itself when c
// is of t's spec (hash), else t with c's recorded spec (the last good
// container of a rolled-back change runs its own spec, health check
// included).
func ownTask(t *desired.Task, hash string, c *observed.Container) *desired.Task {
	if t == nil || c == nil || c.SpecHash == hash {
		return t
	}
	s := specOf(c)
	if s == nil {
		return t
	}
	own := *t
	own.Spec = *s
	return &own
}

// current returns the container of id among have, nil when there is none.
func current(have []observed.Container, id string) *observed.Container {
	for i := range have {
		if have[i].ID == id {
			return &have[i]
		}
	}
	return nil
}

// watchHealth tells the monitor what to probe for task name: its current
// container while it runs and has a check, nothing otherwise. It returns
// the monitor's verdict on that container, nil when it is not probed.
func (c *Controller) watchHealth(name string, t *desired.Task, hash string, have []observed.Container) *health.Status {
	var target *health.Target
	if t != nil {
		cur := Serving(name, hash, have)
		if check, ok := checkOf(ownTask(t, hash, cur), cur); ok && cur != nil && cur.Status == observed.Running {
			started := cur.StartedAt
			if started.IsZero() {
				started = cur.CreatedAt
			}
			target = &health.Target{Task: name, ContainerID: cur.ID, Check: check, StartedAt: started,
				Pid: cur.Pid, Network: t.Spec.Network, IP: cur.IP}
		}
	}
	c.health.Set(name, target)
	if target == nil {
		return nil
	}
	return c.healthOf(name, target.ContainerID)
}

// healthOf returns the monitor's verdict on container id of task name,
// nil when it does not probe that container.
func (c *Controller) healthOf(name, id string) *health.Status {
	st, ok := c.health.Status(name)
	if !ok || st.ContainerID != id {
		return nil
	}
	return &st
}

// healthy returns the plan's input for a verdict: the container whose
// check has passed.
func healthy(h *health.Status) map[string]bool {
	if h == nil || h.State != health.Healthy {
		return nil
	}
	return map[string]bool{h.ContainerID: true}
}

// unhealthy returns the plan's input for a verdict: the container to stop
// and why.
func unhealthy(h *health.Status) map[string]string {
	if h == nil || h.State != health.Unhealthy {
		return nil
	}
	return map[string]string{h.ContainerID: h.Reason}
}

// peers returns what the tasks t depends on are doing now, from their
// statuses.
func (c *Controller) peers(t *desired.Task) map[string]observed.Peer {
	if t == nil || len(t.Spec.DependsOn) == 0 {
		return nil
	}
	out := make(map[string]observed.Peer, len(t.Spec.DependsOn))
	for _, d := range t.Spec.DependsOn {
		st, ok := c.status.get(d.Task)
		if !ok {
			continue
		}
		if h := c.healthOf(d.Task, st.ContainerID); h != nil {
			st.Health.State = h.State
		}
		out[d.Task] = peerOf(st)
	}
	return out
}

// PeerOf is what a task's status says to the tasks that depend on it.
func PeerOf(st TaskStatus) observed.Peer { return peerOf(st) }

// PeersOf is what the containers say of each task to the tasks that
// depend on it, for a plan made without the daemon (reconciler plan with
// no daemon answering): a task with a health check is never taken as
// healthy, nothing having probed it.
func PeersOf(want desired.State, have observed.State) map[string]observed.Peer {
	out := map[string]observed.Peer{}
	for name, t := range want.Tasks {
		c := current(have.ForTask(name), observed.ContainerID(name, want.Hash(name)))
		if c == nil {
			out[name] = observed.Peer{} // a task, not started yet
			continue
		}
		_, checked := checkOf(&t, c)
		var p observed.Peer
		switch c.Status {
		case observed.Running, observed.Paused:
			p.Running, p.Healthy = true, !checked
		case observed.Stopped:
			p.Completed = c.ExitCode == 0 && c.Unhealthy == "" && t.Spec.RestartPolicy != desired.RestartAlways
		}
		out[name] = p
	}
	return out
}

// HealthPlan says which health check a new container of t gets, for the
// plan: the manifest's, none, or the image's if it has one.
func HealthPlan(t *desired.Task) string {
	switch h := t.Spec.HealthCheck; {
	case h == nil:
		return "the image's HEALTHCHECK, if it has one"
	case h.Disabled:
		return "none (disabled)"
	}
	c, _ := health.FromSpec(t.Spec.HealthCheck, health.SourceManifest)
	return c.String()
}

// peerOf is what a task's status says to the tasks that depend on it.
func peerOf(st TaskStatus) observed.Peer {
	running := st.Phase == PhaseRunning
	return observed.Peer{
		Running:   running,
		Healthy:   running && (st.Health.State == "" || st.Health.State == health.Healthy),
		Completed: st.Phase == PhaseCompleted,
	}
}

// queueDependents queues the tasks that depend on task name: its status
// changed, which may let them start.
func (c *Controller) queueDependents(name string) {
	c.mu.Lock()
	var deps []string
	for other, t := range c.want.Tasks {
		for _, d := range t.Spec.DependsOn {
			if d.Task == name {
				deps = append(deps, other)
			}
		}
	}
	c.mu.Unlock()
	for _, d := range deps {
		c.q.Add(d)
	}
}
