package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"

	"github.com/warren/reconciler/e2e/testenv"
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
	start := func() *testenv.TestDaemon {
		run := testenv.Run{Address: filepath.Join(state, "nobody-here.sock"), Manifests: manifests,
			Images: env.images, StateDir: state, Resync: time.Second,
			Flags: []string{"--listen", fmt.Sprintf("127.0.0.1:%d", port)}}
		d := testenv.StartTest(t, env.bin, run.Args(), testenv.TestOptions{Options: testenv.Options{Grace: 20 * time.Second}})
		d.WaitLog(testenv.InitialSync, 60*time.Second)
		return d
	}
	d := start()
	t.Cleanup(func() {
		// Leave nothing: a daemon on the private socket, its tasks, its files.
		if m, err := runtime.StartManaged(context.Background(), filepath.Join(state, "containerd"), "containerd", discard()); err == nil {
			if c, err := containerd.New(m.Address(), containerd.WithDefaultNamespace(runtime.DefaultNamespace)); err == nil {
				if err := testenv.Wipe(context.Background(), c); err != nil {
					t.Logf("cleanup: %v", err)
				}
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

	testenv.WriteFile(t, manifests, "embedded.yaml", testenv.Manifest("embedded"))
	c, err := containerd.New(sock, containerd.WithDefaultNamespace(runtime.DefaultNamespace))
	if err != nil {
		t.Fatalf("the reconciler's private containerd does not answer on %s: %v", sock, err)
	}
	n := &node{t: t, ns: runtime.DefaultNamespace, client: c}
	var before ctr
	testenv.WaitFor(t, converge, "embedded running", func() (ok bool) { before, ok = n.running("embedded"); return ok })
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
	testenv.WaitFor(t, converge, "/healthz to fail while containerd is down", func() bool { return healthz() == http.StatusServiceUnavailable })
	testenv.WaitFor(t, converge, "/healthz ok after the restart of containerd", func() bool { return healthz() == http.StatusOK })
	d.WaitLog("managed containerd died; restarting it", time.Second)
	c, err = containerd.New(sock, containerd.WithDefaultNamespace(runtime.DefaultNamespace))
	if err != nil {
		t.Fatal(err)
	}
	n.client = c
	if again, ok := n.running("embedded"); !ok || again.Pid != before.Pid {
		t.Fatalf("after containerd's restart: %+v, want pid %d still running", n.containers("embedded"), before.Pid)
	}
	c.Close()

	d.Stop()
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
