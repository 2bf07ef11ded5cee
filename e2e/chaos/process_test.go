package chaos

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/warren/reconciler/pkg/runtime"
)

// actionLogs are the log lines of the reconciler acting on containerd: a
// kill just after one lands in the middle of an operation.
var actionLogs = []string{"creating container", "starting task", "stopping container", "deleting container", "pulling image"}

func acted(out string) bool {
	for _, s := range actionLogs {
		if strings.Contains(out, s) {
			return true
		}
	}
	return false
}

// TestChaosKillReconciler (fault 1): SIGKILL the reconciler at a random
// moment while it converges a burst of creates, replacements and deletions,
// start it again, let it converge, check every invariant. Half the pool
// are bridge tasks whose published ports must answer.
func TestChaosKillReconciler(t *testing.T) {
	w := newWorld(t, "kill", "", "")
	// Half the pool are bridge tasks with a published port: the bursts
	// set their networks up and tear them down under the kills.
	w.useBridge()
	w.addBridged("k-0", "k-1", "k-2", "k-3")
	w.addStable("stable-a", "stable-b")
	w.addBystander("bystander")
	w.burst("k", 8, 6, nil)
	w.start()
	w.ready("set-up")
	iterations(t, func(i int) {
		// The tasks the burst leaves alone must not restart either.
		b := w.baseline(append(w.pool("k"), w.stable...)...)
		before := len(w.d.Output())
		what := w.burst("k", 8, 2+w.rng.IntN(7), &b)
		if w.rng.IntN(2) == 0 {
			// Half the time, right after an action began (a burst that
			// cancels itself out makes none: then after 3s).
			for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
				if acted(w.d.Output()[before:]) {
					break
				}
			}
			time.Sleep(w.jitter(300 * time.Millisecond))
		} else {
			time.Sleep(w.jitter(1500 * time.Millisecond))
		}
		w.d.Kill()
		if w.rng.IntN(3) == 0 {
			what += "; then " + w.burst("k", 8, 1+w.rng.IntN(3), &b) + " while it was down"
		}
		since := time.Now()
		w.start()
		w.converge(fmt.Sprintf("kill %d (%s)", i, what), since, b)
	})
}

// TestChaosRestartContainerd (fault 2): SIGTERM or SIGKILL containerd while
// the reconciler converges a burst, start containerd again on the same
// directories: the running tasks survive (same processes), convergence
// resumes.
func TestChaosRestartContainerd(t *testing.T) {
	requireEnv(t)
	log := logr.FromSlogHandler(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	dir := filepath.Join(env.dir, "c2")
	m, err := runtime.StartManaged(t.Context(), dir, "containerd", log)
	if err != nil {
		t.Fatal(err)
	}
	// Registered before the world's, so it runs after it (the latest
	// daemon is stopped once the world has removed its containers).
	t.Cleanup(func() { _ = m.Stop(context.Background()) })
	w := newWorld(t, "containerd", m.Address(), "")
	w.addStable("stable-a", "stable-b")
	w.addBystander("bystander")
	w.burst("c", 6, 5, nil)
	w.start()
	w.ready("set-up")
	iterations(t, func(i int) {
		b := w.baseline(append(w.pool("c"), w.stable...)...)
		before := len(w.d.Output())
		what := w.burst("c", 6, 2+w.rng.IntN(5), &b)
		// During convergence: once an action began (or after 3s if the
		// burst cancelled itself out), within 300ms.
		for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if acted(w.d.Output()[before:]) {
				break
			}
		}
		time.Sleep(w.jitter(300 * time.Millisecond))
		sig := syscall.SIGTERM
		if i%2 == 1 {
			sig = syscall.SIGKILL
		}
		pid := m.Pid()
		if err := syscall.Kill(pid, sig); err != nil {
			t.Fatalf("signal containerd: %v", err)
		}
		waitFor(t, 30*time.Second, "containerd to exit", func() bool { return !procAlive(pid) })
		down := w.jitter(2 * time.Second)
		time.Sleep(down)
		m, err = runtime.StartManaged(t.Context(), dir, "containerd", log)
		if err != nil {
			t.Fatalf("restart containerd: %v", err)
		}
		since := time.Now()
		w.converge(fmt.Sprintf("containerd %s %d (%s; down %s)", sig, i, what, down.Round(time.Millisecond)), since, b)
	})
}

// procAlive reports whether pid is a live process (not a zombie).
func procAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

// TestChaosBehindTheBack (fault 3): task processes killed and containers
// deleted with ctr behind the reconciler's back. The victims come back;
// every other task is left as it was.
func TestChaosBehindTheBack(t *testing.T) {
	w := newWorld(t, "ctr", "", "")
	w.addStable("stable-a", "stable-b")
	w.addBystander("bystander")
	const pool = 6
	var names []string
	for j := range pool {
		name := fmt.Sprintf("v-%d", j)
		// A short crash backoff: the same task may be a victim of many
		// faults in a row.
		w.setTask(name, 1, "restartBackoff: {initial: 500ms, max: 2s, resetAfter: 5s}")
		names = append(names, name)
	}
	w.start()
	w.ready("set-up")
	iterations(t, func(i int) {
		victims, b := w.victims(names)
		running := w.running()
		var did []string
		for _, v := range victims {
			c, ok := running[v]
			if !ok {
				t.Fatalf("victim %s not running", v)
			}
			var out string
			var err error
			switch how := w.rng.IntN(4); how {
			case 0:
				err = syscall.Kill(int(c.Pid), syscall.SIGKILL)
				did = append(did, v+": kill -9 its process")
			case 1:
				out, err = w.ctr("tasks", "kill", "-s", "SIGKILL", c.ID)
				did = append(did, v+": ctr tasks kill")
			case 2:
				out, err = w.ctr("tasks", "rm", "-f", c.ID)
				did = append(did, v+": ctr tasks rm -f")
			case 3:
				// Two commands: the reconciler may start a new task of
				// the container in between (a container without a task
				// is started at once); then both are tried again.
				for try := 0; try < 5; try++ {
					if out, err = w.ctr("tasks", "rm", "-f", c.ID); err == nil {
						// "cannot delete running task" or "task must be
						// stopped before deletion", as the race falls.
						if out, err = w.ctr("containers", "rm", c.ID); err == nil || !strings.Contains(out, "running") {
							break
						}
					}
				}
				did = append(did, v+": ctr tasks rm -f, ctr containers rm")
			}
			if err != nil {
				t.Fatalf("%s: %v\n%s", did[len(did)-1], err, out)
			}
		}
		since := time.Now()
		w.converge(fmt.Sprintf("ctr %d (%s)", i, strings.Join(did, "; ")), since, b)
	})
}
