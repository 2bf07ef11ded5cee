package e2e

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/go-logr/logr"

	"github.com/warren/reconciler/pkg/observed"
)

// node is a test's view of containerd: its own namespace, read directly.
type node struct {
	t      *testing.T
	ns     string
	client *containerd.Client
}

func newNode(t *testing.T, ns string) *node {
	t.Helper()
	requireEnv(t)
	// Namespaces name the tasks' cgroups (/NAMESPACE/ID), which the
	// kernel shares between runs: the run's own suffix keeps two runs on
	// one host apart.
	ns += "-" + env.run
	c, err := containerd.New(env.address, containerd.WithDefaultNamespace(ns))
	if err != nil {
		t.Fatalf("connect containerd: %v", err)
	}
	n := &node{t: t, ns: ns, client: c}
	t.Cleanup(func() {
		n.wipe()
		c.Close()
	})
	return n
}

// wipe removes every container of the namespace, so tests leave nothing behind.
func (n *node) wipe() {
	ctx := context.Background()
	cs, err := n.client.Containers(ctx)
	if err != nil {
		n.t.Logf("cleanup: list: %v", err)
		return
	}
	for _, c := range cs {
		if t, err := c.Task(ctx, nil); err == nil {
			_, _ = t.Delete(ctx, containerd.WithProcessKill)
		}
		if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
			n.t.Logf("cleanup: delete %s: %v", c.ID(), err)
		}
	}
}

// ctr is one container as containerd reports it.
type ctr struct {
	ID     string
	Labels map[string]string
	Status containerd.ProcessStatus // "" when there is no task
	Pid    uint32
}

// containers lists the namespace's containers labelled with task (all, if task is "").
func (n *node) containers(task string) []ctr {
	n.t.Helper()
	ctx := context.Background()
	cs, err := n.client.Containers(ctx)
	if err != nil {
		n.t.Fatalf("list containers: %v", err)
	}
	var out []ctr
	for _, c := range cs {
		labels, err := c.Labels(ctx)
		if err != nil {
			if errdefs.IsNotFound(err) {
				continue
			}
			n.t.Fatalf("labels of %s: %v", c.ID(), err)
		}
		if task != "" && labels[observed.LabelTask] != task {
			continue
		}
		x := ctr{ID: c.ID(), Labels: labels}
		if tk, err := c.Task(ctx, nil); err == nil {
			x.Pid = tk.Pid()
			if st, err := tk.Status(ctx); err == nil {
				x.Status = st.Status
			}
		}
		out = append(out, x)
	}
	return out
}

// running returns the only container of task if it is running.
func (n *node) running(task string) (ctr, bool) {
	cs := n.containers(task)
	if len(cs) == 1 && cs[0].Status == containerd.Running {
		return cs[0], true
	}
	return ctr{}, false
}

// snapshotExists reports whether the default snapshotter holds key.
func (n *node) snapshotExists(key string) bool {
	n.t.Helper()
	_, err := n.client.SnapshotService("overlayfs").Stat(context.Background(), key)
	if errdefs.IsNotFound(err) {
		return false
	}
	if err != nil {
		n.t.Fatalf("stat snapshot %s: %v", key, err)
	}
	return true
}

// taskExists reports whether containerd has a task for container id.
func (n *node) taskExists(id string) bool {
	c, err := n.client.LoadContainer(context.Background(), id)
	if err != nil {
		return false
	}
	_, err = c.Task(context.Background(), nil)
	return err == nil
}

// waitFor polls cond every 50 ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// daemon is a running reconciler process.
type daemon struct {
	t    *testing.T
	cmd  *exec.Cmd
	mu   sync.Mutex
	logs bytes.Buffer
	done chan struct{}
}

func (d *daemon) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.logs.Write(p)
}

func (d *daemon) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.logs.String()
}

// startReconciler runs `reconciler run` on manifests in namespace ns against
// the test containerd, and waits for its first full sync.
func startReconciler(t *testing.T, ns, manifests string, extra ...string) *daemon {
	t.Helper()
	state := filepath.Join(env.dir, "state-"+ns)
	args := append([]string{"run",
		"--address", env.address, "--containerd", "external", "--runc-root", env.runcRoot,
		"--namespace", ns, "--manifests", manifests, "--images", env.images,
		"--state-dir", state, "--resync", "1s"}, extra...)
	d := &daemon{t: t, cmd: exec.Command(env.bin, args...), done: make(chan struct{})}
	d.cmd.Stdout, d.cmd.Stderr = d, d
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start reconciler: %v", err)
	}
	go func() { _ = d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			t.Logf("reconciler output:\n%s", d.output())
		}
	})
	d.waitLog("initial sync done", 30*time.Second)
	return d
}

func (d *daemon) waitLog(s string, timeout time.Duration) {
	d.t.Helper()
	waitFor(d.t, timeout, fmt.Sprintf("reconciler to log %q", s), func() bool {
		select {
		case <-d.done:
			d.t.Fatalf("reconciler exited while waiting for %q:\n%s", s, d.output())
		default:
		}
		return strings.Contains(d.output(), s)
	})
}

// resynced is what a daemon started with -v 1 logs each time a resync has
// listed the node.
const resynced = "resync listed the node"

// waitResyncs waits until the daemon, which must run with -v 1, has logged
// n more resyncs than when called: the event form of "nothing happened
// after X" (call it once X is done or seen). Use at least 3: the first may
// have begun before X, and the second may follow it at once (a change in
// the broken files queues one); by the third, a worker acting on what a
// listing after X found has had a resync period to log its action.
func (d *daemon) waitResyncs(n int) {
	d.t.Helper()
	from := strings.Count(d.output(), resynced)
	waitFor(d.t, converge, fmt.Sprintf("%d resyncs logged (is the reconciler running with -v 1?)", n), func() bool {
		select {
		case <-d.done:
			d.t.Fatalf("reconciler exited while waiting for %d resyncs:\n%s", n, d.output())
		default:
		}
		return strings.Count(d.output(), resynced) >= from+n
	})
}

// kill sends SIGKILL: no cleanup of any kind runs.
func (d *daemon) kill() {
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
}

// stop sends SIGTERM and waits.
func (d *daemon) stop() {
	select {
	case <-d.done:
		return
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		d.kill()
	}
}

// writeFile writes content to dir/name the way docs/writing-manifests.md recommends:
// a temporary file renamed into place.
func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	writeFileMode(t, dir, name, content, 0o644)
}

// writeFileMode is writeFile with the file's final mode (the umask does not
// apply) set before the rename: a watching daemon never sees the file with
// another mode or content.
func writeFileMode(t *testing.T, dir, name, content string, mode os.FileMode) {
	t.Helper()
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// manifest is a Task manifest for the test image.
func manifest(name string, env map[string]string, extra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: warren/v1\nkind: Task\nmetadata:\n  name: %s\nspec:\n  image: localhost/reconciler/testapp:v1\n", name)
	if len(env) > 0 {
		b.WriteString("  env:\n")
		for _, k := range slices.Sorted(maps.Keys(env)) {
			fmt.Fprintf(&b, "    - {name: %s, value: %q}\n", k, env[k])
		}
	}
	b.WriteString(extra)
	return b.String()
}

func discard() logr.Logger { return logr.Discard() }

// socketAnswers reports whether something accepts connections on a unix socket.
func socketAnswers(path string) bool {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// logDriverOf returns the program of the process running as the log driver
// of container id (the shim starts it with CONTAINER_ID set), from /proc.
func logDriverOf(t *testing.T, id string) string {
	t.Helper()
	pids, _ := filepath.Glob("/proc/[0-9]*/environ")
	for _, p := range pids {
		env, err := os.ReadFile(p)
		if err != nil || !slices.Contains(strings.Split(string(env), "\x00"), "CONTAINER_ID="+id) {
			continue
		}
		exe, err := os.Readlink(filepath.Join(filepath.Dir(p), "exe"))
		if err != nil {
			continue
		}
		return exe
	}
	t.Fatalf("no process with CONTAINER_ID=%s", id)
	return ""
}

func fileBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
