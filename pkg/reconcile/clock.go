package reconcile

import (
	"sync"
	"time"
)

// Clock is the controller's time: the real one in production, a fake that
// tests step by hand (no test sleeps to wait for a backoff).
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has passed.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc.
type Timer interface {
	// Stop prevents the call if it has not happened; it reports whether it did.
	Stop() bool
}

// RealClock is the wall clock.
type RealClock struct{}

// Now is time.Now.
func (RealClock) Now() time.Time { return time.Now() }

// AfterFunc is time.AfterFunc.
func (RealClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// every calls f every period on clock until the returned stop is called.
func every(clock Clock, period time.Duration, f func()) (stop func()) {
	var mu sync.Mutex
	stopped := false
	var timer Timer
	var tick func()
	tick = func() {
		f()
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			timer = clock.AfterFunc(period, tick)
		}
	}
	mu.Lock()
	timer = clock.AfterFunc(period, tick)
	mu.Unlock()
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		timer.Stop()
	}
}
