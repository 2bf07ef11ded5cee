package testenv

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestOptions are how StartTest runs the daemon.
type TestOptions struct {
	Options
	// Tail is how many of the last lines of output a failure shows (all
	// of it if 0).
	Tail int
	// Quiet: when the test ends failed, the output is not logged (the
	// caller logs what it needs).
	Quiet bool
}

// TestDaemon is a Daemon of a test: its waits fail the test, and it is
// stopped when the test ends.
type TestDaemon struct {
	*Daemon
	t    testing.TB
	tail int
}

// StartTest starts bin with args for the test t (see Start). When the test
// ends the daemon is stopped and, if the test failed, its output logged.
func StartTest(t testing.TB, bin string, args []string, o TestOptions) *TestDaemon {
	t.Helper()
	d, err := Start(bin, args, o.Options)
	if err != nil {
		t.Fatal(err)
	}
	td := &TestDaemon{Daemon: d, t: t, tail: o.Tail}
	t.Cleanup(func() {
		d.Stop()
		if t.Failed() && !o.Quiet {
			t.Logf("reconciler output:\n%s", d.Tail(o.Tail))
		}
	})
	return td
}

// Until waits until cond holds (see Daemon.Await), and fails the test if
// the daemon exits first or timeout passes.
func (d *TestDaemon) Until(timeout time.Duration, what string, cond func() bool) {
	d.t.Helper()
	d.check(d.Await(context.Background(), timeout, what, cond))
}

// WaitLog waits until the daemon has logged s (see Daemon.AwaitLog).
func (d *TestDaemon) WaitLog(s string, timeout time.Duration) {
	d.t.Helper()
	d.check(d.AwaitLog(context.Background(), s, timeout))
}

// check fails the test on a wait's error, with the output if the daemon exited.
func (d *TestDaemon) check(err error) {
	d.t.Helper()
	switch {
	case errors.Is(err, ErrExited):
		d.t.Fatalf("%v:\n%s", err, d.Tail(d.tail))
	case err != nil:
		d.t.Fatal(err)
	}
}

// WaitResyncs waits until the daemon, which must run with -v 1, has logged
// n more resyncs (Resynced) than when called: the event form of "nothing
// happened after X" (call it once X is done or seen). Use at least 3: the
// first may have begun before X, and the second may follow it at once (a
// change in the broken files queues one); by the third, a worker acting on
// what a listing after X found has had a resync period to log its action.
func (d *TestDaemon) WaitResyncs(n int, timeout time.Duration) {
	d.t.Helper()
	from := strings.Count(d.Output(), Resynced)
	d.Until(timeout, fmt.Sprintf("%d resyncs logged (is the reconciler running with -v 1?)", n), func() bool {
		return strings.Count(d.Output(), Resynced) >= from+n
	})
}
