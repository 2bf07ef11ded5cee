// Package health probes the running tasks that have a health check: an
// exec probe in the task's container (through the Execer the runtime
// gives it), an http or tcp probe from the reconciler to the task's port
// (the host's loopback for network: host, inside the task's network
// namespace otherwise). It keeps each task's health (starting, healthy,
// unhealthy, the failing streak, the last probe's time and output) and
// tells the controller when it changes.
//
// Probes are spread in time (the first one at a random point of the first
// second, or of the interval if shorter; each next one an interval later,
// give or take a tenth), run one at a time per task, and at most a few exec
// probes at once on the node. Failures within startPeriod of the
// container's start do not count until a probe succeeds once; retries
// failures in a row make the task unhealthy, and probing of that container
// ends there.
//
// It must never stop, restart or change a container itself (the controller
// decides, through the plan), never import containerd, and never let a
// probe outlive its timeout.
package health
