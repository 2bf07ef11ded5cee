package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/warren/reconciler/e2e/imagebuild"
	"github.com/warren/reconciler/e2e/testenv"
)

// staleTask makes a container whose task delete was cut short (as when the
// reconciler is SIGKILLed during it): containerd then has a task it can
// neither list nor load, and refuses every new task of that container ID
// ("task ...: already exists"). It times a few whole deletes first, then
// tries delete timeouts from a quarter of the quickest to 60 % of it (the
// tries that hit were at 35-48 %) until one lands in the window, and
// returns the container's ID, or "" if none did.
func staleTask(t *testing.T, e *rtEnv, name string) string {
	t.Helper()
	// Names of their own in each run of the test (go test -count=N): the
	// tries that miss can leave runc state behind under their IDs (see
	// docs/reliability.md), which would meet the next run's.
	name = fmt.Sprintf("%s%d", name, staleRuns.Add(1))
	ctx := namespaces.WithNamespace(context.Background(), e.n.ns)
	const timed = 3
	var whole time.Duration
	for i := range 200 {
		id := e.run(testenv.Manifest(fmt.Sprintf("%s-%d", name, i)))
		c, err := e.n.client.LoadContainer(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		tk, err := c.Task(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		exited, err := tk.Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := tk.Kill(ctx, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-exited
		if i < timed {
			began := time.Now()
			if _, err := tk.Delete(ctx); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(began); whole == 0 || d < whole {
				whole = d // the quickest: the others waited for the machine
			}
			_ = e.rt.Delete(ctx, id)
			continue
		}
		if i == timed {
			t.Logf("a whole task delete takes %s here", whole)
		}
		step := (i - timed) % 40
		cctx, cancel := context.WithTimeout(ctx, whole/4+whole*time.Duration(step)*35/4000)
		_, _ = tk.Delete(cctx)
		cancel()
		if _, err := c.Task(ctx, nil); !errdefs.IsNotFound(err) {
			_ = e.rt.Delete(ctx, id)
			continue
		}
		probe, err := c.NewTask(ctx, cio.NullIO)
		if err == nil {
			_, _ = probe.Delete(ctx, containerd.WithProcessKill)
			_ = e.rt.Delete(ctx, id)
			continue
		}
		if errdefs.IsAlreadyExists(err) {
			t.Logf("stale task after %d tries: %v", i+1, err)
			return id
		}
		_ = e.rt.Delete(ctx, id)
	}
	return ""
}

// staleRuns numbers the calls of staleTask in this process.
var staleRuns atomic.Int32

// requireStale stops the test when staleTask could not make its state. The
// window is hit within ~15 of the tries on the machines seen so far, so
// under CI=true a miss fails the test: the fix must be exercised there.
func requireStale(t *testing.T, id string) {
	t.Helper()
	if id != "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("CI=true: no delete was cut short in 120 tries, the stale-task fix was not exercised")
	}
	t.Skip("outside CI: no delete was cut short in the window on this machine")
}

// TestRuntimeStartClearsStaleTask: Start of a container whose last task's
// delete was cut short starts it anyway. Found by the chaos suite: after a
// SIGKILL of the reconciler during a delete, a task whose spec came back
// (the same container ID) could never start again ("already exists",
// retried forever) until containerd was restarted.
func TestRuntimeStartClearsStaleTask(t *testing.T) {
	e := newRT(t, "e2e-rt-stale-start")
	id := staleTask(t, e, "stale")
	requireStale(t, id)
	if err := e.rt.Start(t.Context(), id); err != nil {
		t.Fatalf("Start after an interrupted delete: %v", err)
	}
	testenv.WaitFor(t, converge, id+" running", func() bool {
		cs := e.n.containers("")
		for _, c := range cs {
			if c.ID == id {
				return c.Status == containerd.Running
			}
		}
		return false
	})
}

// TestRuntimeDeleteClearsStaleTask: Delete of such a container clears the
// stale task too, so that a container of the same ID created later (the
// same spec again) starts.
func TestRuntimeDeleteClearsStaleTask(t *testing.T) {
	e := newRT(t, "e2e-rt-stale-delete")
	id := staleTask(t, e, "gone")
	requireStale(t, id)
	if err := e.rt.Delete(t.Context(), id); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	c, err := e.n.client.LoadContainer(t.Context(), id)
	if err == nil {
		t.Fatalf("container %s still there after Delete", c.ID())
	}
	// The same container ID again, started by hand (not through Start,
	// which would clear it itself).
	var yaml string
	prefix := id[:strings.LastIndexByte(id[:strings.LastIndexByte(id, '-')], '-')]
	for i := range 200 {
		if y := testenv.Manifest(fmt.Sprintf("%s-%d", prefix, i)); parseID(t, y) == id {
			yaml = y
		}
	}
	if _, err := e.create(yaml); err != nil {
		t.Fatal(err)
	}
	ctx := namespaces.WithNamespace(t.Context(), e.n.ns)
	c, err = e.n.client.LoadContainer(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := c.NewTask(ctx, cio.NullIO)
	if err != nil {
		t.Fatalf("a new task of %s after Delete: %v", id, err)
	}
	_, _ = tk.Delete(ctx, containerd.WithProcessKill)
}

func parseID(t *testing.T, yaml string) string {
	task := parseTask(t, yaml)
	return task.Metadata.Name + "-" + task.Hash()
}

// TestRuntimeStartClearsStaleBundle: Start of a container whose last start
// was cut short starts it anyway. Found by the chaos suite (seed 7, kill
// 13): after a SIGKILL of the reconciler during a start, containerd 1.6
// kept the task's bundle directory with no shim and no task, and every new
// task of that container ID failed ("failed to start shim: mkdir ...: file
// exists") until containerd restarted. The test leaves that state itself:
// the directory with the files a shim's start writes, and the pid of a
// shim that is gone.
func TestRuntimeStartClearsStaleBundle(t *testing.T) {
	e := newRT(t, "e2e-rt-stale-bundle")
	id, err := e.create(testenv.Manifest("bundle"))
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(env.ctrState, "io.containerd.runtime.v2.task", e.n.ns, id)
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(bundle, "rootfs"), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"config.json": "{}", "shim.pid": strconv.Itoa(gone.Process.Pid), "address": "unix:///nowhere"} {
		if err := os.WriteFile(filepath.Join(bundle, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The state the fix is for: containerd refuses a task of this ID.
	ctx := namespaces.WithNamespace(t.Context(), e.n.ns)
	c, err := e.n.client.LoadContainer(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.NewTask(ctx, cio.NullIO); err == nil || !strings.Contains(err.Error(), "file exists") {
		t.Fatalf("a new task with a stale bundle: %v, want containerd to refuse it (file exists)", err)
	}
	if err := e.rt.Start(t.Context(), id); err != nil {
		t.Fatalf("Start after an interrupted start: %v", err)
	}
	testenv.WaitFor(t, converge, id+" running", func() bool {
		for _, c := range e.n.containers("") {
			if c.ID == id {
				return c.Status == containerd.Running
			}
		}
		return false
	})
}

// TestRuntimeStartClearsStaleRuncState: Start of a container whose ID runc
// still holds (a task cut short after runc created it, containerd having
// forgotten it) starts it anyway. Found with go test -count=5: the
// stale-task tests' misses left such state, and the next run's start of
// the same ID failed with "container with given ID already exists". The
// test makes that state itself: runc create of the ID in the namespace's
// runc directory, its init process then killed.
func TestRuntimeStartClearsStaleRuncState(t *testing.T) {
	e := newRT(t, "e2e-rt-stale-runc")
	for _, kill := range []bool{true, false} {
		t.Run(fmt.Sprintf("its process killed %v", kill), func(t *testing.T) { staleRuncState(t, e, kill) })
	}
}

// staleRuncState makes runc hold a container of a new container's ID, its
// init process killed or left waiting, and starts the container.
func staleRuncState(t *testing.T, e *rtEnv, kill bool) {
	id, err := e.create(testenv.Manifest(fmt.Sprintf("runc-%v", kill)))
	if err != nil {
		t.Fatal(err)
	}
	bundle := t.TempDir()
	if err := imagebuild.BuildProgram(t.Context(), "github.com/warren/reconciler/e2e/testapp", filepath.Join(bundle, "rootfs", "app")); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("runc", "spec", "--bundle", bundle).CombinedOutput(); err != nil {
		t.Fatalf("runc spec: %v: %s", err, out)
	}
	cfg := filepath.Join(bundle, "config.json")
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b = []byte(strings.Replace(strings.Replace(string(b), `"terminal": true`, `"terminal": false`, 1), `"sh"`, `"/app"`, 1))
	if err := os.WriteFile(cfg, b, 0o644); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(env.runcRoot, e.n.ns)
	// Its output to a file: the init process keeps it open, a pipe would
	// never close.
	out, err := os.Create(filepath.Join(t.TempDir(), "runc.out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	create := exec.Command("runc", "--root", root, "create", "--bundle", bundle, id)
	create.Stdout, create.Stderr = out, out
	if err := create.Run(); err != nil {
		b, _ := os.ReadFile(out.Name())
		t.Fatalf("runc create: %v: %s", err, b)
	}
	t.Cleanup(func() { _ = exec.Command("runc", "--root", root, "delete", "--force", id).Run() })
	var st struct {
		Pid int `json:"init_process_pid"`
	}
	if b, err := os.ReadFile(filepath.Join(root, id, "state.json")); err != nil || json.Unmarshal(b, &st) != nil || st.Pid == 0 {
		t.Fatalf("runc state of %s: %v %s", id, err, b)
	}
	if kill {
		if err := syscall.Kill(st.Pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}

	if err := e.rt.Start(t.Context(), id); err != nil {
		t.Fatalf("Start over runc's stale state: %v", err)
	}
	testenv.WaitFor(t, converge, id+" running", func() bool {
		for _, c := range e.n.containers("") {
			if c.ID == id {
				return c.Status == containerd.Running
			}
		}
		return false
	})
	// containerd 1.6's shim removes runc's state of a dead container as
	// it cleans up after the refused create, so the runtime finds it gone
	// and creates again; with a process of it still alive it would clear
	// it itself.
	if log := e.out.String(); !strings.Contains(log, "cleared the runc state an interrupted task left") &&
		!strings.Contains(log, "runc's stale state of an interrupted task is gone") {
		t.Errorf("the runtime did not say what it did of runc's state:\n%s", log)
	}
}
