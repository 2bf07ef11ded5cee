package webui

import (
	"context"
	"sync"
	"time"

	"github.com/warren/reconciler/pkg/clock"
	"github.com/warren/reconciler/pkg/health"
	"github.com/warren/reconciler/pkg/observed"
	"github.com/warren/reconciler/pkg/reconcile"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// fakeStatus is a StatusSource a test sets.
type fakeStatus struct {
	mu      sync.Mutex
	st      Status
	changed chan struct{}
}

func newFakeStatus(st Status) *fakeStatus { return &fakeStatus{st: st, changed: make(chan struct{})} }

func (f *fakeStatus) Status() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func (f *fakeStatus) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

// set changes the status and tells the watchers, as the controller does.
func (f *fakeStatus) set(change func(*Status)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	tasks := append([]reconcile.TaskStatus(nil), f.st.Tasks...)
	f.st.Tasks = tasks
	change(&f.st)
	close(f.changed)
	f.changed = make(chan struct{})
}

type fakeSpecs map[string]string

func (f fakeSpecs) Spec(task string) (string, bool) {
	s, ok := f[task]
	return s, ok
}

// fakeLogs has the lines of each task; Follow gives the last n, then the
// lines sent on more until ctx is done.
type fakeLogs struct {
	lines map[string][]string
	more  chan string
}

func (f *fakeLogs) Tail(task string, n int) ([]string, error) {
	l := f.lines[task]
	return l[max(0, len(l)-n):], nil
}

func (f *fakeLogs) Follow(ctx context.Context, task string, n int, line func(string) bool) error {
	tail, _ := f.Tail(task, n)
	for _, l := range tail {
		if !line(l) {
			return nil
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case l := <-f.more:
			if !line(l) {
				return nil
			}
		}
	}
}

type fakeUsage struct {
	mu sync.Mutex
	u  map[string]Usage
}

func (f *fakeUsage) Usage() map[string]Usage {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.u
}

// node is a status with a bit of everything.
func node() Status {
	code := 1
	return Status{
		Tasks: []reconcile.TaskStatus{
			{Name: "web", Phase: reconcile.PhaseRunning, Message: "running", Restarts: 2, Image: "localhost/reconciler/testapp:v1",
				ContainerID: "web-2517b65ad988", SpecHash: "2517b65ad988", Source: "web.yaml", StartedAt: t0.Add(-3 * time.Minute),
				LastTransition: t0.Add(-3 * time.Minute), Health: reconcile.HealthStatus{State: health.Healthy, Check: "http :8080/ every 10s"}},
			{Name: "job", Phase: reconcile.PhaseCrashLoopBackOff, Message: "back-off 20s restarting failed container", Restarts: 5,
				Image: "localhost/reconciler/testapp:v1", ExitCode: &code, NextRetry: t0.Add(20 * time.Second)},
			{Name: "duo-setup", Phase: reconcile.PhaseCompleted, Message: "exited with code 0", Pod: "duo", InitContainer: true, Image: "busybox"},
			{Name: "duo-server", Phase: reconcile.PhaseRunning, Message: "running", Pod: "duo", Image: "nginx:1.27", StartedAt: t0.Add(-time.Hour),
				RolledBack: reconcile.RollbackStatus{RefusedHash: "dd850a8cb2b4", Reason: "exited with code 1, 3 times in 7s", At: t0.Add(-time.Minute)}},
		},
		Unmanaged: []observed.Unmanaged{{ID: "stray", Reason: "no ownership label"}},
		Manifests: reconcile.ManifestStatus{Broken: map[string]string{"bad.yaml": "bad.yaml:3: metadata.name: must be a DNS-1123 label"}},
		Source:    &Source{URL: "ssh://git@git.example.com/fleet.git", Commit: "0123456789abcdef0123", RefName: "refs/heads/main", AppliedAt: t0.Add(-time.Minute)},
	}
}

func newTestHandler(st *fakeStatus, opts ...func(*Config)) (*Handler, *clock.Fake) {
	clk := clock.NewFake(t0)
	cfg := Config{Status: st, Clock: clk, Title: "edge-1",
		Specs: fakeSpecs{"web": "apiVersion: warren/v1\nkind: Task\nmetadata:\n  name: web\nspec:\n  image: localhost/reconciler/testapp:v1\n"},
		Logs:  &fakeLogs{lines: map[string][]string{"web": {"testapp: start pid=1", "testapp: tick 1"}}, more: make(chan string)},
	}
	for _, o := range opts {
		o(&cfg)
	}
	return New(cfg), clk
}
