package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/oci"
	"google.golang.org/grpc"

	"github.com/warren/reconciler/e2e/imagebuild"
	"github.com/warren/reconciler/e2e/testenv"
	"github.com/warren/reconciler/pkg/observed"
	"github.com/warren/reconciler/pkg/runtime"
)

// TestRuntimeTaskListingAsksOnlyItsTasks: a task's listing gets that task's
// containers' tasks one by one instead of listing every task of the node
// (which containerd answers by calling every shim), and still reports each
// container's state: running with its pid, exited with its code, no task;
// once a full listing was made, it reads the task's containers by ID.
func TestRuntimeTaskListingAsksOnlyItsTasks(t *testing.T) {
	var mu sync.Mutex
	var methods []string
	count := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		mu.Lock()
		methods = append(methods, method)
		mu.Unlock()
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	countStream := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		mu.Lock()
		methods = append(methods, method)
		mu.Unlock()
		return streamer(ctx, desc, cc, method, opts...)
	}
	e := newRT(t, "e2e-rt-tasklist", runtime.WithDialOptions(grpc.WithChainUnaryInterceptor(count), grpc.WithChainStreamInterceptor(countStream)))
	for i := range 8 {
		e.run(testenv.Manifest(fmt.Sprintf("other-%d", i)))
	}
	running := e.run(testenv.Manifest("running"))
	exited := e.run(testenv.Manifest("exited", testenv.EnvSpec("EXIT_AFTER", "10ms", "EXIT_CODE", "3")))
	if code := e.exitStatus(exited); code != 3 {
		t.Fatalf("exit status %d, want 3", code)
	}
	created, err := e.create(testenv.Manifest("created"))
	if err != nil {
		t.Fatal(err)
	}

	// A full listing also imports the images directory's archives that are
	// new to this runtime; when the namespace kept the image from an earlier
	// run (go test -count=N), nothing above needed them yet. Import them now
	// so the listings below count listing calls alone.
	if err := e.rt.ImportArchives(t.Context()); err != nil {
		t.Fatal(err)
	}
	list := func(task string) ([]observed.Raw, []string) {
		t.Helper()
		mu.Lock()
		methods = nil
		mu.Unlock()
		raws, err := e.rt.List(t.Context(), task)
		if err != nil {
			t.Fatalf("List(%q): %v", task, err)
		}
		mu.Lock()
		defer mu.Unlock()
		return raws, slices.Clone(methods)
	}
	for _, c := range []struct {
		task, id string
		status   observed.Status
		code     uint32
	}{
		{"running", running, observed.Running, 0},
		{"exited", exited, observed.Stopped, 3},
		{"created", created, observed.NoTask, 0},
	} {
		raws, calls := list(c.task)
		if len(raws) != 1 || raws[0].ID != c.id {
			t.Fatalf("List(%q) = %+v, want only %s", c.task, raws, c.id)
		}
		r := raws[0]
		if r.Status != c.status || r.ExitCode != c.code || (c.status == observed.Running && r.Pid == 0) {
			t.Errorf("List(%q): status %s, exit code %d, pid %d; want %s, %d", c.task, r.Status, r.ExitCode, r.Pid, c.status, c.code)
		}
		if len(calls) != 2 || slices.ContainsFunc(calls, func(m string) bool { return m == "/containerd.services.tasks.v1.Tasks/List" }) {
			t.Errorf("List(%q) made calls %v, want the containers' listing and one task get", c.task, calls)
		}
	}
	// The full listing is still two calls, and agrees.
	raws, calls := list("")
	if len(calls) != 2 || len(raws) != 11 {
		t.Errorf("List(\"\"): %d containers in calls %v, want 11 in 2", len(raws), calls)
	}
	for _, r := range raws {
		if r.ID == exited && (r.Status != observed.Stopped || r.ExitCode != 3) {
			t.Errorf("full listing: %s is %s with %d", r.ID, r.Status, r.ExitCode)
		}
	}

	// From then on a task's listing reads its containers by ID (containerd
	// filters a listing by reading every container): the same answers.
	const get, taskGet = "/containerd.services.containers.v1.Containers/Get", "/containerd.services.tasks.v1.Tasks/Get"
	for _, c := range []struct {
		task, id string
		status   observed.Status
	}{{"running", running, observed.Running}, {"exited", exited, observed.Stopped}, {"created", created, observed.NoTask}} {
		raws, calls := list(c.task)
		if len(raws) != 1 || raws[0].ID != c.id || raws[0].Status != c.status {
			t.Errorf("List(%q) after a full listing = %+v, want only %s, %s", c.task, raws, c.id, c.status)
		}
		if !slices.Equal(calls, []string{get, taskGet}) {
			t.Errorf("List(%q) after a full listing made calls %v, want a container get and a task get", c.task, calls)
		}
	}
	// A task with no container costs no call.
	if raws, calls := list("nothing"); len(raws) != 0 || len(calls) != 0 {
		t.Errorf("List(\"nothing\") = %v in calls %v, want nothing in none", raws, calls)
	}
	// A container deleted behind the runtime's back is seen gone at once.
	if err := e.n.client.ContainerService().Delete(t.Context(), created); err != nil {
		t.Fatal(err)
	}
	if raws, _ := list("created"); len(raws) != 0 {
		t.Errorf("List(\"created\") after its container was deleted = %+v, want none", raws)
	}
	// One created on a task's IDs by another client is seen from the next
	// full listing on (the daemon's resync), and a create of this ID by the
	// runtime never takes it over.
	img, err := e.n.client.GetImage(t.Context(), imagebuild.DefaultRef)
	if err != nil {
		t.Fatal(err)
	}
	task := parseTask(t, testenv.Manifest("squatted"))
	squatter := observed.ContainerID("squatted", task.Hash())
	if _, err := e.n.client.NewContainer(t.Context(), squatter, containerd.WithImage(img), containerd.WithNewSnapshot(squatter, img),
		containerd.WithNewSpec(oci.WithImageConfig(img))); err != nil {
		t.Fatal(err)
	}
	if _, err := e.create(testenv.Manifest("squatted")); err == nil || !strings.Contains(err.Error(), "is not this task's") {
		t.Errorf("Create on an ID another client holds: %v, want an error saying it is not the task's", err)
	}
	if c, err := e.n.client.LoadContainer(t.Context(), squatter); err != nil {
		t.Errorf("the other client's container: %v", err)
	} else if labels, _ := c.Labels(t.Context()); labels[observed.LabelManagedBy] != "" {
		t.Errorf("the other client's container was changed: labels %v", labels)
	}
	list("")
	if raws, _ := list("squatted"); len(raws) != 1 || raws[0].ID != squatter {
		t.Errorf("List(\"squatted\") after the next full listing = %+v, want the other client's %s", raws, squatter)
	}
}
