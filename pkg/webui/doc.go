// Package webui is the node's own web page: a read-only view of what the
// daemon already knows, served at / of its local API. The list shows every
// task (grouped by Kubernetes Pod) with its phase, health, restarts, age,
// image, and CPU and memory as sparklines of the last minutes, then the
// broken manifest files, the unmanaged containers and the applied git
// commit; a task's page shows its status, the reason of its last
// transition or rollback, its spec as applied and its log. Both stay live
// through server-sent events, and both read as plain HTML without
// JavaScript.
//
// The page is built from small interfaces that cmd/reconciler implements
// over the daemon's state (StatusSource, SpecSource, LogReader,
// UsageSource): one render per change serves every viewer, a viewer costs
// the node no call of its own, the number of live viewers is bounded and a
// slow one is dropped, never waited for.
//
// It must never act on the node: it answers GET and HEAD only (405
// otherwise) and has no form, button or route that changes anything. It
// never reaches containerd directly: it imports neither containerd nor
// pkg/runtime (a test checks). It never makes a browser send a request off
// the device: its templates, style sheet and script are embedded in the
// binary and name no other host (a test scans them), and every answer
// carries a Content-Security-Policy of default-src 'self' with no inline
// script or style.
package webui
