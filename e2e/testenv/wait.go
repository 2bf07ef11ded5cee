package testenv

import (
	"fmt"
	"testing"
	"time"
)

// Poll checks cond every interval until it holds, and returns an error
// naming what if timeout passes first.
func Poll(timeout, interval time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(interval)
	}
	return nil
}

// WaitFor polls cond every 50 ms until it holds, and fails t if timeout
// passes first.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if err := Poll(timeout, 50*time.Millisecond, what, cond); err != nil {
		t.Fatal(err)
	}
}
