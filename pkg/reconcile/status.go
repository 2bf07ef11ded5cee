package reconcile

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/warren/reconciler/pkg/desired"
	"github.com/warren/reconciler/pkg/health"
	"github.com/warren/reconciler/pkg/observed"
)

// Phase is where a task is in its life.
type Phase string

// Phases of a task.
const (
	PhasePending          Phase = "Pending"          // desired, nothing created yet
	PhasePulling          Phase = "Pulling"          // its image is being pulled or imported
	PhaseCreating         Phase = "Creating"         // image made available, container being created
	PhaseRunning          Phase = "Running"          // its process runs
	PhaseStopping         Phase = "Stopping"         // being stopped (replacement or removal)
	PhaseRestarting       Phase = "Restarting"       // exited, being started again
	PhaseCrashLoopBackOff Phase = "CrashLoopBackOff" // exited, restart held back until NextRetry
	PhaseCompleted        Phase = "Completed"        // exited 0 and its policy does not restart it
	PhaseFailed           Phase = "Failed"           // exited non-zero and not restarted, or refused for good
	PhaseInvalid          Phase = "Invalid"          // its manifest file is broken; the last good spec is kept
	PhaseBlocked          Phase = "Blocked"          // its container ID is taken by an unmanaged container
	PhaseError            Phase = "Error"            // the last action failed; retried with backoff
	PhaseWaiting          Phase = "Waiting"          // its start waits for the tasks it depends on
)

// TaskStatus is what the controller knows of one task. It is rebuilt from
// containerd (labels, task state) after a restart of the reconciler.
type TaskStatus struct {
	Name        string    `json:"name"`
	Phase       Phase     `json:"phase"`
	Message     string    `json:"message,omitempty"`
	Restarts    int       `json:"restarts"`
	ContainerID string    `json:"containerID,omitempty"`
	Image       string    `json:"image,omitempty"`
	ImageDigest string    `json:"imageDigest,omitempty"`
	StartedAt   time.Time `json:"startedAt,omitzero"`
	FinishedAt  time.Time `json:"finishedAt,omitzero"`
	ExitCode    *int      `json:"exitCode,omitempty"`
	Source      string    `json:"source,omitempty"`
	// Revision is the git commit the desired spec was read from, with the
	// git source; "" with a manifests directory.
	Revision string `json:"revision,omitempty"`
	SpecHash string `json:"specHash,omitempty"`
	// IP and Ports are a bridge task's address and published ports
	// ("127.0.0.1:8080->80/TCP").
	IP             string    `json:"ip,omitempty"`
	Ports          string    `json:"ports,omitempty"`
	NextRetry      time.Time `json:"nextRetry,omitzero"`
	LastTransition time.Time `json:"lastTransition,omitzero"`
	// Health is what the health check of its running container found;
	// zero when it has none or does not run.
	Health HealthStatus `json:"health,omitzero"`
	// Rollout is the rollout under way, zero when none is.
	Rollout RolloutStatus `json:"rollout,omitzero"`
	// RolledBack is the condition of a task whose desired spec failed to
	// prove itself: the last good container runs (ContainerID), that spec
	// (SpecHash) is not tried again until the manifest changes.
	RolledBack RollbackStatus `json:"rolledBack,omitzero"`
	// Pod is the Kubernetes Pod this task is a container of (the task is
	// named POD-CONTAINER), "" for a Task. It comes from the desired spec;
	// a task no longer desired keeps the pod of its last status (its
	// containers do not carry it), until a restart of the daemon.
	Pod string `json:"pod,omitempty"`
	// InitContainer is set on the task of a pod's init container: one that
	// another task of the pod waits for to complete (see desired's pod
	// mapping: each init container waits for the one before it, every
	// container for the last one).
	InitContainer bool `json:"initContainer,omitempty"`
	// podAfter is the task of the same pod this one waits for to complete
	// (an init container), from which the board derives InitContainer.
	podAfter string
	// undesired is set on the status of a task no longer desired.
	undesired bool
}

// RolloutStatus is a rollout under way: the new container (the status's
// ContainerID) proving itself while the last good one is kept.
type RolloutStatus struct {
	From     string    `json:"from"`     // the last good container, kept until the new one proves itself
	Since    time.Time `json:"since"`    // when the new container was created
	Deadline time.Time `json:"deadline"` // when it is rolled back if it has not proved itself
	Waiting  string    `json:"waiting"`  // what it still has to show
}

// RollbackStatus is a change that was rolled back.
type RollbackStatus struct {
	RefusedHash string    `json:"refusedHash"` // the spec hash not tried again
	Reason      string    `json:"reason"`      // why it failed, e.g. "exited with code 1, 3 times in 40s"
	At          time.Time `json:"at"`
}

// same reports whether two statuses say the same, the time of the last
// transition and InitContainer (derived by the board when read) aside.
func (st TaskStatus) same(o TaskStatus) bool {
	a, b := st, o
	a.LastTransition, b.LastTransition = time.Time{}, time.Time{}
	a.InitContainer, b.InitContainer = false, false
	if (a.ExitCode == nil) != (b.ExitCode == nil) || (a.ExitCode != nil && *a.ExitCode != *b.ExitCode) {
		return false
	}
	a.ExitCode, b.ExitCode = nil, nil
	return a == b
}

// statusBoard holds every task's status and tells watchers when one changes.
type statusBoard struct {
	mu      sync.Mutex
	tasks   map[string]TaskStatus
	changed chan struct{} // closed and replaced at each change
}

func newStatusBoard() *statusBoard {
	return &statusBoard{tasks: map[string]TaskStatus{}, changed: make(chan struct{})}
}

// set records st; it returns the previous status and whether the phase changed.
func (b *statusBoard) set(st TaskStatus, now time.Time) (prev TaskStatus, transition bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	old, ok := b.tasks[st.Name]
	transition = !ok || old.Phase != st.Phase
	if transition {
		st.LastTransition = now
	} else {
		st.LastTransition = old.LastTransition
	}
	if st.undesired && st.Pod == "" && ok {
		// Only the desired spec names the pod: a task being removed
		// stays under the pod it was of.
		st.Pod, st.podAfter = old.Pod, old.podAfter
	}
	if ok && old.same(st) {
		return old, false
	}
	b.tasks[st.Name] = st
	close(b.changed)
	b.changed = make(chan struct{})
	return old, transition
}

func (b *statusBoard) get(name string) (TaskStatus, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st, ok := b.tasks[name]
	if ok && st.Pod != "" {
		for _, o := range b.tasks {
			if o.Pod == st.Pod && o.podAfter == name {
				st.InitContainer = true
				break
			}
		}
	}
	return st, ok
}

func (b *statusBoard) remove(name string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.tasks[name]; !ok {
		return false
	}
	delete(b.tasks, name)
	close(b.changed)
	b.changed = make(chan struct{})
	return true
}

func (b *statusBoard) list() []TaskStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]TaskStatus, 0, len(b.tasks))
	awaited := map[[2]string]bool{} // pod, task: an init container
	for _, st := range b.tasks {
		if st.podAfter != "" {
			awaited[[2]string{st.Pod, st.podAfter}] = true
		}
	}
	for _, st := range b.tasks {
		st.InitContainer = st.Pod != "" && awaited[[2]string{st.Pod, st.Name}]
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (b *statusBoard) watch() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.changed
}

// statusInput is what a task's status is derived from, besides the
// worker's progress: the task as desired (nil when it is not) and its spec
// hash, its containers, the plan for it, and the broken manifest files.
type statusInput struct {
	name    string
	task    *desired.Task
	hash    string
	have    []observed.Container
	actions []Action
	broken  map[string]error
	health  *health.Status // the probes' verdict on its current container; nil when not probed
}

// progress is what only the worker knows of a task: the action under way,
// or why the last one stopped.
type progress struct {
	doing   *Action // the action being applied
	pulling bool    // doing is a create that fetches its image first
	err     error   // the last sync failed; it is retried with backoff
	refused error   // the node refused the spec for good
}

// taskStatus is the one place a task's phase comes from. From what runs:
// Pending (nothing created, or created and not started), Running,
// Completed (exited 0), Failed (exited non-zero, or stopped for failing its
// health check), with the health of a running one. From the plan:
// CrashLoopBackOff (a restart held back), Blocked (its ID taken by an
// unmanaged container), Waiting (its start waits for the tasks it depends
// on), Stopping (no longer desired). From the manifests:
// Invalid (its file is broken; the last good spec is kept), over all of
// those. From the worker, over everything: the action under way (Pulling
// or Creating for a create, Restarting for the start of an exited task,
// Creating for the first start of a new container, Stopping), Error (the
// last action failed) and Failed (refused for good).
func taskStatus(in statusInput, p progress) TaskStatus {
	st := TaskStatus{Name: in.name, Phase: PhasePending}
	t := in.task
	var id string
	if t != nil {
		id = observed.ContainerID(in.name, in.hash)
		st.Image, st.Source, st.Revision, st.SpecHash, st.ContainerID = t.Spec.Image, t.Source, t.Revision, in.hash, id
		st.Message = "waiting to be created"
		st.Ports = publishedPorts(t.Spec.Ports)
		st.Pod, st.podAfter = t.Spec.Pod, podAfter(t)
	}
	var c *observed.Container
	if t != nil {
		c = Serving(in.name, in.hash, in.have)
	} else if len(in.have) > 0 {
		c = &in.have[0]
	}
	if c != nil {
		st.ContainerID, st.Restarts, st.ImageDigest, st.StartedAt, st.IP = c.ID, c.Restarts, c.ImageDigest, c.StartedAt, c.IP
		if st.Source == "" {
			st.Source, st.SpecHash = c.Source, c.SpecHash
		}
		switch c.Status {
		case observed.Running, observed.Paused:
			st.Phase, st.Message = PhaseRunning, "running"
			if h := in.health; h != nil && h.ContainerID == c.ID {
				st.Health = HealthStatus{State: h.State, Check: h.Check, Source: h.Source}
				if h.State == health.Unhealthy {
					st.Message = "running, unhealthy: " + h.Reason
				}
			}
		case observed.Stopped:
			code := int(c.ExitCode)
			st.ExitCode, st.FinishedAt = &code, c.ExitedAt
			if c.Unhealthy != "" {
				st.Phase, st.Message = PhaseFailed, "unhealthy: "+c.Unhealthy+" (exited with code "+strconv.Itoa(code)+")"
			} else if code == 0 {
				st.Phase, st.Message = PhaseCompleted, "exited with code 0"
			} else {
				st.Phase, st.Message = PhaseFailed, "exited with code "+strconv.Itoa(code)
			}
		default:
			st.Phase, st.Message = PhasePending, "container created, task "+string(c.Status)
		}
	}
	for _, a := range in.actions {
		switch a.Op {
		case OpWait:
			st.Phase, st.Message, st.NextRetry = PhaseCrashLoopBackOff, a.Reason, a.NotBefore
		case OpBlocked:
			st.Phase, st.Message = PhaseBlocked, a.Reason
		case OpAwait:
			st.Phase, st.Message = PhaseWaiting, a.Reason
		case OpRollout:
			st.Rollout = RolloutStatus{From: a.From, Since: a.Since, Waiting: a.Reason}
			if t != nil {
				st.Rollout.Deadline = a.Since.Add(t.Spec.Deadline())
			}
		}
	}
	if c != nil && c.RolledBack != nil && t != nil && refuses(c.RolledBack.Hash, in.hash) {
		rb := c.RolledBack
		st.RolledBack = RollbackStatus{RefusedHash: rb.Hash, Reason: rb.Reason, At: rb.At}
		st.Message += "; the change to spec " + rb.Hash + " was rolled back: " + rb.Reason
	}
	if t == nil {
		st.Phase, st.Message, st.undesired = PhaseStopping, "no longer desired", true
	}
	if err, ok := in.broken[st.Source]; ok && st.Source != "" {
		st.Phase, st.Message = PhaseInvalid, "manifest invalid, last good spec kept ("+st.Message+"): "+firstLine(err.Error())
	}
	switch {
	case p.refused != nil:
		st.Phase, st.Message = PhaseFailed, p.refused.Error()
	case p.err != nil:
		st.Phase, st.Message = PhaseError, p.err.Error()
	case p.doing != nil:
		a := p.doing
		switch a.Op {
		case OpCreate:
			if p.pulling && a.Desired != nil {
				st.Phase, st.Message = PhasePulling, "pulling "+a.Desired.Spec.Image+" for container "+a.ContainerID
			} else {
				st.Phase, st.Message = PhaseCreating, "creating container "+a.ContainerID
			}
		case OpStart:
			switch st.Phase {
			case PhaseCompleted, PhaseFailed, PhaseCrashLoopBackOff:
				st.Phase, st.Message = PhaseRestarting, a.Reason
			case PhasePending:
				st.Phase, st.Message = PhaseCreating, "creating container "+a.ContainerID
			}
		case OpStop:
			st.Phase, st.Message = PhaseStopping, "stopping "+a.ContainerID+": "+a.Reason
		}
	}
	return st
}

// podAfter is the task of t's pod that t waits for to complete: the init
// container before it, "" for a task of no pod or the first task to run.
func podAfter(t *desired.Task) string {
	if t.Spec.Pod == "" {
		return ""
	}
	for _, d := range t.Spec.DependsOn {
		if d.Condition == desired.DependCompleted && strings.HasPrefix(d.Task, t.Spec.Pod+"-") {
			return d.Task
		}
	}
	return ""
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " (and more)"
	}
	return s
}

// ManifestStatus is what the controller knows of the manifests directory
// itself: why it cannot be used (nothing is applied or deleted meanwhile,
// every task is kept as it is), and the files that are broken (their tasks
// keep their last valid spec).
type ManifestStatus struct {
	Error  string            `json:"error,omitempty"`
	Broken map[string]string `json:"broken,omitempty"` // file -> its errors
}

// Manifests returns the state of the manifests directory as of the last
// SetDesired.
func (c *Controller) Manifests() ManifestStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	var m ManifestStatus
	if c.want.Err != nil {
		m.Error = c.want.Err.Error()
	}
	for file, err := range c.want.Broken {
		if m.Broken == nil {
			m.Broken = map[string]string{}
		}
		m.Broken[file] = err.Error()
	}
	return m
}

// publishedPorts says where a bridge task's ports are published:
// "127.0.0.1:8080->80/TCP", "8443->443/TCP" (every address).
func publishedPorts(ports []desired.Port) string {
	var out []string
	for _, p := range ports {
		if p.HostPort == 0 {
			continue
		}
		host := strconv.Itoa(p.HostPort)
		if p.HostIP != "" {
			host = net.JoinHostPort(p.HostIP, host)
		}
		proto := p.Protocol
		if proto == "" {
			proto = desired.ProtocolTCP
		}
		out = append(out, fmt.Sprintf("%s->%d/%s", host, p.ContainerPort, proto))
	}
	return strings.Join(out, ", ")
}
