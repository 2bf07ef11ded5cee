package reconcile

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/warren/reconciler/pkg/clock"
)

// getWithin returns the next key of q, failing the test if Get has not
// returned within 5 seconds (the queue is then shut down to free the Get).
func getWithin(t *testing.T, q *queue) (string, bool) {
	t.Helper()
	type result struct {
		key string
		ok  bool
	}
	ch := make(chan result, 1)
	go func() {
		k, ok := q.Get()
		ch <- result{k, ok}
	}()
	select {
	case r := <-ch:
		return r.key, r.ok
	case <-time.After(5 * time.Second):
		q.ShutDown()
		t.Fatal("Get did not return within 5s")
		return "", false
	}
}

func TestQueueAddTwiceWhileWaitingIsHandedOutOnce(t *testing.T) {
	q := newQueue(clock.Real{}, time.Millisecond, time.Second)
	q.Add("a")
	q.Add("b")
	q.Add("a")
	if n := q.Len(); n != 2 {
		t.Fatalf("Len = %d after adding a, b, a; want 2", n)
	}
	for _, want := range []string{"a", "b"} {
		if k, ok := getWithin(t, q); !ok || k != want {
			t.Fatalf("Get = %q, %v; want %q (first-added order)", k, ok, want)
		}
	}
	if n := q.Len(); n != 0 {
		t.Fatalf("Len = %d after both were handed out; want 0: a was queued twice", n)
	}
	q.Done("a")
	q.Done("b")
	if n := q.Len(); n != 0 {
		t.Fatalf("Len = %d after Done; want 0", n)
	}
}

func TestQueueAddWhileProcessingWaitsForDone(t *testing.T) {
	q := newQueue(clock.Real{}, time.Millisecond, time.Second)
	q.Add("a")
	if k, _ := getWithin(t, q); k != "a" {
		t.Fatalf("Get = %q, want a", k)
	}
	q.Add("a") // while a worker holds a
	q.Add("a")
	q.Add("b")
	if k, _ := getWithin(t, q); k != "b" {
		t.Fatalf("Get = %q while a is processing; want b", k)
	}
	if n := q.Len(); n != 0 {
		t.Fatalf("Len = %d while a is processing; want 0 (a waits for Done)", n)
	}
	q.Done("a")
	if n := q.Len(); n != 1 {
		t.Fatalf("Len = %d after Done(a); want 1 (a once, though added twice)", n)
	}
	if k, _ := getWithin(t, q); k != "a" {
		t.Fatalf("Get = %q after Done(a), want a", k)
	}
	q.Done("a")
	q.Done("b")
	if n := q.Len(); n != 0 {
		t.Fatalf("Len = %d after Done without a new Add; want 0", n)
	}
}

// TestQueueOneWorkerPerKey runs workers and producers concurrently (meant for
// -race): a key is never held by two workers at once, and every Add is
// followed by a Get of that key that starts after it (no Add is lost).
func TestQueueOneWorkerPerKey(t *testing.T) {
	const (
		workers   = 8
		producers = 4
		keys      = 5
		addsEach  = 500
	)
	q := newQueue(clock.Real{}, time.Millisecond, time.Second)

	var mu sync.Mutex
	active := map[string]bool{}
	added := map[string]int{} // generation: bumped before each Add
	seen := map[string]int{}  // generation current when a worker got the key
	handed := 0

	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k, ok := q.Get()
				if !ok {
					return
				}
				mu.Lock()
				if active[k] {
					t.Errorf("key %s handed to two workers at once", k)
				}
				active[k] = true
				seen[k] = added[k]
				handed++
				mu.Unlock()
				for range 3 {
					runtime.Gosched() // "work", giving others a chance to Add and Get
				}
				mu.Lock()
				active[k] = false
				mu.Unlock()
				q.Done(k)
			}
		}()
	}

	var pwg sync.WaitGroup
	for p := range producers {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			for i := range addsEach {
				k := fmt.Sprintf("k%d", (i+p)%keys)
				mu.Lock()
				added[k]++
				mu.Unlock()
				q.Add(k)
				runtime.Gosched()
			}
		}()
	}
	pwg.Wait()

	eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for k, gen := range added {
			if seen[k] != gen {
				return false
			}
		}
		return true
	}, "some Add was never followed by a Get of its key")
	q.ShutDown()
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	if handed == 0 || handed > producers*addsEach {
		t.Errorf("%d hand-outs for %d adds", handed, producers*addsEach)
	}
	if len(seen) != keys {
		t.Errorf("%d keys handed out, want %d", len(seen), keys)
	}
}

func TestQueueAddAfterDeliversLater(t *testing.T) {
	q := newQueue(clock.Real{}, time.Millisecond, time.Second)
	const d = 50 * time.Millisecond
	start := time.Now()
	q.AddAfter("a", d)
	if n := q.Len(); n != 0 {
		// time.AfterFunc never fires early, but a very slow machine may
		// have passed d already.
		if time.Since(start) < d {
			t.Fatalf("Len = %d right after AddAfter(%v); want 0", n, d)
		}
	}
	k, ok := getWithin(t, q)
	if !ok || k != "a" {
		t.Fatalf("Get = %q, %v; want a", k, ok)
	}
	if el := time.Since(start); el < d {
		t.Errorf("delivered after %v, want at least %v", el, d)
	}
}

func TestQueueAddAfterZeroIsAdd(t *testing.T) {
	q := newQueue(clock.Real{}, time.Millisecond, time.Second)
	q.AddAfter("a", 0)
	if n := q.Len(); n != 1 {
		t.Fatalf("Len = %d after AddAfter(0); want 1", n)
	}
}

func TestQueueSecondAddAfterReplacesFirst(t *testing.T) {
	t.Run("shorter", func(t *testing.T) {
		q := newQueue(clock.Real{}, time.Millisecond, time.Second)
		q.AddAfter("a", time.Hour)
		q.AddAfter("a", 5*time.Millisecond)
		if k, ok := getWithin(t, q); !ok || k != "a" {
			t.Fatalf("Get = %q, %v; want a, well before the first hour", k, ok)
		}
	})
	t.Run("longer", func(t *testing.T) {
		q := newQueue(clock.Real{}, time.Millisecond, time.Second)
		const first, second = 200 * time.Millisecond, 400 * time.Millisecond
		start := time.Now()
		q.AddAfter("a", first)
		q.AddAfter("a", second)
		if k, ok := getWithin(t, q); !ok || k != "a" {
			t.Fatalf("Get = %q, %v; want a", k, ok)
		}
		if el := time.Since(start); el < second {
			t.Errorf("delivered after %v: the first AddAfter(%v) was not replaced by AddAfter(%v)", el, first, second)
		}
	})
}

func TestQueueAddBeforeAddAfterFires(t *testing.T) {
	q := newQueue(clock.Real{}, time.Millisecond, time.Second)
	q.AddAfter("a", time.Hour)
	q.Add("a")
	if k, ok := getWithin(t, q); !ok || k != "a" {
		t.Fatalf("Get = %q, %v; want a now", k, ok)
	}
	q.ShutDown() // stops the hour-long timer
}

func TestQueueShutDownUnblocksGet(t *testing.T) {
	q := newQueue(clock.Real{}, time.Millisecond, time.Second)
	const getters = 4
	done := make(chan bool, getters)
	for range getters {
		go func() {
			_, ok := q.Get()
			done <- ok
		}()
	}
	q.ShutDown()
	for range getters {
		select {
		case ok := <-done:
			if ok {
				t.Error("Get returned ok after ShutDown of an empty queue")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Get still blocked 5s after ShutDown")
		}
	}

	q.Add("a")
	q.AddAfter("b", time.Millisecond)
	if k, ok := getWithin(t, q); ok {
		t.Errorf("Get after ShutDown = %q; want nothing", k)
	}
}

func TestQueueShutDownDropsPendingAddAfter(t *testing.T) {
	q := newQueue(clock.Real{}, time.Millisecond, time.Second)
	q.AddAfter("a", 10*time.Millisecond)
	q.ShutDown()
	if k, ok := getWithin(t, q); ok {
		t.Errorf("Get after ShutDown = %q; want the pending AddAfter dropped", k)
	}
}

// TestQueueRetryBackoff: AddRateLimited queues a key after a delay that
// grows by half at each call up to the maximum; Forget starts it over; Retrying
// says whether the key waits out its delay.
func TestQueueRetryBackoff(t *testing.T) {
	clk := newFakeClock()
	q := newQueue(clk, time.Second, 4*time.Second)
	var delays []time.Duration
	for range 4 {
		delays = append(delays, q.AddRateLimited("a"))
	}
	// The backoff library adds up to 50% of jitter around each delay.
	for i, want := range []time.Duration{time.Second, 1500 * time.Millisecond, 2250 * time.Millisecond, 3375 * time.Millisecond} {
		if d := delays[i]; d < want/2 || d > want*3/2 {
			t.Errorf("delay %d = %s, want %s within the jitter", i, d, want)
		}
	}
	if !q.Retrying("a", clk.Now()) || q.Retrying("b", clk.Now()) {
		t.Error("Retrying: a should wait out its delay, b should not")
	}
	if q.Len() != 0 {
		t.Fatal("a queued before its delay")
	}
	clk.Step(delays[3])
	if k, ok := getWithin(t, q); !ok || k != "a" {
		t.Fatalf("Get = %q, %v after the delay; want a", k, ok)
	}
	q.Done("a")
	q.Forget("a")
	if q.Retrying("a", clk.Now()) {
		t.Error("a still retrying after Forget")
	}
	if d := q.AddRateLimited("a"); d > 3*time.Second/2 {
		t.Errorf("delay after Forget = %s, want the first one again", d)
	}
}
