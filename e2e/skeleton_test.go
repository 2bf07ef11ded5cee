package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	eventtypes "github.com/containerd/containerd/api/events"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/typeurl/v2"

	"github.com/warren/reconciler/e2e/testenv"
	"github.com/warren/reconciler/pkg/desired"
	"github.com/warren/reconciler/pkg/observed"
)

const converge = 20 * time.Second

// freePort returns a TCP port on 127.0.0.1 that nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func httpGet(url string) (string, error) {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b)), err
}

// TestFileLifecycle drops a manifest, edits it, and deletes it, checking each
// step in containerd: a running task; a new container with the old one, its
// task and its snapshot gone; nothing left.
func TestFileLifecycle(t *testing.T) {
	n := newNode(t, "e2e-life")
	dir := t.TempDir()
	startReconciler(t, n.ns, dir)
	port := freePort(t)

	testenv.WriteFile(t, dir, "web.yaml", testenv.Manifest("web", testenv.EnvSpec("LISTEN", fmt.Sprintf("127.0.0.1:%d", port), "MESSAGE", "one")))
	var first ctr
	testenv.WaitFor(t, converge, "web running", func() (ok bool) { first, ok = n.running("web"); return ok })
	if first.Labels[observed.LabelManagedBy] != observed.ManagedByValue || first.Labels[observed.LabelSource] != "web.yaml" {
		t.Errorf("labels of %s = %v", first.ID, first.Labels)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	testenv.WaitFor(t, converge, "web to answer on "+url, func() bool { body, _ := httpGet(url); return body == "one" })
	// Its output goes through the standalone log driver that the binary
	// embeds and wrote into its state directory.
	driver := filepath.Join(stateDir(n.ns), "log-driver")
	if exe := logDriverOf(t, first.ID); exe != driver {
		t.Errorf("the log driver of %s runs %q, want %s", first.ID, exe, driver)
	}
	if a, b := fileBytes(t, driver), fileBytes(t, env.driver); !bytes.Equal(a, b) {
		t.Errorf("%s (%d bytes) is not the standalone log driver built (%d bytes)", driver, len(a), len(b))
	}

	// Edit: env changed -> a new container replaces the old one.
	testenv.WriteFile(t, dir, "web.yaml", testenv.Manifest("web", testenv.EnvSpec("LISTEN", fmt.Sprintf("127.0.0.1:%d", port), "MESSAGE", "two")))
	var second ctr
	testenv.WaitFor(t, converge, "web replaced", func() (ok bool) {
		second, ok = n.running("web")
		return ok && second.ID != first.ID
	})
	testenv.WaitFor(t, converge, "web to answer two", func() bool { body, _ := httpGet(url); return body == "two" })
	if n.taskExists(first.ID) {
		t.Errorf("task of old container %s still exists", first.ID)
	}
	if n.snapshotExists(first.ID) {
		t.Errorf("snapshot of old container %s still exists", first.ID)
	}
	if _, err := n.client.LoadContainer(context.Background(), first.ID); err == nil {
		t.Errorf("old container %s still exists", first.ID)
	}

	// Delete: everything of the task goes.
	if err := os.Remove(dir + "/web.yaml"); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, converge, "web removed", func() bool { return len(n.containers("web")) == 0 })
	if n.taskExists(second.ID) || n.snapshotExists(second.ID) {
		t.Errorf("task or snapshot of %s left behind", second.ID)
	}
}

// TestGracePeriodThenKill deletes the manifest of a task that ignores SIGTERM:
// it must be killed by SIGKILL once its grace period is over, not before and
// not much after.
func TestGracePeriodThenKill(t *testing.T) {
	n := newNode(t, "e2e-grace")
	dir := t.TempDir()
	startReconciler(t, n.ns, dir)
	const grace = 2 * time.Second
	testenv.WriteFile(t, dir, "stubborn.yaml", testenv.Manifest("stubborn", testenv.EnvSpec("IGNORE_SIGTERM", "true"), fmt.Sprintf("stopGracePeriod: %s", grace)))
	var c ctr
	testenv.WaitFor(t, converge, "stubborn running", func() (ok bool) { c, ok = n.running("stubborn"); return ok })

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, errs := n.client.Subscribe(ctx, `topic=="/tasks/exit"`, fmt.Sprintf(`namespace==%q`, n.ns))
	removed := time.Now()
	if err := os.Remove(dir + "/stubborn.yaml"); err != nil {
		t.Fatal(err)
	}
	var exit *eventtypes.TaskExit
	timeout := time.After(converge)
	for exit == nil {
		select {
		case env := <-events:
			v, err := typeurl.UnmarshalAny(env.Event)
			if err != nil {
				t.Fatal(err)
			}
			if e, ok := v.(*eventtypes.TaskExit); ok && e.ContainerID == c.ID {
				exit = e
			}
		case err := <-errs:
			t.Fatalf("events: %v", err)
		case <-timeout:
			t.Fatal("no exit event for the stubborn task")
		}
	}
	took := exit.ExitedAt.AsTime().Sub(removed)
	t.Logf("file removed -> task exited: %s (grace %s), exit status %d", took, grace, exit.ExitStatus)
	if took < grace {
		t.Errorf("task exited %s after the file was removed, before its grace period %s", took, grace)
	}
	if took > grace+1500*time.Millisecond {
		t.Errorf("task exited %s after the file was removed, much later than its grace period %s", took, grace)
	}
	if exit.ExitStatus != 128+uint32(syscall.SIGKILL) {
		t.Errorf("exit status %d, want %d (SIGKILL)", exit.ExitStatus, 128+int(syscall.SIGKILL))
	}
	testenv.WaitFor(t, converge, "stubborn removed", func() bool { return len(n.containers("stubborn")) == 0 })
}

// TestRestartAdopts kills the reconciler with SIGKILL and starts it again: the
// running container must be neither restarted nor duplicated.
func TestRestartAdopts(t *testing.T) {
	n := newNode(t, "e2e-restart")
	dir := t.TempDir()
	d := startReconciler(t, n.ns, dir)
	testenv.WriteFile(t, dir, "steady.yaml", testenv.Manifest("steady"))
	var before ctr
	testenv.WaitFor(t, converge, "steady running", func() (ok bool) { before, ok = n.running("steady"); return ok })
	d.Kill()

	d2 := startReconciler(t, n.ns, dir, "-v", "1") // -v 1 logs each resync
	// Resyncs after the first full pass: the new process had every chance
	// to act.
	d2.WaitResyncs(3, converge)
	after := n.containers("steady")
	if len(after) != 1 || after[0].ID != before.ID || after[0].Pid != before.Pid || after[0].Status != containerd.Running {
		t.Errorf("after restart: %+v, want only %s with pid %d running", after, before.ID, before.Pid)
	}
	if strings.Contains(d2.Output(), "creating container") || strings.Contains(d2.Output(), "stopping container") {
		t.Errorf("restarted reconciler acted on an unchanged task:\n%s", d2.Output())
	}
}

// TestUnmanagedUntouched creates containers in the namespace that the
// reconciler does not own (one unlabelled, one whose labels were tampered
// with); however the manifests change, they are never touched.
func TestUnmanagedUntouched(t *testing.T) {
	n := newNode(t, "e2e-foreign")
	ctx := context.Background()
	img, err := testenv.ImportImage(ctx, n.client, env.archive)
	if err != nil {
		t.Fatal(err)
	}
	foreign := map[string]map[string]string{
		"hand-made": nil,
		// Claims ownership, but the ID does not match the labels.
		"tampered": {observed.LabelManagedBy: observed.ManagedByValue, observed.LabelTask: "app", observed.LabelSpecHash: "000000000000"},
	}
	// Sits on the ID the task "blocked" will want, with no task: the
	// reconciler must neither start it nor delete it.
	blockedTasks, err := desired.Parse("blocked.yaml", []byte(testenv.Manifest("blocked")))
	if err != nil {
		t.Fatal(err)
	}
	squatter := observed.ContainerID("blocked", blockedTasks[0].Hash())
	if _, err := n.client.NewContainer(ctx, squatter, containerd.WithImage(img), containerd.WithNewSnapshot(squatter, img),
		containerd.WithNewSpec(oci.WithImageConfig(img))); err != nil {
		t.Fatal(err)
	}
	pids := map[string]uint32{}
	for id, labels := range foreign {
		tk, err := testenv.StartContainer(ctx, n.client, img, id, containerd.WithContainerLabels(labels))
		if err != nil {
			t.Fatal(err)
		}
		pids[id] = tk.Pid()
	}

	dir := t.TempDir()
	d := startReconciler(t, n.ns, dir, "-v", "1") // -v 1 logs each resync
	testenv.WriteFile(t, dir, "app.yaml", testenv.Manifest("app"))
	testenv.WriteFile(t, dir, "blocked.yaml", testenv.Manifest("blocked"))
	testenv.WaitFor(t, converge, "app running", func() bool {
		for _, c := range n.containers("app") {
			if c.ID != "tampered" && c.Status == containerd.Running {
				return true
			}
		}
		return false
	})
	if err := os.Remove(dir + "/app.yaml"); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, converge, "app removed", func() bool {
		for _, c := range n.containers("app") {
			if c.ID != "tampered" {
				return false
			}
		}
		return true
	})
	d.WaitResyncs(3, converge)
	all := n.containers("")
	got := map[string]ctr{}
	for _, c := range all {
		got[c.ID] = c
	}
	for id, pid := range pids {
		c, ok := got[id]
		if !ok || c.Status != containerd.Running || c.Pid != pid {
			t.Errorf("unmanaged container %s was touched: %+v (pid before %d)", id, c, pid)
		}
	}
	if c, ok := got[squatter]; !ok || c.Status != "" {
		t.Errorf("container %s squatting on a task's ID was touched: %+v", squatter, c)
	}
	if !strings.Contains(d.Output(), "container id taken by an unmanaged container") {
		t.Errorf("the blocked task was not reported:\n%s", d.Output())
	}
	if !strings.Contains(d.Output(), "leaving unmanaged container alone") {
		t.Errorf("unmanaged containers not reported:\n%s", d.Output())
	}
}

// TestBrokenFileKeepsTask overwrites a running task's file with invalid
// content: the task keeps running (last known good) until the file is valid.
func TestBrokenFileKeepsTask(t *testing.T) {
	n := newNode(t, "e2e-broken")
	dir := t.TempDir()
	d := startReconciler(t, n.ns, dir, "-v", "1") // -v 1 logs each resync
	testenv.WriteFile(t, dir, "keep.yaml", testenv.Manifest("keep"))
	var before ctr
	testenv.WaitFor(t, converge, "keep running", func() (ok bool) { before, ok = n.running("keep"); return ok })
	testenv.WriteFile(t, dir, "keep.yaml", "apiVersion: warren/v1\nkind: Task\nmetadata: {name: keep}\nspec: {imagee: oops}\n")
	d.WaitLog("manifest file invalid", converge) // the event
	d.WaitResyncs(3, converge)
	if after, ok := n.running("keep"); !ok || after.ID != before.ID || after.Pid != before.Pid {
		t.Fatalf("a broken file changed the running task: %+v, before %+v", n.containers("keep"), before)
	}
}
