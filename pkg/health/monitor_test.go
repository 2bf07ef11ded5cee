package health

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warren/reconciler/pkg/clock"
	"github.com/warren/reconciler/pkg/desired"
)

// script is a fake exec: each call takes the next result (the last one
// repeats) and is recorded with the clock's time.
type script struct {
	mu      sync.Mutex
	clock   *clock.Fake
	results []ExecResult
	errs    []error
	calls   []time.Time
}

func (s *script) exec(_ context.Context, _ string, _ []string, _ time.Duration) (ExecResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := min(len(s.calls), len(s.results)-1)
	s.calls = append(s.calls, s.clock.Now())
	var err error
	if i < len(s.errs) {
		err = s.errs[i]
	}
	return s.results[i], err
}

var (
	passed   = ExecResult{ExitCode: 0, Output: []byte("ok\n")}
	failed   = ExecResult{ExitCode: 1, Output: []byte("dial: connection refused\n")}
	timedOut = ExecResult{TimedOut: true}
)

func execCheck(retries int, interval, startPeriod time.Duration) Check {
	return Check{Kind: KindExec, Command: []string{"check"}, Interval: interval, Timeout: 2 * time.Second,
		Retries: retries, StartPeriod: startPeriod, Source: SourceManifest}
}

// TestMonitorStates: the health a sequence of probe results gives, probe
// by probe, with the start period and the retries.
func TestMonitorStates(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name        string
		check       Check
		results     []ExecResult
		errs        []error
		probes      int     // probes to run (one interval apart)
		want        []State // after each probe
		wantStreak  int     // after the last
		wantReason  string  // after the last
		wantChanged int     // Changed calls
		startProbes int     // when set, the start period ends between probe startProbes and the next
	}{
		{name: "healthy at the first success", check: execCheck(3, 10*time.Second, 0), results: []ExecResult{passed},
			probes: 2, want: []State{Healthy, Healthy}, wantChanged: 1},
		{name: "unhealthy after retries failures in a row", check: execCheck(3, 10*time.Second, 0),
			results: []ExecResult{passed, failed, failed, failed}, probes: 4, want: []State{Healthy, Healthy, Healthy, Unhealthy},
			wantStreak: 3, wantReason: `3 probes failed: exec exit 1: "dial: connection refused"`, wantChanged: 2},
		{name: "a success resets the streak", check: execCheck(2, 10*time.Second, 0),
			results: []ExecResult{failed, passed, failed, passed}, probes: 4, want: []State{Starting, Healthy, Healthy, Healthy}, wantChanged: 1},
		{name: "failures within the start period do not count", check: execCheck(1, 10*time.Second, 0), startProbes: 3,
			results: []ExecResult{failed}, probes: 4, want: []State{Starting, Starting, Starting, Unhealthy},
			wantStreak: 1, wantReason: `1 probes failed: exec exit 1: "dial: connection refused"`, wantChanged: 1},
		{name: "a success ends the start period early", check: execCheck(1, 10*time.Second, time.Hour),
			results: []ExecResult{failed, passed, failed}, probes: 3, want: []State{Starting, Healthy, Unhealthy}, wantStreak: 1,
			wantReason: `1 probes failed: exec exit 1: "dial: connection refused"`, wantChanged: 2},
		{name: "a timeout is a failure", check: execCheck(1, 10*time.Second, 0), results: []ExecResult{timedOut}, probes: 1,
			want: []State{Unhealthy}, wantStreak: 1, wantReason: "1 probes failed: exec timed out after 2s", wantChanged: 1},
		{name: "an exec that cannot run says nothing", check: execCheck(2, 10*time.Second, 0), results: []ExecResult{{}, {}, passed},
			errs: []error{errors.New("containerd: connection refused"), errors.New("no space left on device")}, probes: 3,
			want: []State{Starting, Starting, Healthy}, wantChanged: 1},
		{name: "an exec that cannot run neither counts nor resets", check: execCheck(2, 10*time.Second, 0),
			results: []ExecResult{failed, {}, failed}, errs: []error{nil, errors.New("containerd: connection refused")}, probes: 3,
			want: []State{Starting, Starting, Unhealthy}, wantStreak: 2, wantReason: `2 probes failed: exec exit 1: "dial: connection refused"`, wantChanged: 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			clk := clock.NewFake(t0)
			if c.startProbes > 0 {
				// The probes come at 0, then on the task's slot: the start
				// period ends half an interval after probe startProbes.
				at := t0
				for range c.startProbes - 1 {
					at = at.Add(nextProbe("web", c.check.Interval, at))
				}
				c.check.StartPeriod = at.Sub(t0) + c.check.Interval/2
			}
			s := &script{clock: clk, results: c.results, errs: c.errs}
			var changed int
			m := NewMonitor(Config{Exec: s.exec, Clock: clk, Changed: func(string) { changed++ },
				Jitter: func(time.Duration) time.Duration { return 0 }})
			defer m.Close()
			m.Set("web", &Target{Task: "web", ContainerID: "web-1", Check: c.check, StartedAt: t0})
			if st, _ := m.Status("web"); st.State != Starting || st.Source != SourceManifest {
				t.Fatalf("before any probe: %+v, want starting, from the manifest", st)
			}
			var got []State
			for i := range c.probes {
				if i == 0 {
					clk.Step(0)
				} else {
					stepToNext(t, clk)
				}
				st, _ := m.Status("web")
				got = append(got, st.State)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("states %v, want %v", got, c.want)
			}
			if len(s.calls) != c.probes {
				t.Errorf("%d probes, want %d", len(s.calls), c.probes)
			}
			st, _ := m.Status("web")
			if st.Streak != c.wantStreak || st.Reason != c.wantReason {
				t.Errorf("streak %d reason %q, want %d %q", st.Streak, st.Reason, c.wantStreak, c.wantReason)
			}
			if changed != c.wantChanged {
				t.Errorf("Changed called %d times, want %d", changed, c.wantChanged)
			}
			if st.State == Unhealthy {
				clk.Step(time.Hour)
				if len(s.calls) != c.probes {
					t.Errorf("probed %d more times once unhealthy", len(s.calls)-c.probes)
				}
			}
		})
	}
}

// TestMonitorTargets: the same target again changes nothing; a restart or
// a new container starts over; nil stops the probes.
func TestMonitorTargets(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := clock.NewFake(t0)
	s := &script{clock: clk, results: []ExecResult{passed}}
	m := NewMonitor(Config{Exec: s.exec, Clock: clk, Jitter: func(time.Duration) time.Duration { return 0 }})
	defer m.Close()
	target := Target{Task: "web", ContainerID: "web-1", Check: execCheck(3, 10*time.Second, 0), StartedAt: t0}
	m.Set("web", &target)
	clk.Step(0)
	m.Set("web", &target)
	if st, _ := m.Status("web"); st.State != Healthy {
		t.Fatalf("the same target again reset it: %+v", st)
	}
	restarted := target
	restarted.StartedAt = t0.Add(time.Minute)
	m.Set("web", &restarted)
	if st, _ := m.Status("web"); st.State != Starting {
		t.Fatalf("after a restart: %+v, want starting", st)
	}
	m.Set("web", nil)
	if _, ok := m.Status("web"); ok {
		t.Fatal("still probed after Set(nil)")
	}
	n := len(s.calls)
	clk.Step(time.Hour)
	if len(s.calls) != n {
		t.Errorf("%d probes after Set(nil)", len(s.calls)-n)
	}
}

// TestMonitorSpreadsFirstProbes: 100 targets set at once are first probed
// at the points the jitter gives, within the first second.
func TestMonitorSpreadsFirstProbes(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := clock.NewFake(t0)
	s := &script{clock: clk, results: []ExecResult{passed}}
	var asked []time.Duration
	m := NewMonitor(Config{Exec: s.exec, Clock: clk, ExecSlots: 100, Jitter: func(n time.Duration) time.Duration {
		asked = append(asked, n)
		return n * time.Duration(len(asked)%100) / 100
	}})
	defer m.Close()
	for i := range 100 {
		task := "t" + strings.Repeat("x", i)
		m.Set(task, &Target{Task: task, ContainerID: task + "-1", Check: execCheck(3, 10*time.Second, 0), StartedAt: t0})
	}
	clk.Step(time.Second)
	if len(s.calls) != 100 {
		t.Fatalf("%d first probes in the first second, want 100", len(s.calls))
	}
	distinct := map[time.Time]bool{}
	for _, at := range s.calls {
		distinct[at] = true
	}
	if len(distinct) < 90 {
		t.Errorf("first probes at %d distinct times, want them spread", len(distinct))
	}
	if asked[0] != time.Second {
		t.Errorf("first probe jitter over %s, want 1s (min of interval and 1s)", asked[0])
	}
}

// TestFromSpec: a manifest's or an image's check with its defaults; a
// disabled one or none is no check.
func TestFromSpec(t *testing.T) {
	for _, c := range []struct {
		name string
		h    *desired.HealthCheck
		want string // Check.String; "" for none
	}{
		{"none", nil, ""},
		{"disabled", &desired.HealthCheck{Disabled: true}, ""},
		{"http defaults", &desired.HealthCheck{HTTP: &desired.HTTPProbe{Port: 8080}}, "http :8080/ every 10s (timeout 2s, 3 retries; from the manifest)"},
		{"tcp", &desired.HealthCheck{TCP: &desired.TCPProbe{Port: 5432}, Retries: 5, StartPeriod: &desired.Duration{Duration: time.Minute}},
			"tcp :5432 every 10s (timeout 2s, 5 retries, start period 1m0s; from the manifest)"},
		{"exec", &desired.HealthCheck{Exec: &desired.ExecProbe{Command: []string{"pg_isready", "-q"}}, Interval: &desired.Duration{Duration: time.Second}},
			"exec pg_isready -q every 1s (timeout 2s, 3 retries; from the manifest)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok := FromSpec(c.h, SourceManifest)
			if (c.want == "") == ok || (ok && got.String() != c.want) {
				t.Errorf("FromSpec = %q, %v; want %q", got.String(), ok, c.want)
			}
		})
	}
}

// stepToNext moves the fake clock to its next timer.
func stepToNext(t *testing.T, clk *clock.Fake) {
	t.Helper()
	p := clk.Pending()
	if len(p) == 0 {
		t.Fatal("no timer pending")
	}
	next := slices.MinFunc(p, func(a, b time.Time) int { return a.Compare(b) })
	clk.Step(next.Sub(clk.Now()))
}

// TestNextProbe: probes land on a shared grid of ticks, each task in its
// slot; once in it, exactly one interval apart; never before now, never
// further than half an interval from now+interval.
func TestNextProbe(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 123456789, time.UTC)
	for _, interval := range []time.Duration{300 * time.Millisecond, time.Second, 10 * time.Second, 15 * time.Second, 90 * time.Second} {
		slots := max(4, interval/time.Second)
		q := interval / slots
		ticks := map[int64]int{}
		for i := range 200 {
			task := fmt.Sprintf("task-%d", i)
			now := t0.Add(time.Duration(i) * 7919 * time.Microsecond)
			var fires []time.Time
			for range 5 {
				d := nextProbe(task, interval, now)
				if d <= 0 || d < interval/2-q || d > interval+interval/2+q {
					t.Fatalf("%s every %s: next probe in %s after %s", task, interval, d, now)
				}
				now = now.Add(d)
				fires = append(fires, now)
			}
			for j, at := range fires {
				if at.UnixNano()%int64(q) != 0 {
					t.Fatalf("%s every %s: probe at %s, off the grid of %s", task, interval, at, q)
				}
				if j > 0 && at.Sub(fires[j-1]) != interval {
					t.Fatalf("%s every %s: probes %s apart once in its slot", task, interval, at.Sub(fires[j-1]))
				}
			}
			ticks[fires[4].UnixNano()/int64(q)%int64(slots)]++
		}
		if len(ticks) < int(slots)*3/4 { // a hash: 200 tasks fill 90 slots but for a few
			t.Errorf("every %s: 200 tasks in %d of %d slots", interval, len(ticks), slots)
		}
	}
}
