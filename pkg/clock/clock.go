package clock

import (
	"sync"
	"time"
)

// Clock tells the time and runs functions later.
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

// Real is the wall clock.
type Real struct{}

// Now is time.Now.
func (Real) Now() time.Time { return time.Now() }

// AfterFunc is time.AfterFunc.
func (Real) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// Every calls f every period on c until the returned stop is called.
func Every(c Clock, period time.Duration, f func()) (stop func()) {
	var mu sync.Mutex
	stopped := false
	var timer Timer
	var tick func()
	tick = func() {
		f()
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			timer = c.AfterFunc(period, tick)
		}
	}
	mu.Lock()
	timer = c.AfterFunc(period, tick)
	mu.Unlock()
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		timer.Stop()
	}
}

// Alarm is a timer for select loops: it fires on a channel once the
// duration of its last Reset has passed. A firing of an earlier setting is
// never delivered after Reset or Stop.
type Alarm struct {
	c  Clock
	ch chan struct{}

	mu  sync.Mutex
	gen uint64
	t   Timer
}

// NewAlarm returns an alarm of c that is not set.
func NewAlarm(c Clock) *Alarm { return &Alarm{c: c, ch: make(chan struct{}, 1)} }

// C is where the alarm fires.
func (a *Alarm) C() <-chan struct{} { return a.ch }

// Reset sets the alarm to fire once d has passed, replacing any earlier
// setting.
func (a *Alarm) Reset(d time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	gen := a.stopLocked()
	a.t = a.c.AfterFunc(d, func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.gen != gen {
			return // replaced or stopped meanwhile
		}
		select {
		case a.ch <- struct{}{}:
		default:
		}
	})
}

// Stop unsets the alarm.
func (a *Alarm) Stop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stopLocked()
}

func (a *Alarm) stopLocked() uint64 {
	a.gen++
	if a.t != nil {
		a.t.Stop()
		a.t = nil
	}
	select { // a firing not yet read belongs to the old setting
	case <-a.ch:
	default:
	}
	return a.gen
}
