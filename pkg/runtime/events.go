package runtime

import (
	"context"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"
	eventtypes "github.com/containerd/containerd/api/events"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/grpc"
)

// Event topics WatchExits subscribes to.
const (
	topicExit = "/tasks/exit"
	topicOOM  = "/tasks/oom"
)

// WatchExits calls onExit with the container ID of every task exit and OOM
// kill in the namespace, until ctx is done (it then returns nil); OOM kills
// are also counted in the runtime's metrics. When the event stream breaks
// (containerd restarted), it resubscribes with exponential backoff (100 ms
// doubling to 10 s), logging the loss and the recovery once each. Exits
// during the gap are not replayed: the caller's periodic resync sees them.
func (r *Runtime) WatchExits(ctx context.Context, onExit func(containerID string)) error {
	filters := []string{
		fmt.Sprintf(`topic==%q,namespace==%q`, topicExit, r.ns),
		fmt.Sprintf(`topic==%q,namespace==%q`, topicOOM, r.ns),
	}
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(100*time.Millisecond),
		backoff.WithMaxInterval(10*time.Second),
		backoff.WithMaxElapsedTime(0))
	lost, first := false, true
	for ctx.Err() == nil {
		err := r.watchOnce(ctx, filters, onExit, func() {
			switch {
			case first:
				r.log.Info("watching exit events", "namespace", r.ns)
			case lost:
				r.log.Info("exit events resubscribed")
				// containerd came back (maybe restarted): what it was
				// doing when it went away may be left.
				r.needCollect()
			}
			first, lost = false, false
			b.Reset()
		})
		if ctx.Err() != nil {
			return nil
		}
		if !lost {
			r.log.Error(err, "exit event stream lost, resubscribing")
			lost = true
		}
		t := time.NewTimer(b.NextBackOff())
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
	return nil
}

// watchOnce subscribes once and delivers events until the stream breaks.
// ok is called once containerd has answered (it serves, so the subscription
// is live).
func (r *Runtime) watchOnce(ctx context.Context, filters []string, onExit func(string), ok func()) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// A health check first: Subscribe itself reports a dead daemon only
	// asynchronously, and "resubscribed" must mean it.
	// Our backoff paces the retries: let gRPC reconnect now rather than
	// after its own, longer, connection backoff.
	if cc, ok := r.client.Conn().(*grpc.ClientConn); ok {
		cc.ResetConnectBackoff()
	}
	hctx, hcancel := context.WithTimeout(sctx, 10*time.Second)
	serving, err := r.client.IsServing(hctx)
	hcancel()
	if err != nil || !serving {
		if err == nil {
			err = fmt.Errorf("containerd not serving")
		}
		return err
	}
	events, errs := r.client.EventService().Subscribe(sctx, filters...)
	ok()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errs:
			if err == nil {
				err = fmt.Errorf("event stream closed")
			}
			return err
		case e, open := <-events:
			if !open {
				return fmt.Errorf("event stream closed")
			}
			if e == nil || e.Event == nil {
				continue
			}
			v, err := typeurl.UnmarshalAny(e.Event)
			if err != nil {
				r.log.Error(err, "decode task event", "topic", e.Topic)
				continue
			}
			switch ev := v.(type) {
			case *eventtypes.TaskExit:
				onExit(ev.ContainerID)
			case *eventtypes.TaskOOM:
				r.metrics.oomKilled()
				onExit(ev.ContainerID)
			}
		}
	}
}
