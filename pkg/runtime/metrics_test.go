package runtime

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	cgroup1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	cgroup2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	"github.com/containerd/typeurl/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

func TestStatsCacheReusesWithinTTL(t *testing.T) {
	now := time.Unix(1000, 0)
	calls := 0
	c := &statsCache{ttl: 5 * time.Second, now: func() time.Time { return now }, read: func(context.Context) ([]taskUsage, error) {
		calls++
		return []taskUsage{{task: "web", cpuSeconds: float64(calls)}}, nil
	}}
	first := c.get(t.Context())
	now = now.Add(4 * time.Second)
	second := c.get(t.Context())
	if calls != 1 || second[0].cpuSeconds != first[0].cpuSeconds {
		t.Fatalf("two scrapes within the TTL made %d calls, want 1", calls)
	}
	now = now.Add(time.Second)
	if got := c.get(t.Context()); calls != 2 || got[0].cpuSeconds != 2 {
		t.Fatalf("a scrape after the TTL made %d calls in all (figures %v), want 2", calls, got)
	}
}

func TestStatsCacheKeepsAFailureForTheTTL(t *testing.T) {
	now := time.Unix(1000, 0)
	calls := 0
	c := &statsCache{ttl: 5 * time.Second, now: func() time.Time { return now }, read: func(context.Context) ([]taskUsage, error) {
		calls++
		return []taskUsage{{task: "stale"}}, errors.New("containerd down")
	}}
	for range 3 {
		if got := c.get(t.Context()); got != nil {
			t.Fatalf("figures %v after a failed read, want none", got)
		}
	}
	if calls != 1 {
		t.Fatalf("a failed read was retried %d times within the TTL", calls-1)
	}
}

func TestDecodeUsage(t *testing.T) {
	tests := []struct {
		name     string
		stats    proto.Message
		cpu, mem float64
		wantErr  string
	}{
		{
			name: "cgroup v1: cpuacct ns, usage minus total_inactive_file",
			stats: &cgroup1.Metrics{
				CPU:    &cgroup1.CPUStat{Usage: &cgroup1.CPUUsage{Total: 2_500_000_000}},
				Memory: &cgroup1.MemoryStat{Usage: &cgroup1.MemoryEntry{Usage: 10 << 20}, TotalInactiveFile: 4 << 20, InactiveFile: 1 << 20},
			},
			cpu: 2.5, mem: 6 << 20,
		},
		{
			name:  "cgroup v1: cache larger than usage",
			stats: &cgroup1.Metrics{Memory: &cgroup1.MemoryStat{Usage: &cgroup1.MemoryEntry{Usage: 1 << 20}, TotalInactiveFile: 2 << 20}},
		},
		{name: "cgroup v1: no controllers", stats: &cgroup1.Metrics{}},
		{
			name: "cgroup v2: usage_usec, usage minus inactive_file",
			stats: &cgroup2.Metrics{
				CPU:    &cgroup2.CPUStat{UsageUsec: 1_250_000},
				Memory: &cgroup2.MemoryStat{Usage: 8 << 20, InactiveFile: 3 << 20},
			},
			cpu: 1.25, mem: 5 << 20,
		},
		{name: "cgroup v2: no controllers", stats: &cgroup2.Metrics{}},
		{name: "another type", stats: &cgroup1.CPUUsage{}, wantErr: "unexpected type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data, err := typeurl.MarshalAny(tc.stats)
			if err != nil {
				t.Fatal(err)
			}
			cpu, mem, err := decodeUsage(data)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || cpu != tc.cpu || mem != tc.mem {
				t.Fatalf("decodeUsage = %v s, %v B, %v; want %v s, %v B", cpu, mem, err, tc.cpu, tc.mem)
			}
		})
	}
}

func TestCallErrorsInterceptor(t *testing.T) {
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name  string
		ctx   context.Context
		err   error
		count float64
	}{
		{"success", t.Context(), nil, 0},
		{"not found: an idempotent delete", t.Context(), status.Error(codes.NotFound, "no such container"), 0},
		{"already exists: an idempotent create", t.Context(), status.Error(codes.AlreadyExists, "exists"), 0},
		{"unimplemented: the client probes a newer service", t.Context(), status.Error(codes.Unimplemented, "unknown service containerd.services.mounts.v1.Mounts"), 0},
		{"unavailable", t.Context(), status.Error(codes.Unavailable, "connection refused"), 1},
		{"deadline", t.Context(), status.Error(codes.DeadlineExceeded, "slow"), 1},
		{"cancelled by the caller", cancelled, status.Error(codes.Canceled, "context canceled"), 0},
		{"cancelled, not by the caller", t.Context(), status.Error(codes.Canceled, "canceled"), 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMetrics(prometheus.NewRegistry())
			invoker := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return tc.err }
			if err := m.unaryInterceptor(tc.ctx, "/containerd.services.tasks.v1.Tasks/Get", nil, nil, nil, invoker); err != tc.err {
				t.Fatalf("interceptor returned %v, want the call's %v", err, tc.err)
			}
			if got := testutil.ToFloat64(m.callErrors); got != tc.count {
				t.Errorf("unary: %v errors counted, want %v", got, tc.count)
			}

			m = NewMetrics(prometheus.NewRegistry())
			streamer := func(context.Context, *grpc.StreamDesc, *grpc.ClientConn, string, ...grpc.CallOption) (grpc.ClientStream, error) {
				return nil, tc.err
			}
			if tc.err != nil {
				if _, err := m.streamInterceptor(tc.ctx, &grpc.StreamDesc{}, nil, "/x", streamer); err != tc.err {
					t.Fatalf("stream interceptor returned %v", err)
				}
				if got := testutil.ToFloat64(m.callErrors); got != tc.count {
					t.Errorf("stream open: %v errors counted, want %v", got, tc.count)
				}
			}

			m = NewMetrics(prometheus.NewRegistry())
			fs := &fakeStream{errs: []error{nil, tc.err, tc.err}}
			streamer = func(context.Context, *grpc.StreamDesc, *grpc.ClientConn, string, ...grpc.CallOption) (grpc.ClientStream, error) {
				return fs, nil
			}
			s, err := m.streamInterceptor(tc.ctx, &grpc.StreamDesc{}, nil, "/x", streamer)
			if err != nil {
				t.Fatal(err)
			}
			for range fs.errs {
				_ = s.RecvMsg(nil)
			}
			if got := testutil.ToFloat64(m.callErrors); got != tc.count {
				t.Errorf("stream receive: %v errors counted, want %v (once per stream)", got, tc.count)
			}
		})
	}
}

func TestStreamEndIsNoError(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	fs := &fakeStream{errs: []error{nil, io.EOF}}
	s, _ := m.streamInterceptor(t.Context(), &grpc.StreamDesc{}, nil, "/x",
		func(context.Context, *grpc.StreamDesc, *grpc.ClientConn, string, ...grpc.CallOption) (grpc.ClientStream, error) {
			return fs, nil
		})
	_ = s.RecvMsg(nil)
	_ = s.RecvMsg(nil)
	if got := testutil.ToFloat64(m.callErrors); got != 0 {
		t.Errorf("io.EOF counted as %v errors", got)
	}
}

// fakeStream answers RecvMsg with errs in turn.
type fakeStream struct {
	grpc.ClientStream
	errs []error
}

func (f *fakeStream) RecvMsg(any) error {
	err := f.errs[0]
	f.errs = f.errs[1:]
	return err
}

func TestPullAndOOMCounters(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	m.observePull(2*time.Second, nil)
	m.observePull(time.Second, errors.New("401"))
	m.observePull(time.Second, errors.New("timeout"))
	m.oomKilled()
	if s, e := testutil.ToFloat64(m.pulls.WithLabelValues("success")), testutil.ToFloat64(m.pulls.WithLabelValues("error")); s != 1 || e != 2 {
		t.Errorf("pulls: %v success, %v error; want 1, 2", s, e)
	}
	if n := testutil.CollectAndCount(m.pullDuration); n != 1 {
		t.Errorf("%d duration series", n)
	}
	if got := testutil.ToFloat64(m.oomKills); got != 1 {
		t.Errorf("oom kills %v, want 1", got)
	}

	var nilM *Metrics // records nothing, panics never
	nilM.observePull(time.Second, nil)
	nilM.oomKilled()
	nilM.countCallError(t.Context(), errors.New("x"))
}

func TestCollectorWithoutRuntime(t *testing.T) {
	reg := prometheus.NewRegistry()
	NewMetrics(reg)
	want := `
# HELP reconciler_containerd_connected 1 if containerd answers a health check at scrape time, else 0.
# TYPE reconciler_containerd_connected gauge
reconciler_containerd_connected 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "reconciler_containerd_connected", "reconciler_task_cpu_seconds_total", "reconciler_task_memory_bytes"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(reg, "reconciler_image_pulls_total"); err != nil || n != 2 {
		t.Errorf("pull series before any pull: %d, %v; want success and error at 0", n, err)
	}
}
