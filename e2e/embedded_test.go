package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"

	"github.com/warren/reconciler/pkg/runtime"
)

// TestEmbeddedContainerd runs the reconciler the way `make run` does: no
// containerd answers on --address, so it starts a private one under its state
// directory. Stopping the reconciler stops that daemon but not the task; the
// next start reconnects to the task without restarting it.
func TestEmbeddedContainerd(t *testing.T) {
	requireEnv(t)
	state, err := os.MkdirTemp("", "rcemb")
	if err != nil {
		t.Fatal(err)
	}
	manifests := t.TempDir()
	sock := runtime.PathsFor(filepath.Join(state, "containerd")).Socket
	port := freePort(t)
	healthz := func() int {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", port))
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	start := func() *daemon {
		d := &daemon{t: t, done: make(chan struct{})}
		d.cmd = exec.Command(env.bin, "run", "--address", filepath.Join(state, "nobody-here.sock"),
			"--manifests", manifests, "--images", env.images, "--state-dir", state, "--resync", "1s",
			"--listen", fmt.Sprintf("127.0.0.1:%d", port))
		d.cmd.Stdout, d.cmd.Stderr = d, d
		if err := d.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { _ = d.cmd.Wait(); close(d.done) }()
		t.Cleanup(func() {
			d.stop()
			if t.Failed() {
				t.Logf("reconciler output:\n%s", d.output())
			}
		})
		d.waitLog("initial sync done", 60*time.Second)
		return d
	}
	d := start()
	t.Cleanup(func() {
		// Leave nothing: a daemon on the private socket, its tasks, its files.
		if m, err := runtime.StartManaged(context.Background(), filepath.Join(state, "containerd"), "containerd", discard()); err == nil {
			n := &node{t: t, ns: runtime.DefaultNamespace}
			if c, err := containerd.New(m.Address(), containerd.WithDefaultNamespace(n.ns)); err == nil {
				n.client = c
				n.wipe()
				c.Close()
			}
			_ = m.Stop(context.Background())
		}
		if t.Failed() {
			t.Logf("state kept in %s", state)
			return
		}
		os.RemoveAll(state)
	})

	writeFile(t, manifests, "embedded.yaml", manifest("embedded", nil, ""))
	c, err := containerd.New(sock, containerd.WithDefaultNamespace(runtime.DefaultNamespace))
	if err != nil {
		t.Fatalf("the reconciler's private containerd does not answer on %s: %v", sock, err)
	}
	n := &node{t: t, ns: runtime.DefaultNamespace, client: c}
	var before ctr
	waitFor(t, converge, "embedded running", func() (ok bool) { before, ok = n.running("embedded"); return ok })
	c.Close()

	// The private containerd dies: /healthz says so, the reconciler starts it
	// again, and the task was never touched.
	if code := healthz(); code != http.StatusOK {
		t.Fatalf("/healthz = %d before the kill", code)
	}
	pidBytes, err := os.ReadFile(runtime.PathsFor(filepath.Join(state, "containerd")).PidFile)
	if err != nil {
		t.Fatal(err)
	}
	ctrdPid, _ := strconv.Atoi(strings.TrimSpace(string(pidBytes)))
	if err := syscall.Kill(ctrdPid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, converge, "/healthz to fail while containerd is down", func() bool { return healthz() == http.StatusServiceUnavailable })
	waitFor(t, converge, "/healthz ok after the restart of containerd", func() bool { return healthz() == http.StatusOK })
	d.waitLog("managed containerd died; restarting it", time.Second)
	c, err = containerd.New(sock, containerd.WithDefaultNamespace(runtime.DefaultNamespace))
	if err != nil {
		t.Fatal(err)
	}
	n.client = c
	if again, ok := n.running("embedded"); !ok || again.Pid != before.Pid {
		t.Fatalf("after containerd's restart: %+v, want pid %d still running", n.containers("embedded"), before.Pid)
	}
	c.Close()

	d.stop()
	if err := syscall.Kill(int(before.Pid), 0); err != nil {
		t.Fatalf("the task's process %d died with the reconciler: %v", before.Pid, err)
	}
	if socketAnswers(sock) {
		t.Errorf("the private containerd still answers after the reconciler stopped")
	}

	start()
	c, err = containerd.New(sock, containerd.WithDefaultNamespace(runtime.DefaultNamespace))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	n.client = c
	after, ok := n.running("embedded")
	if !ok || after.ID != before.ID || after.Pid != before.Pid {
		t.Errorf("after restart: %+v, want %s still running as pid %d", n.containers("embedded"), before.ID, before.Pid)
	}
}
