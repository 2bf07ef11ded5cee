package e2e

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/go-logr/logr"

	"github.com/warren/reconciler/e2e/testenv"
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
	return &node{t: t, ns: ns, client: testenv.Connect(t, env.address, ns)}
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

// stateDir is the state directory of the daemon startReconciler runs on
// namespace ns.
func stateDir(ns string) string { return filepath.Join(env.dir, "state-"+ns) }

// startReconciler runs `reconciler run` on manifests in namespace ns against
// the test containerd, and waits for its first full sync.
func startReconciler(t *testing.T, ns, manifests string, extra ...string) *testenv.TestDaemon {
	t.Helper()
	run := testenv.Run{Address: env.address, Containerd: "external", RuncRoot: env.runcRoot,
		Namespace: ns, Manifests: manifests, Images: env.images, StateDir: stateDir(ns),
		Resync: time.Second, Flags: extra}
	d := testenv.StartTest(t, env.bin, run.Args(), testenv.TestOptions{Options: testenv.Options{Grace: 20 * time.Second}})
	d.WaitLog(testenv.InitialSync, 30*time.Second)
	return d
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
