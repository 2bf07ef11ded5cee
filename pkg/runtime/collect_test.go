package runtime

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	containersapi "github.com/containerd/containerd/api/services/containers/v1"
	eventsapi "github.com/containerd/containerd/api/services/events/v1"
	leasesapi "github.com/containerd/containerd/api/services/leases/v1"
	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/warren/reconciler/pkg/desired"
)

func TestMayHaveTakenEffect(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{status.Error(codes.NotFound, "lease x: not found"), false},
		{status.Error(codes.AlreadyExists, "container x: already exists"), false},
		{status.Error(codes.InvalidArgument, "bad filter"), false},
		{status.Error(codes.FailedPrecondition, "snapshot in use"), false},
		{status.Error(codes.Unavailable, "transport is closing"), true},
		{status.Error(codes.DeadlineExceeded, "context deadline exceeded"), true},
		{status.Error(codes.Canceled, "context canceled"), true},
		{status.Error(codes.Unknown, "EOF"), true},
		{status.Error(codes.Internal, "boltdb"), true},
		{context.DeadlineExceeded, true},
		{errors.New("connection reset by peer"), true},
	} {
		if got := mayHaveTakenEffect(tc.err); got != tc.want {
			t.Errorf("mayHaveTakenEffect(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// fakeContainerd serves, on a unix socket, the few containerd services a
// create's lease and a collection use. Its lease service can commit a
// lease and then answer as if containerd had gone away before replying.
type fakeContainerd struct {
	leasesapi.UnimplementedLeasesServer

	mu         sync.Mutex
	leases     map[string]map[string]string // ID -> labels
	createErr  error                        // returned by Create after it committed the lease
	leaseLists int
	subscribed chan struct{}
	stop       func() // stops the server serve started last
}

func (f *fakeContainerd) Create(_ context.Context, req *leasesapi.CreateRequest) (*leasesapi.CreateResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.leases[req.ID] = req.Labels
	if f.createErr != nil {
		return nil, f.createErr
	}
	return &leasesapi.CreateResponse{Lease: &leasesapi.Lease{ID: req.ID, Labels: req.Labels}}, nil
}

func (f *fakeContainerd) List(_ context.Context, _ *leasesapi.ListRequest) (*leasesapi.ListResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.leaseLists++
	var out []*leasesapi.Lease
	for id, labels := range f.leases {
		out = append(out, &leasesapi.Lease{ID: id, Labels: labels})
	}
	return &leasesapi.ListResponse{Leases: out}, nil
}

func (f *fakeContainerd) Delete(_ context.Context, req *leasesapi.DeleteRequest) (*emptypb.Empty, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.leases[req.ID]; !ok {
		return nil, status.Errorf(codes.NotFound, "lease %s: not found", req.ID)
	}
	delete(f.leases, req.ID)
	return &emptypb.Empty{}, nil
}

func (f *fakeContainerd) leaseIDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for id := range f.leases {
		ids = append(ids, id)
	}
	return ids
}

func (f *fakeContainerd) lists() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.leaseLists
}

// fakeSnapshots has no snapshot.
type fakeSnapshots struct {
	snapshotsapi.UnimplementedSnapshotsServer
}

func (fakeSnapshots) List(*snapshotsapi.ListSnapshotsRequest, snapshotsapi.Snapshots_ListServer) error {
	return nil
}

// fakeContainers has no container.
type fakeContainers struct {
	containersapi.UnimplementedContainersServer
}

func (fakeContainers) List(context.Context, *containersapi.ListContainersRequest) (*containersapi.ListContainersResponse, error) {
	return &containersapi.ListContainersResponse{}, nil
}

// fakeEvents signals each subscription and sends no event.
type fakeEvents struct {
	eventsapi.UnimplementedEventsServer
	f *fakeContainerd
}

func (e fakeEvents) Subscribe(_ *eventsapi.SubscribeRequest, s eventsapi.Events_SubscribeServer) error {
	f := e.f
	select {
	case f.subscribed <- struct{}{}:
	default:
	}
	<-s.Context().Done()
	return nil
}

// serve starts a gRPC server of f on socket.
func (f *fakeContainerd) serve(t *testing.T, socket string) {
	t.Helper()
	_ = os.Remove(socket)
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	healthpb.RegisterHealthServer(s, health.NewServer())
	leasesapi.RegisterLeasesServer(s, f)
	snapshotsapi.RegisterSnapshotsServer(s, fakeSnapshots{})
	containersapi.RegisterContainersServer(s, fakeContainers{})
	eventsapi.RegisterEventsServer(s, fakeEvents{f: f})
	go func() { _ = s.Serve(l) }()
	f.stop = s.Stop
}

func newFakeContainerd(t *testing.T) (*fakeContainerd, *Runtime, string) {
	t.Helper()
	f := &fakeContainerd{leases: map[string]map[string]string{}, subscribed: make(chan struct{}, 1)}
	socket := filepath.Join(t.TempDir(), "containerd.sock")
	f.serve(t, socket)
	t.Cleanup(func() { f.stop() })
	r, err := New(t.Context(), socket, WithSnapshotter("overlayfs"), WithNamespace("test"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	if err := r.Collect(t.Context()); err != nil { // the first always looks
		t.Fatal(err)
	}
	return f, r, socket
}

// TestCollectAfterLeaseCreateCommittedThenFailed: containerd makes the
// create's lease and goes away before it answers. The create fails, and the
// next Collect removes the lease nobody holds.
func TestCollectAfterLeaseCreateCommittedThenFailed(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"unavailable", status.Error(codes.Unavailable, "error reading from server: EOF")},
		{"deadline", status.Error(codes.DeadlineExceeded, "context deadline exceeded")},
		{"unknown", status.Error(codes.Unknown, "transport is closing")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, r, _ := newFakeContainerd(t)
			f.createErr = tc.err
			task := desired.Task{Metadata: desired.Metadata{Name: "web"}, Spec: desired.Spec{Image: "localhost/app:v1"}}
			err := r.Create(t.Context(), "web-0123456789ab", task, nil)
			if err == nil || !strings.Contains(err.Error(), "create lease: ") {
				t.Fatalf("create: %v, want a failed lease create (%v)", err, tc.err)
			}
			if ids := f.leaseIDs(); len(ids) != 1 {
				t.Fatalf("leases after the failed create: %v, want the one containerd committed", ids)
			}
			lists := f.lists()
			if err := r.Collect(t.Context()); err != nil {
				t.Fatal(err)
			}
			if f.lists() == lists {
				t.Fatal("Collect did not look after a call that may have taken effect")
			}
			if ids := f.leaseIDs(); len(ids) != 0 {
				t.Fatalf("leases left after Collect: %v", ids)
			}
		})
	}
}

// TestCollectNotDueAfterDefiniteAnswer: an error that is containerd's own
// answer proves nothing was made; the next Collect costs nothing.
func TestCollectNotDueAfterDefiniteAnswer(t *testing.T) {
	f, r, _ := newFakeContainerd(t)
	f.createErr = status.Error(codes.InvalidArgument, "bad label")
	if err := r.Create(t.Context(), "web-0123456789ab", desired.Task{Metadata: desired.Metadata{Name: "web"}, Spec: desired.Spec{Image: "localhost/app:v1"}}, nil); err == nil {
		t.Fatal("create succeeded")
	}
	lists := f.lists()
	if err := r.Collect(t.Context()); err != nil {
		t.Fatal(err)
	}
	if f.lists() != lists {
		t.Fatal("Collect looked after a definite answer")
	}
}

// TestCollectDueAfterContainerdRestart: once the exit event stream comes
// back from a containerd restart, the next Collect looks.
func TestCollectDueAfterContainerdRestart(t *testing.T) {
	f, r, socket := newFakeContainerd(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.WatchExits(ctx, func(string) {}) }()
	t.Cleanup(func() { cancel(); <-done })
	waitSubscribed := func(what string) {
		t.Helper()
		select {
		case <-f.subscribed:
		case <-time.After(30 * time.Second):
			t.Fatalf("no subscription %s", what)
		}
	}
	waitSubscribed("at start")
	// Nothing due: a Collect now does not look.
	lists := f.lists()
	if err := r.Collect(t.Context()); err != nil {
		t.Fatal(err)
	}
	if f.lists() != lists {
		t.Fatal("Collect looked with nothing due")
	}
	// containerd restarts: a new server on the same socket.
	f.stop()
	f.serve(t, socket)
	waitSubscribed("after the restart")
	if err := r.Collect(t.Context()); err != nil {
		t.Fatal(err)
	}
	if f.lists() == lists {
		t.Fatal("Collect did not look after containerd came back")
	}
}
