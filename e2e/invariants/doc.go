// Package invariants checks, against a real containerd, the claims the
// reconciler makes to its users: nothing running is lost, nothing is
// duplicated, nothing leaks, whatever happens to the reconciler, containerd
// or the files (DESIGN invariants 1 to 4 and 8).
//
// It is a test helper for the e2e and chaos suites. It reads containerd
// directly with the containerd client (never through pkg/runtime, whose
// bugs it is meant to catch), the manifests directory (parsed with
// desired.NewLoader, as the daemon parses it) and the reconciler's state
// directory. Check reports every violation it finds, not only the first.
//
// It must never change anything: it only lists and reads.
package invariants
