package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/warren/reconciler/e2e/testenv"
	"github.com/warren/reconciler/pkg/observed"
	"github.com/warren/reconciler/pkg/runtime"
)

// TestRuntimeListCallCount: listing the node costs two containerd calls
// (containers, a streaming call; tasks) with 1 container and with 20.
func TestRuntimeListCallCount(t *testing.T) {
	var calls atomic.Int64
	var mu sync.Mutex
	var methods []string
	count := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		calls.Add(1)
		mu.Lock()
		methods = append(methods, method)
		mu.Unlock()
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	countStream := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		calls.Add(1)
		mu.Lock()
		methods = append(methods, method)
		mu.Unlock()
		return streamer(ctx, desc, cc, method, opts...)
	}
	e := newRT(t, "e2e-rt-count", runtime.WithDialOptions(grpc.WithChainUnaryInterceptor(count), grpc.WithChainStreamInterceptor(countStream)))
	measure := func(task string) int64 {
		t.Helper()
		calls.Store(0)
		mu.Lock()
		methods = nil
		mu.Unlock()
		raws, err := e.rt.List(t.Context(), task)
		if err != nil {
			t.Fatal(err)
		}
		if task == "" && len(raws) == 0 {
			t.Fatal("listed no containers")
		}
		return calls.Load()
	}
	for i := range 20 {
		e.run(testenv.Manifest(fmt.Sprintf("count-%02d", i)))
		if i == 0 || i == 19 {
			_ = measure("") // the first full listing may import the images directory once
			for _, task := range []string{"", "count-00"} {
				if got := measure(task); got != 2 {
					mu.Lock()
					t.Errorf("List(%q) at %d containers: %d calls %v, want 2", task, i+1, got, methods)
					mu.Unlock()
				}
			}
			t.Logf("%d containers: List costs %d calls", i+1, calls.Load())
		}
	}
}

// TestRuntimeWatchExitsAcrossRestart restarts a private containerd under
// running tasks while WatchExits runs: the tasks keep running (same pids),
// WatchExits resubscribes, and an exit after the restart is reported.
func TestRuntimeWatchExitsAcrossRestart(t *testing.T) {
	requireEnv(t)
	dir, err := os.MkdirTemp("", "rcw")
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	m, err := runtime.StartManaged(ctx, dir, "containerd", discard())
	if err != nil {
		t.Fatal(err)
	}
	out := &logBuffer{}
	rt, err := runtime.New(ctx, m.Address(), runtime.WithNamespace("e2e-rt-watch-"+env.run), runtime.WithImagesDir(env.images),
		runtime.WithRuncRoot(runtime.PathsFor(dir).RuncRoot), runtime.WithLogger(out.logger()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c := context.Background()
		if raws, err := rt.List(c, ""); err == nil {
			for _, r := range raws {
				_ = rt.Delete(c, r.ID)
			}
		}
		rt.Close()
		st := time.Now()
		_ = m.Stop(c)
		t.Logf("cleanup: containerd stopped in %s", time.Since(st))
		if t.Failed() {
			t.Logf("runtime log:\n%s", out.String())
			t.Logf("containerd log in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	e := &rtEnv{t: t, rt: rt, out: out}
	steady := e.run(testenv.Manifest("steady"))
	victim := e.run(testenv.Manifest("victim"))
	pids := map[string]uint32{}
	testenv.WaitFor(t, converge, "both running", func() bool {
		raws, err := rt.List(ctx, "")
		if err != nil {
			return false
		}
		for _, r := range raws {
			if r.Status == observed.Running {
				pids[r.ID] = r.Pid
			}
		}
		return len(pids) == 2
	})

	exits := make(chan string, 16)
	wctx, cancel := context.WithCancel(ctx)
	watchDone := make(chan error, 1)
	go func() { watchDone <- rt.WatchExits(wctx, func(id string) { exits <- id }) }()
	defer func() {
		cancel()
		st := time.Now()
		defer func() { t.Logf("WatchExits returned %s after cancel", time.Since(st)) }()
		if err := <-watchDone; err != nil {
			t.Errorf("WatchExits returned %v after cancel, want nil", err)
		}
	}()

	testenv.WaitFor(t, converge, "WatchExits to subscribe", func() bool { return strings.Contains(out.String(), "watching exit events") })
	stopStart := time.Now()
	if err := m.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("containerd stopped in %s", time.Since(stopStart))
	st := time.Now()
	testenv.WaitFor(t, converge, "WatchExits to notice", func() bool { return strings.Contains(out.String(), "exit event stream lost") })
	t.Logf("noticed in %s", time.Since(st))
	st = time.Now()
	m, err = runtime.StartManaged(ctx, dir, "containerd", discard())
	t.Logf("restarted in %s", time.Since(st))
	if err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	testenv.WaitFor(t, 30*time.Second, "WatchExits to resubscribe", func() bool { return strings.Contains(out.String(), "exit events resubscribed") })
	t.Logf("resubscribed %s after containerd served again", time.Since(restarted))

	raws, err := rt.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range raws {
		if r.Status != observed.Running || r.Pid != pids[r.ID] {
			t.Errorf("after the containerd restart %s is %s pid %d, want running pid %d", r.ID, r.Status, r.Pid, pids[r.ID])
		}
	}
	select {
	case id := <-exits:
		t.Fatalf("exit of %s reported though nothing exited", id)
	default:
	}

	if err := syscall.Kill(int(pids[victim]), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	select {
	case id := <-exits:
		t.Logf("exit reported %s after the kill", time.Since(killed))
		if id != victim {
			t.Errorf("exit reported for %s, want %s", id, victim)
		}
	case <-time.After(converge):
		t.Fatal("the exit after the restart was not reported")
	}
	if n := strings.Count(out.String(), "exit event stream lost"); n != 1 {
		t.Errorf("the loss was logged %d times, want once", n)
	}
	_ = steady
}

// TestRuntimeNewSnapshotterLookup: New resolves the namespace's default
// snapshotter once; when containerd cannot answer that lookup, New fails
// and says so, rather than guess a snapshotter. A namespace that does not
// exist yet has no label: the default snapshotter, no error.
func TestRuntimeNewSnapshotterLookup(t *testing.T) {
	requireEnv(t)
	refuse := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if strings.HasSuffix(method, ".Namespaces/Get") {
			return status.Error(codes.Unavailable, "refused by the test")
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	_, err := runtime.New(t.Context(), env.address, runtime.WithNamespace("e2e-rt-snapshotter"),
		runtime.WithDialOptions(grpc.WithChainUnaryInterceptor(refuse)))
	if err == nil || !strings.Contains(err.Error(), "default snapshotter") || !strings.Contains(err.Error(), "refused by the test") {
		t.Fatalf("New with the namespace lookup failing: %v, want an error about the default snapshotter", err)
	}
	rt, err := runtime.New(t.Context(), env.address, runtime.WithNamespace("e2e-rt-snapshotter-new"))
	if err != nil {
		t.Fatalf("New on a namespace that does not exist yet: %v", err)
	}
	rt.Close()
}
