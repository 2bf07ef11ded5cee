package main

// Kubernetes Pods on the command line. A pod POD runs as one task per
// container, POD-CONTAINER; the daemon's status names the pod of each task
// (TaskStatus.Pod) and marks its init containers (InitContainer). The
// commands that take a task name take a pod's name too: status shows its
// tasks, wait waits for all of them, logs reads one (-c CONTAINER). A task
// of the name given wins over a pod of that name.

import (
	"fmt"
	"slices"
	"strings"

	"github.com/warren/reconciler/pkg/reconcile"
)

// podView is a pod as the daemon's status shows it.
type podView struct {
	name       string
	init       []reconcile.TaskStatus // its init containers' tasks, by name
	containers []reconcile.TaskStatus // its containers' tasks, by name
}

// podOf returns the pod called name among tasks; false when no task is of
// it.
func podOf(tasks []reconcile.TaskStatus, name string) (podView, bool) {
	p := podView{name: name}
	for _, st := range tasks {
		switch {
		case st.Pod != name || name == "":
		case st.InitContainer:
			p.init = append(p.init, st)
		default:
			p.containers = append(p.containers, st)
		}
	}
	byName := func(a, b reconcile.TaskStatus) int { return strings.Compare(a.Name, b.Name) }
	slices.SortFunc(p.init, byName)
	slices.SortFunc(p.containers, byName)
	return p, len(p.init)+len(p.containers) > 0
}

// tasks returns the pod's tasks, init containers first (they run first).
func (p podView) tasks() []reconcile.TaskStatus {
	return append(slices.Clone(p.init), p.containers...)
}

// task returns the task of the pod's container (or init container) c.
func (p podView) task(c string) (reconcile.TaskStatus, bool) {
	for _, st := range p.tasks() {
		if st.Name == p.name+"-"+c {
			return st, true
		}
	}
	return reconcile.TaskStatus{}, false
}

// containerName is the name of the container that task runs in pod.
func containerName(pod, task string) string { return strings.TrimPrefix(task, pod+"-") }

// choices lists the pod's containers as kubectl does: "[a b]", and the
// init containers after them.
func (p podView) choices() string {
	names := func(sts []reconcile.TaskStatus) string {
		out := make([]string, len(sts))
		for i, st := range sts {
			out[i] = containerName(p.name, st.Name)
		}
		return "[" + strings.Join(out, " ") + "]"
	}
	s := names(p.containers)
	if len(p.init) > 0 {
		s += " or one of the init containers: " + names(p.init)
	}
	return s
}

// podColumn is the POD of the status table: the pod, "(init)" after an
// init container's; "-" for a task of no pod.
func podColumn(st reconcile.TaskStatus) string {
	switch {
	case st.Pod == "":
		return "-"
	case st.InitContainer:
		return st.Pod + " (init)"
	}
	return st.Pod
}

// anyPod reports whether a task of tasks is a pod's.
func anyPod(tasks []reconcile.TaskStatus) bool {
	return slices.ContainsFunc(tasks, func(st reconcile.TaskStatus) bool { return st.Pod != "" })
}

// podStatusOutput is `status POD -o json|yaml`.
type podStatusOutput struct {
	Pod   string                 `json:"pod"`
	Tasks []reconcile.TaskStatus `json:"tasks"` // init containers first, each by name
}

// podWait is what `wait POD` found of a pod in one look: whether each of
// its tasks met the condition (an init container: completed), what is
// still missing, and a reason it never will.
type podWait struct {
	met    bool
	done   string // the tasks as they met it, for the line printed
	last   string // the tasks that did not meet it yet, for a timeout
	failed string // why it never will: a container's change was rolled back
}

// checkPod judges pod p against the condition cond of wait --for=forCond.
func checkPod(p podView, forCond string, cond func(reconcile.TaskStatus, bool) bool) podWait {
	var w podWait
	var done, missing []string
	for _, st := range p.tasks() {
		want, ok := forCond, cond(st, true)
		if st.InitContainer && forCond != "deleted" {
			// An init container runs to completion, whatever the pod
			// is waited for.
			want, ok = "completed", waitConditions["completed"](st, true)
		}
		if rb := st.RolledBack; !st.InitContainer && rb.RefusedHash != "" && (forCond == "running" || forCond == "healthy") && w.failed == "" {
			w.failed = rolledBackLine(st)
		}
		if ok {
			done = append(done, st.Name+" "+want)
			continue
		}
		missing = append(missing, fmt.Sprintf("%s: %s (%s)", st.Name, st.Phase, oneLine(st.Message)))
	}
	w.met = len(missing) == 0
	w.done = "pod: " + strings.Join(done, ", ")
	w.last = strings.Join(missing, "; ")
	return w
}
