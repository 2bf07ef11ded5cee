package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	eventtypes "github.com/containerd/containerd/api/events"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/typeurl/v2"
)

// Topics the recorder keeps.
const (
	topicCreate = "/containers/create"
	topicDelete = "/containers/delete"
	topicStart  = "/tasks/start"
	topicExit   = "/tasks/exit"
)

// event is one containerd event, as containerd published it.
type event struct {
	At        time.Time // the envelope's timestamp (the task's exit time for exits)
	Namespace string
	Topic     string
	ID        string // container ID
	Status    uint32 // exit status of a task exit
}

// recorder keeps every containerd event of the topics above, in every
// namespace, from the moment it subscribed. Everything the benchmark says
// about "running" and "gone" comes from here: what containerd published,
// never what the reconciler reports.
type recorder struct {
	mu      sync.Mutex
	events  []event
	changed chan struct{} // closed and replaced at each new event
	err     error
}

// record subscribes and returns once the subscription is known to be live
// (a probe container's create event came through).
func record(ctx context.Context, client *containerd.Client, probeNS string) (*recorder, error) {
	r := &recorder{changed: make(chan struct{})}
	ch, errs := client.EventService().Subscribe(ctx,
		fmt.Sprintf("topic==%q", topicCreate), fmt.Sprintf("topic==%q", topicDelete),
		fmt.Sprintf("topic==%q", topicStart), fmt.Sprintf("topic==%q", topicExit))
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case err := <-errs:
				r.mu.Lock()
				if err == nil {
					err = fmt.Errorf("event stream closed")
				}
				r.err = err
				close(r.changed)
				r.changed = make(chan struct{})
				r.mu.Unlock()
				return
			case e, ok := <-ch:
				if !ok {
					return
				}
				v, err := typeurl.UnmarshalAny(e.Event)
				if err != nil {
					continue
				}
				ev := event{At: e.Timestamp, Namespace: e.Namespace, Topic: e.Topic}
				switch x := v.(type) {
				case *eventtypes.ContainerCreate:
					ev.ID = x.ID
				case *eventtypes.ContainerDelete:
					ev.ID = x.ID
				case *eventtypes.TaskStart:
					ev.ID = x.ContainerID
				case *eventtypes.TaskExit:
					if x.ID != "" && x.ID != x.ContainerID {
						continue // an exec'd process, not the task
					}
					ev.ID, ev.Status = x.ContainerID, x.ExitStatus
					if x.ExitedAt != nil {
						ev.At = x.ExitedAt.AsTime()
					}
				default:
					continue
				}
				r.mu.Lock()
				r.events = append(r.events, ev)
				close(r.changed)
				r.changed = make(chan struct{})
				r.mu.Unlock()
			}
		}
	}()
	// Probe: a container with no snapshot and no task, created and deleted.
	pctx := withNS(ctx, probeNS)
	from := r.mark()
	c, err := client.NewContainer(pctx, "bench-probe", containerd.WithNewSpec())
	if err != nil {
		return nil, fmt.Errorf("probe container: %w", err)
	}
	defer c.Delete(pctx)
	if _, err := r.wait(ctx, from, 10*time.Second, 1, func(e event) bool {
		return e.Topic == topicCreate && e.Namespace == probeNS && e.ID == "bench-probe"
	}); err != nil {
		return nil, fmt.Errorf("event subscription: %w", err)
	}
	return r, nil
}

// mark is the index of the next event.
func (r *recorder) mark() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

// wait returns the first want events from index from on that match, one per
// container ID, waiting up to timeout for them.
func (r *recorder) wait(ctx context.Context, from int, timeout time.Duration, want int, match func(event) bool) (map[string]event, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	got := map[string]event{}
	i := from
	for {
		r.mu.Lock()
		for ; i < len(r.events); i++ {
			e := r.events[i]
			if _, seen := got[e.ID]; !seen && match(e) {
				got[e.ID] = e
			}
		}
		changed, err := r.changed, r.err
		r.mu.Unlock()
		if len(got) >= want {
			return got, nil
		}
		if err != nil {
			return got, err
		}
		select {
		case <-ctx.Done():
			return got, ctx.Err()
		case <-deadline.C:
			return got, fmt.Errorf("timed out after %s: %d of %d events", timeout, len(got), want)
		case <-changed:
		}
	}
}

// of matches events of one topic in one namespace whose container ID starts
// with one of the prefixes (a task's container ID is TASK-HASH).
func of(topic, ns string, prefixes ...string) func(event) bool {
	return func(e event) bool {
		if e.Topic != topic || e.Namespace != ns {
			return false
		}
		for _, p := range prefixes {
			if strings.HasPrefix(e.ID, p) {
				return true
			}
		}
		return false
	}
}

// latest is the time of the last of the events.
func latest(evs map[string]event) time.Time {
	var t time.Time
	for _, e := range evs {
		if e.At.After(t) {
			t = e.At
		}
	}
	return t
}
