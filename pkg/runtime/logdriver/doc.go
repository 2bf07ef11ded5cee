// Package logdriver is the entry point of the reconciler binary when a
// containerd shim starts it as a task's log driver (the binary:// log URI
// that pkg/runtime sets on every task; the writer itself is
// pkg/runtime/logfile).
//
// cmd/reconciler imports it for its init function, which recognises such a
// call by [logfile.DriverMarker] among the arguments, runs the driver and
// exits. Go initialises a package once its imports are, so this runs before
// the packages that only the daemon needs (the containerd client, gRPC,
// protobuf registrations, Prometheus) have run their own init functions:
// the shim, which waits for the driver to be ready before it starts the
// container, waits about 1.5 ms instead of the 7 ms those take, and each
// task's driver stays small in memory (no heap built for the daemon).
//
// This package must never import anything beyond the standard library and
// pkg/runtime/logfile: each import's initialisation is paid before every
// container start.
package logdriver
