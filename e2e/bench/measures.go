package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/warren/reconciler/e2e/testenv"
)

// The measures, in the order they run. Each one records into b.res.

// side is one way of getting containers running: the floor, a reference,
// or the reconciler. Each returns the time of one trial.
type side struct {
	name  string
	trial func(ctx context.Context, i int) (time.Duration, error)
	into  *[]float64
}

// rotate runs trials of every side in turn, trials times, rotating which
// goes first so that drift of the machine hits all alike. The first warm
// trials of each side are not recorded.
func (b *bench) rotate(ctx context.Context, trials, warm int, sides []side) error {
	for i := range trials + warm {
		for j := range sides {
			s := sides[(i+j)%len(sides)]
			d, err := s.trial(ctx, i)
			if err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			if i >= warm {
				*s.into = append(*s.into, d.Seconds())
			}
			pause(ctx, b.cfg.pause) // everything idle again
		}
	}
	return nil
}

// latency: K single drops into an idle reconciler, each with one
// create+start of the floor and of the references.
func (b *bench) latency(ctx context.Context, d *daemon, dir string) error {
	var dropped []time.Time
	err := b.rotate(ctx, b.cfg.k, 2, []side{
		{"floor", func(ctx context.Context, i int) (time.Duration, error) {
			return singleOf(ctx, b.floor, b.rec, fmt.Sprintf("fl-s%03d", i))
		}, &b.res.Floor.SingleSeconds},
		{"floor with seccomp", func(ctx context.Context, i int) (time.Duration, error) {
			return singleOf(ctx, b.seccomp, b.rec, fmt.Sprintf("sc-s%03d", i))
		}, &b.res.Seccomp.SingleSeconds},
		{"floor with seccomp and log driver", func(ctx context.Context, i int) (time.Duration, error) {
			return singleOf(ctx, b.logDriver, b.rec, fmt.Sprintf("ld-s%03d", i))
		}, &b.res.LogDriver.SingleSeconds},
		{"pkg/runtime", func(ctx context.Context, i int) (time.Duration, error) {
			return singleOf(ctx, b.runtime, b.rec, fmt.Sprintf("rt-s%03d", i))
		}, &b.res.Runtime.SingleSeconds},
		{"reconciler", func(ctx context.Context, i int) (time.Duration, error) {
			at, dur, err := b.dropSingle(ctx, dir, fmt.Sprintf("drop-%03d", i), plainManifest)
			dropped = append(dropped, at)
			return dur, err
		}, &b.res.Reconciler.SingleSeconds},
	})
	if err != nil {
		return err
	}
	b.res.Reconciler.DroppedAt = dropped[2:]
	b.logf("single drop: p50 %s (floor %s, with seccomp %s, and log driver %s, pkg/runtime %s), p99 %s (floor %s)",
		ms(pct(b.res.Reconciler.SingleSeconds, 50)), ms(pct(b.res.Floor.SingleSeconds, 50)),
		ms(pct(b.res.Seccomp.SingleSeconds, 50)), ms(pct(b.res.LogDriver.SingleSeconds, 50)), ms(pct(b.res.Runtime.SingleSeconds, 50)),
		ms(pct(b.res.Reconciler.SingleSeconds, 99)), ms(pct(b.res.Floor.SingleSeconds, 99)))
	return nil
}

// plainManifest is the task of the floor's container: the test image and
// its command, host network.
func plainManifest(name string) string { return testenv.Manifest(name) }

// dropSingle drops one manifest (content), waits for its task's start
// event, removes the manifest and waits for the container's delete event.
func (b *bench) dropSingle(ctx context.Context, dir, name string, content func(string) string) (time.Time, time.Duration, error) {
	from := b.rec.mark()
	began, err := drop(dir, []string{name}, content)
	if err != nil {
		return began, 0, err
	}
	evs, err := b.rec.wait(ctx, from, time.Minute, 1, of(topicStart, nsReconciler, name+"-"))
	if err != nil {
		return began, 0, fmt.Errorf("single drop %s: waiting for the start event: %w", name, err)
	}
	dur := latest(evs).Sub(began)
	from = b.rec.mark()
	if _, err := remove(dir, []string{name}); err != nil {
		return began, 0, err
	}
	if _, err := b.rec.wait(ctx, from, time.Minute, 1, of(topicDelete, nsReconciler, name+"-")); err != nil {
		return began, 0, fmt.Errorf("single drop %s: waiting for the delete event: %w", name, err)
	}
	return began, dur, nil
}

// burst: rounds of N containers through the floor and the references at
// concurrency C, and N manifests dropped at once into the reconciler with C
// workers.
func (b *bench) burst(ctx context.Context, d *daemon, dir string) error {
	n, c := b.cfg.n, b.cfg.c
	raw := func(s starter, prefix string, into *series) side {
		return side{prefix, func(ctx context.Context, r int) (time.Duration, error) {
			calls := b.calls.Load()
			dur, err := burstOf(ctx, s, b.rec, names(fmt.Sprintf("%s-b%d", prefix, r), 0, n), c)
			if _, own := s.(*rawClient); own { // pkg/runtime has a client of its own
				into.CallsPerTask = append(into.CallsPerTask, float64(b.calls.Load()-calls)/float64(n))
			}
			b.logf("burst round %d: %s %s", r+1, prefix, secs(dur.Seconds()))
			return dur, err
		}, &into.BurstSeconds}
	}
	return b.rotate(ctx, b.cfg.rounds, 0, []side{
		raw(b.floor, "fl", &b.res.Floor),
		raw(b.seccomp, "sc", &b.res.Seccomp),
		raw(b.logDriver, "ld", &b.res.LogDriver),
		raw(b.runtime, "rt", &b.res.Runtime),
		{"reconciler", func(ctx context.Context, r int) (time.Duration, error) {
			if d.pprof != "" && len(b.res.Floor.BurstSeconds) > 0 {
				// A CPU profile over each burst: one and a half times
				// the floor's last time (in whole seconds).
				over := time.Duration(1.5 * b.res.Floor.BurstSeconds[len(b.res.Floor.BurstSeconds)-1] * float64(time.Second))
				done := make(chan error, 1)
				go func() {
					done <- d.profile(ctx, "cpu", over, filepath.Join(b.cfg.pprof, fmt.Sprintf("burst-%d.cpu.pprof", r+1)))
				}()
				defer func() {
					if err := <-done; err != nil {
						b.logf("profile: %v", err)
					}
				}()
			}
			return b.dropBurst(ctx, d, dir, names(fmt.Sprintf("burst%d", r), 0, n))
		}, &b.res.Reconciler.BurstSeconds},
	})
}

// dropBurst drops the tasks at once, waits for all their start events,
// removes them and waits for all their delete events.
func (b *bench) dropBurst(ctx context.Context, d *daemon, dir string, tasks []string) (time.Duration, error) {
	cpu0, err := cpuTime(d.pid())
	if err != nil {
		return 0, err
	}
	from := b.rec.mark()
	began, err := drop(dir, tasks, func(n string) string { return testenv.Manifest(n) })
	if err != nil {
		return 0, err
	}
	evs, err := b.rec.wait(ctx, from, 10*time.Minute, len(tasks), of(topicStart, nsReconciler, prefixes(tasks)...))
	if err != nil {
		return 0, fmt.Errorf("waiting for start events: %w", err)
	}
	dur := latest(evs).Sub(began)
	cpu1, err := cpuTime(d.pid())
	if err != nil {
		return 0, err
	}
	from = b.rec.mark()
	if began, err = remove(dir, tasks); err != nil {
		return 0, err
	}
	gone, err := b.rec.wait(ctx, from, 10*time.Minute, len(tasks), of(topicDelete, nsReconciler, prefixes(tasks)...))
	if err != nil {
		return 0, fmt.Errorf("waiting for delete events: %w", err)
	}
	removal := latest(gone).Sub(began)
	b.res.Reconciler.BurstCPUSeconds = append(b.res.Reconciler.BurstCPUSeconds, (cpu1 - cpu0).Seconds())
	b.res.Reconciler.RemoveSeconds = append(b.res.Reconciler.RemoveSeconds, removal.Seconds())
	b.logf("burst: reconciler %s (its CPU %s; removal %s)", secs(dur.Seconds()), ms((cpu1 - cpu0).Seconds()), secs(removal.Seconds()))
	return dur, nil
}

// teardown: tasks that ignore SIGTERM, with grace G, removed at once. The
// stop decision is the reconciler's "stopping container" log line (its own
// timestamp); SIGKILL is the task's exit event with status 137 (the exit
// time containerd recorded); removal is the container's delete event.
func (b *bench) teardown(ctx context.Context, d *daemon, dir string) error {
	g := b.cfg.grace
	tasks := names("stop", 0, b.cfg.stops)
	from := b.rec.mark()
	if _, err := drop(dir, tasks, func(n string) string {
		return testenv.Manifest(n, "env: [{name: IGNORE_SIGTERM, value: \"true\"}]", "stopGracePeriod: "+g.String())
	}); err != nil {
		return err
	}
	if _, err := b.rec.wait(ctx, from, 5*time.Minute, len(tasks), of(topicStart, nsReconciler, prefixes(tasks)...)); err != nil {
		return fmt.Errorf("teardown: waiting for start events: %w", err)
	}
	pause(ctx, b.cfg.pause)
	logFrom := d.logMark()
	from = b.rec.mark()
	removed, err := remove(dir, tasks)
	if err != nil {
		return err
	}
	timeout := g + 2*time.Minute
	kills, err := b.rec.wait(ctx, from, timeout, len(tasks), func(e event) bool {
		return of(topicExit, nsReconciler, prefixes(tasks)...)(e) && e.Status == 137
	})
	if err != nil {
		return fmt.Errorf("teardown: waiting for exits with status 137: %w", err)
	}
	gone, err := b.rec.wait(ctx, from, timeout, len(tasks), of(topicDelete, nsReconciler, prefixes(tasks)...))
	if err != nil {
		return fmt.Errorf("teardown: waiting for delete events: %w", err)
	}
	decided := map[string]time.Time{}
	for _, l := range d.logs(logFrom, "stopping container") {
		if _, ok := decided[l.Container]; !ok {
			decided[l.Container] = l.At
		}
	}
	ids := make([]string, 0, len(kills))
	for id := range kills {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		at, ok := decided[id]
		if !ok {
			return fmt.Errorf("teardown: no \"stopping container\" log line for %s", id)
		}
		s := stopResult{
			Container:            id,
			KillAfterDecision:    kills[id].At.Sub(at).Seconds(),
			GoneAfterDecision:    gone[id].At.Sub(at).Seconds(),
			DecisionAfterRemoval: at.Sub(removed).Seconds(),
			KillAfterRemoval:     kills[id].At.Sub(removed).Seconds(),
		}
		b.res.Teardown = append(b.res.Teardown, s)
		b.logf("teardown %s: SIGKILL %s and removed %s after the stop decision (decision %s after the file removal)",
			id, secs(s.KillAfterDecision), secs(s.GoneAfterDecision), ms(s.DecisionAfterRemoval))
	}
	return nil
}

// idle: a reconciler whose containerd calls go through the counting proxy,
// brought to each level of running tasks in turn. At each level: memory
// (peak while reaching the level, and resident after a pass), the calls of
// one resync pass and its time. At the last level: CPU time over the idle
// window.
func (b *bench) idle(ctx context.Context, p *countingProxy, d *daemon, dir string) error {
	gap := b.cfg.gap()
	prev := 0
	for li, level := range b.cfg.levels {
		if li > 0 {
			// The peak of this level: from here, while the tasks are
			// added, to the end of its pass. Level 0's is the start-up.
			if err := resetPeak(d.pid()); err != nil {
				return err
			}
		}
		var ramp []call
		rampTasks := 0
		if level > prev {
			tasks := names("idle", prev, level)
			from, calls := b.rec.mark(), p.mark()
			if _, err := drop(dir, tasks, func(n string) string { return testenv.Manifest(n) }); err != nil {
				return err
			}
			if _, err := b.rec.wait(ctx, from, 10*time.Minute, len(tasks), of(topicStart, nsReconciler, prefixes(tasks)...)); err != nil {
				return fmt.Errorf("idle level %d: waiting for start events: %w", level, err)
			}
			if err := p.waitQuiet(ctx, gap, 5*time.Minute); err != nil {
				return fmt.Errorf("idle level %d: %w", level, err)
			}
			ramp, rampTasks = countable(p.since(calls)), len(tasks)
		}
		prev = max(prev, level)
		if err := p.waitQuiet(ctx, gap, 5*time.Minute); err != nil {
			return fmt.Errorf("idle level %d: %w", level, err)
		}
		pass, err := b.onePass(ctx, p, gap)
		if err != nil {
			return fmt.Errorf("idle level %d: %w", level, err)
		}
		m, err := d.proc.Memory()
		if err != nil {
			return err
		}
		nd, pss, private, err := logDrivers(filepath.Join(d.state, "log-driver"), d.pid())
		if err != nil {
			return err
		}
		lv := levelResult{
			N: level, Calls: len(pass), Methods: methods(pass),
			PassSeconds: passTime(pass),
			ListSeconds: passTime(pass[:min(2, len(pass))]),
			PeakBytes:   m.Peak, RSSBytes: m.RSS, AnonBytes: m.Anon,
			LogDrivers: nd, LogDriversPSS: pss, LogDriversPrivate: private,
		}
		if len(ramp) > 0 {
			lv.RampTasks, lv.RampCalls, lv.RampMethods = rampTasks, len(ramp), methods(ramp)
			b.logf("idle N=%d: %d containerd calls to add %d tasks (%.1f per task) %v", level, lv.RampCalls, lv.RampTasks, float64(lv.RampCalls)/float64(lv.RampTasks), lv.RampMethods)
		}
		b.res.Idle.Levels = append(b.res.Idle.Levels, lv)
		if err := d.profile(ctx, "heap", 0, filepath.Join(b.cfg.pprof, fmt.Sprintf("idle-%d.heap.pprof", level))); err != nil {
			return err
		}
		b.logf("idle N=%d: %d containerd calls in one resync pass %v, pass %s (listing %s), memory peak %s, resident %s (anonymous %s); %d log drivers: PSS %s, private %s",
			level, lv.Calls, lv.Methods, ms(lv.PassSeconds), ms(lv.ListSeconds), mib(m.Peak), mib(m.RSS), mib(m.Anon), nd, mib(pss), mib(private))
	}

	// CPU over the window, nothing changing; no metrics read inside it.
	pid := d.pid()
	mark, evMark := p.mark(), b.rec.mark()
	cpu0, err := cpuTime(pid)
	if err != nil {
		return err
	}
	began := time.Now()
	b.logf("idle N=%d: measuring CPU over %s", prev, b.cfg.idleWindow)
	if d.pprof != "" {
		if err := d.profile(ctx, "cpu", b.cfg.idleWindow, filepath.Join(b.cfg.pprof, "idle.cpu.pprof")); err != nil {
			return err
		}
	} else {
		pause(ctx, b.cfg.idleWindow)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	cpu1, err := cpuTime(pid)
	if err != nil {
		return err
	}
	window := time.Since(began)
	m, err := d.proc.Memory()
	if err != nil {
		return err
	}
	calls := p.since(mark)
	if evs := b.taskEvents(evMark); len(evs) > 0 {
		b.logf("idle N=%d: task events during the CPU window, the figure includes restarting them: %v", prev, evs)
	}
	b.res.Idle.N = prev
	b.res.Idle.WindowSeconds = window.Seconds()
	b.res.Idle.CPUSeconds = (cpu1 - cpu0).Seconds()
	b.res.Idle.Passes = len(clusters(calls, gap))
	b.res.Idle.Calls = len(countable(calls))
	b.res.Idle.RSSBytes = m.RSS
	// The reconciler's own figure for its listings, over the whole run
	// (read after the window: a scrape costs it CPU and memory).
	if mt, err := d.metrics(ctx); err == nil && mt["reconciler_resync_duration_seconds_count"] > 0 {
		b.res.Idle.ResyncMetricMean = mt["reconciler_resync_duration_seconds_sum"] / mt["reconciler_resync_duration_seconds_count"]
	}
	b.logf("idle N=%d: CPU %s over %s (%.3f%% of a core), %d passes, %d calls, resident %s",
		prev, ms(b.res.Idle.CPUSeconds), secs(window.Seconds()), 100*b.res.Idle.CPUSeconds/window.Seconds(),
		b.res.Idle.Passes, b.res.Idle.Calls, mib(m.RSS))

	return nil
}

// busy: a reconciler started on the node the idle measure left (its tasks
// running, as after a restart of the daemon), on containerd directly.
// Single drops, each with one floor create+start on the same busy
// containerd; then every task is removed through it.
func (b *bench) busy(ctx context.Context, d *daemon, dir string) error {
	prev := b.res.Idle.N
	// Single drops with the level's tasks running, each with one floor
	// create+start on the same busy containerd.
	if prev > 0 && b.cfg.kAtN > 0 {
		if d.pprof != "" {
			// A CPU profile over (about) the trials: each takes a drop,
			// its start, its removal and the pauses, twice.
			over := time.Duration(b.cfg.kAtN) * (400*time.Millisecond + 2*b.cfg.pause)
			done := make(chan error, 1)
			go func() { done <- d.profile(ctx, "cpu", over, filepath.Join(b.cfg.pprof, "busy.cpu.pprof")) }()
			defer func() {
				if err := <-done; err != nil {
					b.logf("profile: %v", err)
				}
			}()
		}
		err := b.rotate(ctx, b.cfg.kAtN, 1, []side{
			{"floor", func(ctx context.Context, i int) (time.Duration, error) {
				return singleOf(ctx, b.floor, b.rec, fmt.Sprintf("fl-n%03d", i))
			}, &b.res.Floor.SingleAtNSeconds},
			{"reconciler", func(ctx context.Context, i int) (time.Duration, error) {
				_, dur, err := b.dropSingle(ctx, dir, fmt.Sprintf("busy-%03d", i), plainManifest)
				return dur, err
			}, &b.res.Reconciler.SingleAtNSeconds},
		})
		if err != nil {
			return fmt.Errorf("single drop with %d running: %w", prev, err)
		}
		b.logf("single drop with %d running: p50 %s (floor %s), p99 %s (floor %s)", prev,
			ms(pct(b.res.Reconciler.SingleAtNSeconds, 50)), ms(pct(b.res.Floor.SingleAtNSeconds, 50)),
			ms(pct(b.res.Reconciler.SingleAtNSeconds, 99)), ms(pct(b.res.Floor.SingleAtNSeconds, 99)))
	}

	// Clean up through the reconciler.
	tasks := names("idle", 0, prev)
	if len(tasks) > 0 {
		from := b.rec.mark()
		if _, err := remove(dir, tasks); err != nil {
			return err
		}
		if _, err := b.rec.wait(ctx, from, 10*time.Minute, len(tasks), of(topicDelete, nsReconciler, prefixes(tasks)...)); err != nil {
			return fmt.Errorf("idle: waiting for delete events: %w", err)
		}
	}
	return nil
}

// onePass waits for the next resync pass (the next call after a quiet
// time) and returns its calls once they have been quiet for gap. A pass
// during which a task of the reconciler's namespace exited or started is
// not an idle one (the reconciler restarted something): it is reported and
// the next pass is taken, up to three times.
func (b *bench) onePass(ctx context.Context, p *countingProxy, gap time.Duration) ([]call, error) {
	for try := 0; ; try++ {
		mark, evMark := p.mark(), b.rec.mark()
		deadline := time.Now().Add(b.cfg.resync + time.Minute)
		for len(countable(p.since(mark))) == 0 {
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("no resync pass within %s", b.cfg.resync+time.Minute)
			}
			pause(ctx, 20*time.Millisecond)
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
		}
		if err := p.waitQuiet(ctx, gap, 5*time.Minute); err != nil {
			return nil, err
		}
		calls := countable(p.since(mark))
		disturbed := b.taskEvents(evMark)
		if len(disturbed) == 0 || try == 2 {
			return calls, nil
		}
		b.logf("a resync pass (%d calls) came with task events %v: not an idle pass, taking the next one", len(calls), disturbed)
	}
}

// taskEvents lists the task starts and exits in the reconciler's namespace
// from event index from on, and records the exits as unexpected (during the
// idle measure nothing is asked to stop).
func (b *bench) taskEvents(from int) []string {
	evs, _ := b.rec.wait(context.Background(), from, 0, 1<<30, func(e event) bool {
		return e.Namespace == nsReconciler && (e.Topic == topicStart || e.Topic == topicExit)
	})
	var out []string
	for _, e := range evs {
		what := fmt.Sprintf("%s %s", e.Topic, e.ID)
		if e.Topic == topicExit {
			what += fmt.Sprintf(" (status %d)", e.Status)
			b.res.Idle.UnexpectedExits = append(b.res.Idle.UnexpectedExits, what)
		}
		out = append(out, what)
	}
	sort.Strings(out)
	return out
}

// countable drops the long-lived streams (the exit event subscription).
func countable(cs []call) []call {
	var out []call
	for _, c := range cs {
		if !longLived(c.Method) {
			out = append(out, c)
		}
	}
	return out
}

// clusters splits calls (in start order) into groups separated by quiet
// times of at least gap: one group per resync pass.
func clusters(cs []call, gap time.Duration) [][]call {
	cs = countable(cs)
	var out [][]call
	var end time.Time
	for _, c := range cs {
		if len(out) == 0 || c.Start.Sub(end) >= gap {
			out = append(out, nil)
		}
		out[len(out)-1] = append(out[len(out)-1], c)
		e := c.End
		if e.IsZero() {
			e = c.Start
		}
		if e.After(end) {
			end = e
		}
	}
	return out
}

// passTime is from the first call's start to the last call's end.
func passTime(cs []call) float64 {
	if len(cs) == 0 {
		return 0
	}
	first, last := cs[0].Start, cs[0].End
	for _, c := range cs {
		if c.Start.Before(first) {
			first = c.Start
		}
		if c.End.After(last) {
			last = c.End
		}
	}
	return last.Sub(first).Seconds()
}

// methods counts calls by method (its last path element).
func methods(cs []call) map[string]int {
	out := map[string]int{}
	for _, c := range cs {
		out[strings.TrimPrefix(filepath.Base(filepath.Dir(c.Method)), "containerd.services.")+"/"+filepath.Base(c.Method)]++
	}
	return out
}

// pause waits for d or until ctx is done. The benchmark pauses on purpose
// (an idle reconciler, an idle window); it never sleeps to wait for a
// condition.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
