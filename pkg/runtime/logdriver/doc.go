// Package logdriver is the entry point of a task's log driver: the program
// a containerd shim starts for the binary:// log URI that pkg/runtime sets
// on every task (the writer itself is pkg/runtime/logfile).
//
// It runs in two programs. The first is the standalone driver
// (./standalone), which `make build` compiles and embeds in the reconciler
// binary, and which the daemon writes into its state directory at start:
// it is ready soonest, and costs the least CPU and memory (figures in
// docs/benchmarks.md). The second is the reconciler
// binary itself, when it was built without the standalone driver (a plain
// `go build`) or cannot run it: cmd/reconciler imports this package for its
// init function, which recognises a shim's call by [logfile.DriverMarker]
// among the arguments, runs the driver and exits. Go initialises packages
// in the order of their import paths, each once its imports are: this
// package needs only the standard library and pkg/runtime/logfile, so it
// runs before most of the packages that only the daemon needs (gRPC, the
// containerd client and its API registrations, net/http, Prometheus); a
// test in cmd/reconciler reads Go's init trace to check that it stays so.
// That mode is still slower to be ready and costs more CPU (the packages
// whose paths sort before ours initialise first), which the standalone
// driver saves on every container start (docs/benchmarks.md).
//
// This package must never import anything beyond the standard library and
// pkg/runtime/logfile: each import's initialisation is paid before every
// container start, and each import's size in every standalone driver.
package logdriver
