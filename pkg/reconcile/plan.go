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

// Operations, in the order they are applied for one task.
const (
	OpStop   Op = "stop"   // signal, grace period, SIGKILL
	OpDelete Op = "delete" // task, container, snapshot
	OpCreate Op = "create" // container with a new snapshot (image made available first)
	OpStart  Op = "start"  // a new task in an existing container

	// OpBlocked changes nothing: the task's container ID is held by a
	// container the reconciler does not own. Applying it fails, so the task
	// is retried with backoff until the operator removes that container.
	OpBlocked Op = "blocked"
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
}

func (a Action) String() string {
	return fmt.Sprintf("%s %s %s: %s", a.Op, a.Task, a.ContainerID, a.Reason)
}

// Plan returns the actions that make have equal to want, ordered by task name
// and, within a task, stop-first: the old container goes before the new one
// comes (safe with host networking, where both would want the same port).
//
// Plan is pure. now is the time decisions are made at (restart backoff will use it).
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
		t, ok := want.Tasks[name]
		var tp *desired.Task
		if ok {
			tp = &t
		}
		actions = append(actions, planTask(name, tp, byTask[name], want, foreign, now)...)
	}
	return actions
}

// planTask plans one task. t is nil when the task is not desired.
func planTask(name string, t *desired.Task, have []observed.Container, want desired.State, foreign map[string]string, now time.Time) []Action {
	var actions []Action
	if t == nil {
		if want.Err != nil {
			// The directory could not be read: whether this task is still
			// wanted is unknown, and unknown never means "delete".
			return nil
		}
		for _, c := range have {
			if _, ok := want.Broken[c.Source]; ok {
				// Its file is there but does not parse: last known good, keep it.
				continue
			}
			actions = append(actions, remove(c, fmt.Sprintf("no longer desired (source %s)", sourceOrUnknown(c.Source)))...)
		}
		return actions
	}

	id := observed.ContainerID(name, t.Hash())
	var current *observed.Container
	for i, c := range have {
		if c.ID == id {
			current = &have[i]
			continue
		}
		actions = append(actions, remove(c, "spec changed (hash "+c.SpecHash+" -> "+t.Hash()+")")...)
	}
	switch {
	case current == nil && foreign[id] != "":
		actions = append(actions, Action{Op: OpBlocked, Task: name, ContainerID: id,
			Reason: "container id taken by an unmanaged container (" + foreign[id] + "); remove it to let the task run"})
	case current == nil:
		actions = append(actions,
			Action{Op: OpCreate, Task: name, ContainerID: id, Desired: t, Reason: "not present"},
			Action{Op: OpStart, Task: name, ContainerID: id, Reason: "new container"})
	case current.Status == observed.Running || current.Status == observed.Paused:
		// Nothing to do.
	case current.Status == observed.Stopped:
		actions = append(actions, Action{Op: OpStart, Task: name, ContainerID: id,
			Reason: fmt.Sprintf("exited with code %d", current.ExitCode)})
	default:
		actions = append(actions, Action{Op: OpStart, Task: name, ContainerID: id,
			Reason: "task " + string(current.Status)})
	}
	return actions
}

func remove(c observed.Container, reason string) []Action {
	var out []Action
	if c.Status == observed.Running || c.Status == observed.Paused || c.Status == observed.Unknown || c.Status == observed.Created {
		out = append(out, Action{Op: OpStop, Task: c.Task, ContainerID: c.ID, Reason: reason,
			StopSignal: c.StopSig, StopGrace: c.StopGrace})
	}
	return append(out, Action{Op: OpDelete, Task: c.Task, ContainerID: c.ID, Reason: reason})
}

func sourceOrUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// Describe renders actions one per line, for `reconciler plan` and logs.
func Describe(actions []Action) string {
	if len(actions) == 0 {
		return "nothing to do\n"
	}
	var b strings.Builder
	for _, a := range actions {
		fmt.Fprintf(&b, "%-6s %-24s %-40s %s\n", a.Op, a.Task, a.ContainerID, a.Reason)
	}
	return b.String()
}
