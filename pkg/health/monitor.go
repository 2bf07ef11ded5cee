package health

import (
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/warren/reconciler/pkg/clock"
	"github.com/warren/reconciler/pkg/desired"
)

// State is a task's health.
type State string

// Health states.
const (
	Starting  State = "starting"  // no probe has succeeded yet
	Healthy   State = "healthy"   // the last probe succeeded, or fewer than retries failed since
	Unhealthy State = "unhealthy" // retries probes failed in a row
)

// Target is a running container to probe.
type Target struct {
	Task        string
	ContainerID string
	Check       Check
	StartedAt   time.Time // of the container's task (its label): startPeriod counts from it
	Pid         uint32    // of the task's process: its network namespace for http and tcp
	Network     desired.NetworkMode
	IP          string // a bridge task's address: http and tcp probes dial it from the host
}

func (t Target) same(o Target) bool {
	return t.Task == o.Task && t.ContainerID == o.ContainerID && t.StartedAt.Equal(o.StartedAt) &&
		t.Pid == o.Pid && t.Network == o.Network && t.IP == o.IP && t.Check.equal(o.Check)
}

// Status is what the probes of a task's container found.
type Status struct {
	ContainerID string
	State       State
	Streak      int       // failed probes in a row (failures within startPeriod not counted)
	LastProbe   time.Time // zero before the first probe
	Output      string    // of the last probe: its output's end, the HTTP status, or the error
	Reason      string    // when unhealthy: e.g. `3 probes failed: exec exit 1: "refused"`
	Check       string    // the check, as Check.String says it
	Source      string    // SourceManifest or SourceImage
}

// ExecResult is how an exec probe ended (the runtime's Exec answer).
type ExecResult struct {
	ExitCode int
	Output   []byte
	TimedOut bool
}

// ExecFunc runs command in container id's task, killing it at timeout,
// and leaves nothing of it behind.
type ExecFunc func(ctx context.Context, id string, command []string, timeout time.Duration) (ExecResult, error)

// Config configures a Monitor. Zero values take the documented defaults.
type Config struct {
	Exec    ExecFunc // runs exec probes; nil: every exec probe fails
	Clock   clock.Clock
	Log     logr.Logger
	Metrics *Metrics
	// Changed is called (outside any lock) when a task's health state
	// changes: starting, healthy, unhealthy.
	Changed func(task string)
	// Jitter returns a random duration in [0, n); default math/rand.
	Jitter func(n time.Duration) time.Duration
	// ExecSlots is how many exec probes run at once on the node; default 4.
	ExecSlots int
}

// Monitor probes the targets it is given.
type Monitor struct {
	cfg   Config
	slots chan struct{}
	ctx   context.Context
	stop  context.CancelFunc

	mu     sync.Mutex
	probed map[string]*prober // task -> its container's prober
}

type prober struct {
	target    Target
	status    Status
	succeeded bool
	timer     clock.Timer
	ctx       context.Context
	cancel    context.CancelFunc
}

// NewMonitor returns a monitor; Close ends every probe.
func NewMonitor(cfg Config) *Monitor {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Log.GetSink() == nil {
		cfg.Log = logr.Discard()
	}
	if cfg.Jitter == nil {
		cfg.Jitter = func(n time.Duration) time.Duration {
			if n <= 0 {
				return 0
			}
			return rand.N(n)
		}
	}
	if cfg.ExecSlots <= 0 {
		cfg.ExecSlots = 4
	}
	if cfg.Changed == nil {
		cfg.Changed = func(string) {}
	}
	ctx, stop := context.WithCancel(context.Background())
	m := &Monitor{cfg: cfg, slots: make(chan struct{}, cfg.ExecSlots), ctx: ctx, stop: stop, probed: map[string]*prober{}}
	if cfg.Metrics != nil {
		cfg.Metrics.monitor.Store(m)
	}
	return m
}

// Close ends every probe.
func (m *Monitor) Close() {
	m.stop()
	m.mu.Lock()
	defer m.mu.Unlock()
	for task, p := range m.probed {
		p.end()
		delete(m.probed, task)
	}
}

// Set says what to probe for task: its running container (t), or nothing
// (nil: not running, or no check). The same target again changes nothing;
// another one (a new container, a restart, another check) starts over.
func (m *Monitor) Set(task string, t *Target) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.probed[task]
	if ok && t != nil && p.target.same(*t) {
		return
	}
	if ok {
		p.end()
		delete(m.probed, task)
	}
	if t == nil || m.ctx.Err() != nil {
		return
	}
	ctx, cancel := context.WithCancel(m.ctx)
	p = &prober{target: *t, ctx: ctx, cancel: cancel, status: Status{
		ContainerID: t.ContainerID, State: Starting, Check: t.Check.String(), Source: t.Check.Source}}
	m.probed[task] = p
	first := m.cfg.Jitter(min(t.Check.Interval, time.Second))
	p.timer = m.cfg.Clock.AfterFunc(first, func() { m.fire(task, p) })
}

// Forget stops probing task and drops its metrics: the task is gone.
func (m *Monitor) Forget(task string) {
	m.Set(task, nil)
	m.cfg.Metrics.forget(task)
}

// Status returns the health of task's probed container; false when it is
// not probed.
func (m *Monitor) Status(task string) (Status, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.probed[task]
	if !ok {
		return Status{}, false
	}
	return p.status, true
}

func (p *prober) end() {
	p.cancel()
	if p.timer != nil {
		p.timer.Stop()
	}
}

// fire runs one probe of p and schedules the next.
func (m *Monitor) fire(task string, p *prober) {
	if p.ctx.Err() != nil {
		return
	}
	t := p.target
	if t.Check.Kind == KindExec {
		select {
		case m.slots <- struct{}{}:
			defer func() { <-m.slots }()
		case <-p.ctx.Done():
			return
		}
	}
	began := m.cfg.Clock.Now()
	v, out := m.probe(p.ctx, t)
	now := m.cfg.Clock.Now()
	if p.ctx.Err() != nil {
		return // replaced or closed meanwhile: this probe says nothing
	}
	m.cfg.Metrics.probed(task, t.Check.Kind, v, now.Sub(began))

	m.mu.Lock()
	if m.probed[task] != p {
		m.mu.Unlock()
		return
	}
	st := &p.status
	before := st.State
	st.LastProbe, st.Output = now, out
	switch {
	case v == unknown:
		// The probe could not be run (containerd away, no room for its
		// FIFOs): it says nothing of the task.
	case v == pass:
		p.succeeded = true
		st.Streak, st.State, st.Reason = 0, Healthy, ""
	case !p.succeeded && now.Before(t.StartedAt.Add(t.Check.StartPeriod)):
		// Within the start period, before any success: not counted.
	default:
		st.Streak++
		if st.Streak >= t.Check.Retries {
			st.State = Unhealthy
			st.Reason = fmt.Sprintf("%d probes failed: %s", st.Streak, out)
		}
	}
	if st.State != Unhealthy {
		p.timer = m.cfg.Clock.AfterFunc(nextProbe(task, t.Check.Interval, now), func() { m.fire(task, p) })
	}
	changed := st.State != before
	m.mu.Unlock()
	if changed {
		m.cfg.Log.Info("task health changed", "task", task, "container", t.ContainerID, "from", before, "to", st.State, "probe", out)
		m.cfg.Changed(task)
	}
}

// verdict is what one probe says of a task.
type verdict int

const (
	pass    verdict = iota
	fail            // the task failed it
	unknown         // the probe could not be run; it says nothing of the task
)

// probe runs t's check once, bounded by its timeout: its verdict, and what
// to show of it. An exec that containerd could not run is unknown; one
// that ran and failed, or timed out, is a failure. http and tcp probes
// that reach no server fail; one whose network namespace cannot be
// entered (the process is gone) is unknown.
func (m *Monitor) probe(ctx context.Context, t Target) (verdict, string) {
	c := t.Check
	switch c.Kind {
	case KindExec:
		if m.cfg.Exec == nil {
			return unknown, "exec probes are not available"
		}
		res, err := m.cfg.Exec(ctx, t.ContainerID, c.Command, c.Timeout)
		switch {
		case err != nil:
			return unknown, "exec not run: " + err.Error()
		case res.TimedOut:
			return fail, fmt.Sprintf("exec timed out after %s", c.Timeout)
		case res.ExitCode != 0:
			return fail, fmt.Sprintf("exec exit %d: %q", res.ExitCode, lastLines(res.Output))
		}
		return pass, fmt.Sprintf("exec exit 0: %q", lastLines(res.Output))
	case KindHTTP:
		return httpProbe(ctx, t)
	case KindTCP:
		return tcpProbe(ctx, t)
	}
	return unknown, "unknown probe kind " + string(c.Kind)
}

// maxShown is how much of a probe's output the status shows: its end.
const maxShown = 256

// lastLines returns the end of out, at most maxShown bytes, trimmed.
func lastLines(out []byte) string {
	s := strings.TrimSpace(strings.ToValidUTF8(string(out), "?"))
	if len(s) > maxShown {
		s = s[len(s)-maxShown:]
		if i := strings.IndexByte(s, '\n'); i >= 0 && i < len(s)-1 {
			s = s[i+1:]
		}
	}
	return s
}

// nextProbe returns how long after now task's next probe comes, for a check
// every interval. The probes of every task with that interval share one
// grid of ticks: interval split into slots of about a second (four at
// least), anchored at the Unix epoch; each task has its own slot (by a hash
// of its name), and its probe comes at the tick of its slot nearest to
// now+interval, which is exactly one interval after the last one once it
// is in its slot. So 100 tasks every 10 s wake the reconciler 10 times,
// for about 10 probes each, rather than 100 times: waking an idle process
// costs more CPU than a loopback probe (docs/benchmarks.md, "Health
// probes"), and the probes stay spread over the interval.
func nextProbe(task string, interval time.Duration, now time.Time) time.Duration {
	slots := int64(max(4, interval/time.Second))
	q := int64(interval) / slots
	if q <= 0 {
		return interval
	}
	h := fnv.New32a()
	h.Write([]byte(task))
	slot := int64(h.Sum32()) % slots
	base := now.Add(interval).UnixNano() / q
	k := base + (slot-base%slots+slots)%slots
	if k-base > slots/2 {
		k -= slots
	}
	at := time.Unix(0, k*q)
	for !at.After(now) {
		at = at.Add(time.Duration(slots * q))
	}
	return at.Sub(now)
}
