package reconcile

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warren/reconciler/pkg/desired"
	"github.com/warren/reconciler/pkg/observed"
)

// fakeRuntime is an in-memory Runtime that behaves like the containerd one
// where the controller can tell: Create of an existing id is success, Stop and
// Delete of a missing container are success, Start of a missing container is
// an error, List filters by the task label. It records every call in order and
// can be told to fail or to block a given operation on a given id.
type fakeRuntime struct {
	mu         sync.Mutex
	containers map[string]observed.Raw
	calls      []fakeCall
	errs       map[fakeKey]error
	blocks     map[fakeKey]chan struct{}
	digests    map[string]string // image ref -> digest its tag points at (Pull, Create)
	pulls      int
	unprepared map[string]error // image ref -> what Prepare answers for it
	prepares   int
	now        func() time.Time // when a Stop makes a task exit; default time.Now
}

var (
	_ Runtime  = (*fakeRuntime)(nil)
	_ Preparer = (*fakeRuntime)(nil)
)

// opList is how List calls are recorded; its id is the task filter.
const opList Op = "list"

type fakeCall struct {
	Op Op
	ID string // container id; the task filter for opList
}

func (c fakeCall) String() string { return string(c.Op) + " " + c.ID }

type fakeKey struct {
	op Op
	id string
}

// errFakeNotFound is what Start returns for a missing container.
var errFakeNotFound = errors.New("not found")

func newFakeRuntime() *fakeRuntime {
	return &fakeRuntime{
		containers: map[string]observed.Raw{},
		errs:       map[fakeKey]error{},
		blocks:     map[fakeKey]chan struct{}{},
		digests:    map[string]string{},
		unprepared: map[string]error{},
	}
}

// Prepare answers what the test set for the task's image (nil by default).
// It is not recorded among the calls: it changes nothing.
func (f *fakeRuntime) Prepare(ctx context.Context, t desired.Task) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.prepares++
	return f.unprepared[t.Spec.Image]
}

// unprepare makes Prepare fail with err for image; a nil err clears it.
func (f *fakeRuntime) unprepare(image string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(f.unprepared, image)
		return
	}
	f.unprepared[image] = err
}

// begin records a call, then waits while the call is blocked (or until ctx
// is done) and returns the injected error for it, if any.
func (f *fakeRuntime) begin(ctx context.Context, op Op, id string) error {
	f.mu.Lock()
	f.calls = append(f.calls, fakeCall{Op: op, ID: id})
	release := f.blocks[fakeKey{op, id}]
	f.mu.Unlock()
	if release != nil {
		select {
		case <-release:
		case <-ctx.Done():
			return fmt.Errorf("%s %s: %w", op, id, ctx.Err())
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs[fakeKey{op, id}]; err != nil {
		return fmt.Errorf("%s %s: %w", op, id, err)
	}
	return nil
}

func (f *fakeRuntime) List(ctx context.Context, task string) ([]observed.Raw, error) {
	if err := f.begin(ctx, opList, task); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []observed.Raw
	for _, r := range f.containers {
		if task != "" && r.Labels[observed.LabelTask] != task && !strings.HasPrefix(r.ID, task+"-") {
			continue
		}
		r.Labels = maps.Clone(r.Labels)
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b observed.Raw) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out, nil
}

func (f *fakeRuntime) Create(ctx context.Context, id string, t desired.Task, labels map[string]string) error {
	if err := f.begin(ctx, OpCreate, id); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.containers[id]; ok {
		return nil // like containerd through the real runtime: exists is success
	}
	labels = maps.Clone(labels)
	if d, ok := f.digests[t.Spec.Image]; ok {
		labels[observed.LabelImageDigest] = d // as the real runtime records it
	}
	f.containers[id] = observed.Raw{
		ID:        id,
		Labels:    labels,
		Image:     t.Spec.Image,
		CreatedAt: time.Now(),
		Status:    observed.NoTask,
	}
	return nil
}

// Pull answers with the digest the test set for the image (a registry's tag).
func (f *fakeRuntime) Pull(ctx context.Context, ref string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pulls++
	d, ok := f.digests[ref]
	if !ok {
		return "", fmt.Errorf("pull image %s: %w", ref, errFakeNotFound)
	}
	return d, nil
}

// HasImage says an image is present when the test gave it a digest.
func (f *fakeRuntime) HasImage(ctx context.Context, ref string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.digests[ref]
	return ok, nil
}

// setDigest points the image's tag at digest, as a push to a registry would.
func (f *fakeRuntime) setDigest(ref, digest string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.digests[ref] = digest
}

func (f *fakeRuntime) Start(ctx context.Context, id string) error {
	if err := f.begin(ctx, OpStart, id); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.containers[id]
	if !ok {
		return fmt.Errorf("start container %s: %w", id, errFakeNotFound)
	}
	c.Status, c.ExitCode, c.ExitedAt = observed.Running, 0, time.Time{}
	f.containers[id] = c
	return nil
}

// SetLabels merges labels into the container's. It is not recorded as a
// call: it changes no running state, and the call sequences tests compare
// are about what runs.
func (f *fakeRuntime) SetLabels(ctx context.Context, id string, labels map[string]string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.containers[id]
	if !ok {
		return fmt.Errorf("label container %s: %w", id, errFakeNotFound)
	}
	c.Labels = maps.Clone(c.Labels)
	if c.Labels == nil {
		c.Labels = map[string]string{}
	}
	for k, v := range labels {
		if v == "" {
			delete(c.Labels, k) // as containerd does
		} else {
			c.Labels[k] = v
		}
	}
	f.containers[id] = c
	return nil
}

// exit makes the container's task exit with code at the given time, as a
// crash or a kill behind the reconciler's back would.
func (f *fakeRuntime) exit(id string, code uint32, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.containers[id]
	c.Status, c.ExitCode, c.ExitedAt = observed.Stopped, code, at
	f.containers[id] = c
}

// labels returns a copy of the container's labels.
func (f *fakeRuntime) labels(id string) map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.containers[id].Labels)
}

func (f *fakeRuntime) Stop(ctx context.Context, id, signal string, grace time.Duration) error {
	if err := f.begin(ctx, OpStop, id); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.containers[id]
	if !ok {
		return nil // not found is success
	}
	if c.Status != observed.NoTask {
		now := time.Now
		if f.now != nil {
			now = f.now
		}
		c.Status, c.ExitedAt = observed.Stopped, now()
	}
	f.containers[id] = c
	return nil
}

func (f *fakeRuntime) Delete(ctx context.Context, id string) error {
	if err := f.begin(ctx, OpDelete, id); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.containers, id) // not found is success
	return nil
}

// put adds or replaces a container, as if something else had made it.
func (f *fakeRuntime) put(r observed.Raw) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r.Labels = maps.Clone(r.Labels)
	f.containers[r.ID] = r
}

// remove deletes a container behind the controller's back.
func (f *fakeRuntime) remove(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.containers, id)
}

// container returns a copy of container id.
func (f *fakeRuntime) container(id string) (observed.Raw, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.containers[id]
	r.Labels = maps.Clone(r.Labels)
	return r, ok
}

// ids returns the ids of all containers, sorted.
func (f *fakeRuntime) ids() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(maps.Keys(f.containers))
}

// running reports whether container id exists with a running task.
func (f *fakeRuntime) running(id string) bool {
	r, ok := f.container(id)
	return ok && r.Status == observed.Running
}

// fail makes every later op on id fail with err; a nil err clears it.
func (f *fakeRuntime) fail(op Op, id string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(f.errs, fakeKey{op, id})
		return
	}
	f.errs[fakeKey{op, id}] = err
}

// block makes later ops on id wait until the returned release is called (or
// their ctx is done). release may be called more than once.
func (f *fakeRuntime) block(op Op, id string) (release func()) {
	ch := make(chan struct{})
	f.mu.Lock()
	f.blocks[fakeKey{op, id}] = ch
	f.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			delete(f.blocks, fakeKey{op, id})
			f.mu.Unlock()
			close(ch)
		})
	}
}

// mark is a position in the call log, for callsSince.
func (f *fakeRuntime) mark() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

// callsSince returns the calls made from mark on, in order; with ids, only
// the calls on those ids.
func (f *fakeRuntime) callsSince(mark int, ids ...string) []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakeCall
	for _, c := range f.calls[mark:] {
		if len(ids) == 0 || slices.Contains(ids, c.ID) {
			out = append(out, c)
		}
	}
	return out
}

// mutations returns the calls other than List from mark on, on ids if given.
func (f *fakeRuntime) mutations(mark int, ids ...string) []fakeCall {
	var out []fakeCall
	for _, c := range f.callsSince(mark, ids...) {
		if c.Op != opList {
			out = append(out, c)
		}
	}
	return out
}

// count is the number of calls op on id from mark on.
func (f *fakeRuntime) count(mark int, op Op, id string) int {
	n := 0
	for _, c := range f.callsSince(mark, id) {
		if c.Op == op {
			n++
		}
	}
	return n
}

// eventually polls cond every few milliseconds and fails the test if it has
// not held within 5 seconds.
func eventually(t testing.TB, cond func() bool, msgAndArgs ...any) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			msg := "condition not met within 5s"
			if len(msgAndArgs) > 0 {
				msg += ": " + fmt.Sprintf(fmt.Sprint(msgAndArgs[0]), msgAndArgs[1:]...)
			}
			t.Fatal(msg)
		}
		<-tick.C
	}
}

// TestFakeRuntime checks the fake behaves like the real runtime where the
// controller can tell, so the controller tests mean something.
func TestFakeRuntime(t *testing.T) {
	ctx := t.Context()
	f := newFakeRuntime()
	task := desired.Task{Metadata: desired.Metadata{Name: "web"}, Spec: desired.Spec{Image: "localhost/reconciler/testapp:v1"}}
	labels := map[string]string{observed.LabelTask: "web"}

	if err := f.Stop(ctx, "web-1", "SIGTERM", time.Second); err != nil {
		t.Errorf("Stop of a missing container: %v, want success", err)
	}
	if err := f.Delete(ctx, "web-1"); err != nil {
		t.Errorf("Delete of a missing container: %v, want success", err)
	}
	if err := f.Start(ctx, "web-1"); !errors.Is(err, errFakeNotFound) {
		t.Errorf("Start of a missing container: %v, want not found", err)
	}
	if err := f.Create(ctx, "web-1", task, labels); err != nil {
		t.Fatal(err)
	}
	if err := f.Create(ctx, "web-1", task, map[string]string{"other": "x"}); err != nil {
		t.Errorf("Create of an existing container: %v, want success", err)
	}
	if r, _ := f.container("web-1"); r.Status != observed.NoTask || r.Labels[observed.LabelTask] != "web" {
		t.Errorf("after create: %+v, want status none and the first labels", r)
	}
	if err := f.Start(ctx, "web-1"); err != nil || !f.running("web-1") {
		t.Errorf("Start: %v, running %v", err, f.running("web-1"))
	}
	f.put(observed.Raw{ID: "db-1", Labels: map[string]string{observed.LabelTask: "db"}, Status: observed.Running})
	if got, _ := f.List(ctx, "web"); len(got) != 1 || got[0].ID != "web-1" {
		t.Errorf("List(web) = %+v, want only web-1", got)
	}
	if got, _ := f.List(ctx, ""); len(got) != 2 {
		t.Errorf("List() = %+v, want both containers", got)
	}
	if err := f.Stop(ctx, "web-1", "SIGTERM", time.Second); err != nil {
		t.Fatal(err)
	}
	if r, _ := f.container("web-1"); r.Status != observed.Stopped {
		t.Errorf("after stop: status %s, want stopped", r.Status)
	}
	if err := f.Delete(ctx, "web-1"); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.container("web-1"); ok {
		t.Error("container still there after Delete")
	}

	injected := errors.New("injected")
	f.fail(OpCreate, "web-2", injected)
	if err := f.Create(ctx, "web-2", task, labels); !errors.Is(err, injected) {
		t.Errorf("Create with injected error: %v", err)
	}
	if _, ok := f.container("web-2"); ok {
		t.Error("failed Create made a container")
	}
	f.fail(OpCreate, "web-2", nil)
	if err := f.Create(ctx, "web-2", task, labels); err != nil {
		t.Errorf("Create after clearing the error: %v", err)
	}

	release := f.block(OpStart, "web-2")
	done := make(chan error, 1)
	go func() { done <- f.Start(ctx, "web-2") }()
	eventually(t, func() bool { return f.count(0, OpStart, "web-2") == 1 }, "blocked Start not called")
	if err := f.Delete(ctx, "db-1"); err != nil { // another id is not blocked
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("blocked Start returned %v before release", err)
	default:
	}
	release()
	if err := <-done; err != nil || !f.running("web-2") {
		t.Errorf("released Start: %v, running %v", err, f.running("web-2"))
	}

	want := []string{
		"stop web-1", "delete web-1", "start web-1", "create web-1", "create web-1", "start web-1",
		"list web", "list ", "stop web-1", "delete web-1", "create web-2", "create web-2", "start web-2", "delete db-1",
	}
	var got []string
	for _, c := range f.callsSince(0) {
		got = append(got, c.String())
	}
	if !slices.Equal(got, want) {
		t.Errorf("calls:\n got %q\nwant %q", got, want)
	}
}
