// Package reconcile decides and acts: Plan compares the desired state (the
// manifests) with the observed state (containerd) and returns the actions that
// make them equal; the Controller around it runs a keyed work queue whose
// workers re-read both states for one task, plan, and apply the actions through
// a small Runtime interface.
//
// Plan is pure: no context, no I/O, no clock other than the one passed in.
// The controller is level-triggered (DESIGN invariant 7): file events, exits,
// re-pulls and the periodic resync only enqueue task names; a worker always
// reads fresh state.
//
// A task name's way through one sync, one way: the queue (queue.go) hands
// it to work (worker.go), which calls sync; sync reads the desired state
// (desiredFor) and containerd (observed.Observe), tells the health monitor
// what to probe and takes its verdict and the dependencies' states
// (health.go), plans (Plan, plan.go),
// derives the status (taskStatus, status.go, the only writer of phases) and
// applies the actions (prepare, apply); it returns a result, and work alone
// turns that into queue calls (Forget, Add, AddAfter, AddRateLimited: the
// per-key retry backoff lives in the queue).
//
// The health monitor (pkg/health) only reports: a health change queues the
// task and its dependents, and the plan alone decides to stop an unhealthy
// container or hold a start for its dependencies.
//
// This package must never import containerd, and never act on a container it
// does not own (observed.State.Unmanaged is only ever reported). It must never
// delete anything when the desired state is unknown (the manifests directory is
// missing or unreadable) or when the task's source file is present but broken
// (DESIGN invariant 4: last known good).
package reconcile
