package clock

import (
	"sync/atomic"
	"testing"
	"time"
)

var start = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func fired(a *Alarm) bool {
	select {
	case <-a.C():
		return true
	default:
		return false
	}
}

func TestAlarm(t *testing.T) {
	c := NewFake(start)
	a := NewAlarm(c)
	a.Reset(time.Second)
	c.Step(999 * time.Millisecond)
	if fired(a) {
		t.Fatal("fired before its time")
	}
	c.Step(time.Millisecond)
	if !fired(a) {
		t.Fatal("did not fire at its time")
	}

	// A firing not yet read belongs to the old setting: Reset drops it.
	a.Reset(time.Second)
	c.Step(time.Second)
	a.Reset(time.Minute)
	if fired(a) {
		t.Fatal("a firing of the replaced setting was delivered")
	}
	c.Step(time.Minute)
	if !fired(a) {
		t.Fatal("the new setting did not fire")
	}

	// Stop: nothing fires.
	a.Reset(time.Second)
	a.Stop()
	c.Step(time.Hour)
	if fired(a) {
		t.Fatal("fired after Stop")
	}
}

func TestEvery(t *testing.T) {
	c := NewFake(start)
	var n atomic.Int32
	stop := Every(c, time.Minute, func() { n.Add(1) })
	c.Step(3*time.Minute + time.Second)
	if got := n.Load(); got != 3 {
		t.Fatalf("%d calls in 3 periods, want 3", got)
	}
	stop()
	c.Step(time.Hour)
	if got := n.Load(); got != 3 {
		t.Fatalf("%d calls after stop, want 3", got)
	}
	if p := c.Pending(); len(p) != 0 {
		t.Fatalf("timers left after stop: %v", p)
	}
}

func TestReal(t *testing.T) {
	a := NewAlarm(Real{})
	a.Reset(time.Millisecond)
	select {
	case <-a.C():
	case <-time.After(10 * time.Second):
		t.Fatal("the real clock's alarm did not fire")
	}
}
