// Package clock is the daemon's time: every timer of the controller and the
// watcher comes from one Clock, the real one in production and a Fake that
// tests step by hand (no test sleeps to wait for a backoff, a debounce or a
// resync).
//
// It must never import anything of the module: every package may use it.
package clock
