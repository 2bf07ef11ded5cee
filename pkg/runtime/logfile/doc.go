// Package logfile writes and reads the rotated log files of task output.
//
// The writer side runs inside the containerd shim's log driver (the
// reconciler binary started through a binary:// log URI), so output keeps
// flowing to disk while the reconciler itself is stopped. The reader side is
// `reconciler logs`, which needs neither containerd nor the daemon.
//
// Layout: DIR/ID.log is the current file, DIR/ID.log.1 the one before it, up
// to DIR/ID.log.(MaxFiles-1). Every line is one record, as the Kubernetes CRI
// writes them:
//
//	2025-01-02T15:04:05.123456789Z stdout F the line's content
//
// F ends a line; P is a part of a line longer than the record limit, to be
// joined with the records after it. No record is longer than the size limit,
// so no file ever grows past it.
//
// This package must never import containerd: the log driver and the reader
// start fast and do nothing but file I/O.
package logfile
