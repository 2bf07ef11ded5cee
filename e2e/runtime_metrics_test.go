package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/warren/reconciler/e2e/testenv"
	"github.com/warren/reconciler/pkg/runtime"
)

// TestRuntimeTaskStatsOneCall: the per-task CPU and memory of the running
// owned tasks come from one Metrics call to containerd, and a second scrape
// within the cache TTL makes no call for them at all.
func TestRuntimeTaskStatsOneCall(t *testing.T) {
	var mu sync.Mutex
	calls := map[string]int{}
	count := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		mu.Lock()
		calls[filepath.Base(method)]++
		mu.Unlock()
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	countStream := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		mu.Lock()
		calls[filepath.Base(method)]++
		mu.Unlock()
		return streamer(ctx, desc, cc, method, opts...)
	}
	reg := prometheus.NewRegistry()
	e := newRT(t, "e2e-rt-stats", runtime.WithMetrics(runtime.NewMetrics(reg)),
		runtime.WithDialOptions(grpc.WithChainUnaryInterceptor(count), grpc.WithChainStreamInterceptor(countStream)))
	for _, name := range []string{"stats-a", "stats-b", "stats-c"} {
		e.waitOutput(e.run(testenv.Manifest(name)), "testapp: start")
	}
	done := e.run(testenv.Manifest("stats-done", testenv.EnvSpec("EXIT_AFTER", "10ms"), "restartPolicy: Never"))
	e.exitStatus(done)

	mu.Lock()
	clear(calls)
	mu.Unlock()
	for range 2 {
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var tasks []string
		for _, f := range fams {
			if f.GetName() != "reconciler_task_memory_bytes" {
				continue
			}
			for _, m := range f.Metric {
				if m.GetGauge().GetValue() <= 0 {
					t.Errorf("memory of %v is %v", m.Label, m.GetGauge().GetValue())
				}
				tasks = append(tasks, m.Label[0].GetValue())
			}
		}
		slices.Sort(tasks)
		if want := []string{"stats-a", "stats-b", "stats-c"}; !slices.Equal(tasks, want) {
			t.Errorf("memory series for %v, want the running tasks %v", tasks, want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if calls["Metrics"] != 1 || calls["ListStream"]+calls["List"] != 2 || calls["Check"] != 2 {
		t.Errorf("two scrapes made calls %v; want in all 1 Metrics and 2 listings (containers, tasks), and one health Check each", calls)
	}
}

// TestRuntimeMetricsDaemon scrapes the daemon's runtime metrics: task CPU
// and memory, the containerd connection, a pull (an IfNotPresent miss) and
// an OOM kill; normal work counts no failed containerd call.
func TestRuntimeMetricsDaemon(t *testing.T) {
	reg := testenv.StartRegistry(t, "carol", "secret")
	reg.Push(env.archive, "e2e/metrics:v1")
	cfg := filepath.Join(t.TempDir(), "config.json")
	testenv.WriteDockerConfig(t, cfg, reg.Host, "carol", "secret")
	n := newNode(t, "e2e-rt-metrics")
	dir := t.TempDir()
	port := freePort(t)
	startReconciler(t, n.ns, dir, "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--registry-config", cfg)
	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)

	fams := scrape(t, url)
	if v := value(fams, "reconciler_containerd_connected", nil); v != 1 {
		t.Errorf("reconciler_containerd_connected = %v, want 1", v)
	}
	if v := value(fams, "reconciler_image_pulls_total", map[string]string{"result": "success"}); v != 0 {
		t.Errorf("pulls before any task: %v", v)
	}

	testenv.WriteFile(t, dir, "web.yaml", testenv.WithImage(testenv.Manifest("web", "imagePullPolicy: IfNotPresent"), reg.Host+"/e2e/metrics:v1"))
	testenv.WaitFor(t, converge, "web running", func() bool { _, ok := n.running("web"); return ok })
	web := map[string]string{"task": "web"}
	testenv.WaitFor(t, converge, "memory of web in the metrics", func() bool {
		fams = scrape(t, url)
		return value(fams, "reconciler_task_memory_bytes", web) > 0
	})
	if v := value(fams, "reconciler_task_cpu_seconds_total", web); v < 0 {
		t.Errorf("reconciler_task_cpu_seconds_total{task=web} missing")
	}
	if v := value(fams, "reconciler_image_pulls_total", map[string]string{"result": "success"}); v != 1 {
		t.Errorf("reconciler_image_pulls_total{result=success} = %v, want 1 (the IfNotPresent miss)", v)
	}
	if v := value(fams, "reconciler_image_pull_duration_seconds", nil); v != 1 {
		t.Errorf("reconciler_image_pull_duration_seconds count = %v, want 1", v)
	}

	testenv.WriteFile(t, dir, "hog.yaml", testenv.Manifest("hog", testenv.EnvSpec("ALLOC_MIB", "256"), "resources: {memory: 32Mi}", "restartPolicy: Never"))
	testenv.WaitFor(t, converge, "an OOM kill counted", func() bool {
		fams = scrape(t, url)
		return value(fams, "reconciler_oom_kills_total", nil) >= 1
	})
	if v := value(fams, "reconciler_task_memory_bytes", map[string]string{"task": "hog"}); v != -1 {
		t.Errorf("the OOM-killed hog still has a memory series: %v", v)
	}
	if v := value(fams, "reconciler_containerd_call_errors_total", nil); v != 0 {
		t.Errorf("reconciler_containerd_call_errors_total = %v after normal work, want 0", v)
	}
}
