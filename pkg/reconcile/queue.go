package reconcile

import (
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/warren/reconciler/pkg/clock"
)

// queue is a keyed work queue in the manner of client-go's workqueue: a key
// added while it waits is queued once; a key added while a worker holds it is
// queued again only after that worker is Done, so one key is never worked by
// two workers at once. Each key's retry backoff lives here too (client-go's
// rate-limiting queue): AddRateLimited queues a key after its next backoff
// delay, Forget resets it.
type queue struct {
	clock                  clock.Clock
	retryInitial, retryMax time.Duration

	mu         sync.Mutex
	cond       *sync.Cond
	order      []string
	dirty      map[string]bool
	processing map[string]bool
	timers     map[string]clock.Timer
	retries    map[string]*backoff.ExponentialBackOff
	retryAt    map[string]time.Time // key -> when its retry is due
	shutdown   bool
}

// newQueue returns a queue whose retry backoff starts at retryInitial and
// doubles up to retryMax.
func newQueue(clk clock.Clock, retryInitial, retryMax time.Duration) *queue {
	q := &queue{clock: clk, retryInitial: retryInitial, retryMax: retryMax,
		dirty: map[string]bool{}, processing: map[string]bool{}, timers: map[string]clock.Timer{},
		retries: map[string]*backoff.ExponentialBackOff{}, retryAt: map[string]time.Time{}}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// AddRateLimited queues key after its next retry delay (the first is
// retryInitial, each next one and a half times the last, at most retryMax,
// each with up to 50% of jitter) and returns the delay.
func (q *queue) AddRateLimited(key string) time.Duration {
	q.mu.Lock()
	b := q.retries[key]
	if b == nil {
		b = backoff.NewExponentialBackOff(
			backoff.WithInitialInterval(q.retryInitial),
			backoff.WithMaxInterval(q.retryMax),
			backoff.WithMaxElapsedTime(0),
			backoff.WithClockProvider(q.clock))
		q.retries[key] = b
	}
	delay := b.NextBackOff()
	q.retryAt[key] = q.clock.Now().Add(delay)
	q.mu.Unlock()
	q.AddAfter(key, delay)
	return delay
}

// Forget resets key's retry backoff: its work succeeded.
func (q *queue) Forget(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.retries, key)
	delete(q.retryAt, key)
}

// Retrying reports whether key waits out a retry delay at now.
func (q *queue) Retrying(key string, now time.Time) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	at, ok := q.retryAt[key]
	return ok && now.Before(at)
}

// Add queues key now.
func (q *queue) Add(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.addLocked(key)
}

func (q *queue) addLocked(key string) {
	if q.shutdown || q.dirty[key] {
		return
	}
	q.dirty[key] = true
	if q.processing[key] {
		return // re-queued by Done
	}
	q.order = append(q.order, key)
	q.cond.Signal()
}

// AddAfter queues key after d, unless it is queued sooner. A later AddAfter for
// the same key replaces an earlier pending one.
func (q *queue) AddAfter(key string, d time.Duration) {
	if d <= 0 {
		q.Add(key)
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.shutdown {
		return
	}
	if t, ok := q.timers[key]; ok {
		t.Stop()
	}
	// The callback takes q.mu, so it cannot look at q.timers before t is
	// stored; a callback whose timer was replaced meanwhile does nothing.
	var t clock.Timer
	t = q.clock.AfterFunc(d, func() {
		q.mu.Lock()
		defer q.mu.Unlock()
		if q.timers[key] != t {
			return
		}
		delete(q.timers, key)
		q.addLocked(key)
	})
	q.timers[key] = t
}

// Get blocks until a key is available or the queue shuts down (ok false).
func (q *queue) Get() (key string, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.order) == 0 && !q.shutdown {
		q.cond.Wait()
	}
	if len(q.order) == 0 {
		return "", false
	}
	key, q.order = q.order[0], q.order[1:]
	q.processing[key] = true
	delete(q.dirty, key)
	return key, true
}

// Done marks key finished; if it was added meanwhile it is queued again.
func (q *queue) Done(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.processing, key)
	if q.dirty[key] {
		q.order = append(q.order, key)
		q.cond.Signal()
	}
}

// Len is the number of keys waiting (not those being worked).
func (q *queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.order)
}

// idle reports whether no key waits and none is being worked.
func (q *queue) idle() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.order) == 0 && len(q.processing) == 0
}

// ShutDown wakes all waiting Gets; pending AddAfter timers are dropped.
func (q *queue) ShutDown() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.shutdown = true
	for k, t := range q.timers {
		t.Stop()
		delete(q.timers, k)
	}
	q.cond.Broadcast()
}
