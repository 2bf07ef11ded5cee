// Command bench measures the reconciler against the floor: the bare
// containerd client creating and starting the same containers (same image,
// same command) at the same concurrency, on the same containerd, in the same
// run. It prints one row per measure (figure, floor, ratio or difference,
// target, met) and writes the same as JSON with -json.
//
// It needs root, containerd and runc, like the e2e tests. It builds the
// reconciler and the test image, starts a private containerd in a short
// temporary directory (runtime.StartManaged), and drives the reconciler
// binary as a subprocess. Everything it concludes comes from containerd
// (its events, or a counting proxy on its socket) and /proc, never from the
// reconciler's own status.
//
//	make bench          # the full run, several minutes
//	make bench-smoke    # tiny N, seconds (part of make test)
//
// docs/benchmarks.md shows a run and how to read it.
package main
