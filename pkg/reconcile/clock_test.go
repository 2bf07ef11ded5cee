package reconcile

import (
	"time"

	"github.com/warren/reconciler/pkg/clock"
)

// newFakeClock is the clock tests step by hand.
func newFakeClock() *clock.Fake {
	return clock.NewFake(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
}
