package chaos

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/warren/reconciler/e2e/testenv"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/warren/reconciler/pkg/runtime/logfile"
)

// TestChaosDiskFull (fault 6): the state directory (task logs, staged
// secrets, volumes) on a tiny tmpfs that fills up while tasks write their
// output. The tasks keep running; a task that needs the disk to be created
// shows the error on the status; once space is freed the new task runs and
// the running tasks' logs flow again.
func TestChaosDiskFull(t *testing.T) {
	requireEnv(t)
	state := filepath.Join(env.dir, "s-disk")
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", state).CombinedOutput(); err != nil {
		t.Fatalf("mount a tmpfs: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", state).CombinedOutput(); err != nil {
			t.Logf("umount %s: %v\n%s", state, err, out)
		}
	})
	secrets := filepath.Join(env.dir, "secret-src")
	if err := os.MkdirAll(secrets, 0o700); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(secrets, "token")
	// Larger than what a log rotation frees for a moment before the filler
	// takes it again (a log file, 64 KiB, per task): a staged copy never
	// fits while the disk is kept full.
	if err := os.WriteFile(secret, bytes.Repeat([]byte("s3cr3t\n"), (1<<20)/7), 0o600); err != nil {
		t.Fatal(err)
	}
	w := newWorld(t, "disk", "", state, "--allowed-secret-sources", secrets,
		"--log-max-size", "64Ki", "--log-max-files", "2")
	// Tasks that write all the time: their log driver meets the full disk.
	for _, n := range []string{"chatty-a", "chatty-b"} {
		w.setTask(n, 1, "args: [-tick, 20ms, -tick-pad, 200]")
		w.stable = append(w.stable, n)
	}
	w.addStable("quiet")
	w.addBystander("bystander")
	w.start()
	w.ready("set-up")
	filler := filepath.Join(state, "filler")
	iterations(t, func(i int) {
		b := w.baseline()
		if i > 0 {
			w.removeTask(fmt.Sprintf("needs-disk-%d", i-1))
		}
		// Full, and kept full: log rotation frees a little now and then.
		// The note of dropped records may come in such a gap, and be
		// rotated away before the disk is freed: the notes are looked for
		// from now on, as they are written.
		notes := w.watchNotes(time.Now(), "chatty-a", "chatty-b")
		defer notes.stop()
		stop := keepFull(t, filler)
		name := fmt.Sprintf("needs-disk-%d", i)
		w.setTask(name, 1, fmt.Sprintf("secrets: [{name: token, file: %s}]", secret))
		var msg string
		waitFor(t, 30*time.Second, name+" failing for want of space on the status", func() bool {
			var phase string
			phase, msg = w.taskStatus(name)
			return phase == "Error" && strings.Contains(msg, "no space left on device")
		})
		// The chatty tasks have met the full disk by now.
		time.Sleep(2 * time.Second)
		w.noCrash()
		for _, n := range []string{"chatty-a", "chatty-b", "quiet"} {
			if phase, m := w.taskStatus(n); phase != "Running" {
				t.Errorf("disk %d: %s is %s (%s) while the disk is full", i, n, phase, m)
			}
		}
		logs := w.logSizes("chatty-a", "chatty-b")
		stop()
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
		since := time.Now()
		w.converge(fmt.Sprintf("disk %d (status said %q)", i, msg), since, b)
		// The output of the running tasks reaches the disk again, after a
		// note of what was lost. (The log driver tries again every second;
		// the bound leaves room for a loaded machine.)
		var why string
		err := testenv.Poll(20*time.Second, 100*time.Millisecond, "logs", func() bool {
			now := w.logSizes("chatty-a", "chatty-b")
			for id, size := range logs {
				switch {
				case now[id] == size:
					why = fmt.Sprintf("%s's log did not grow (%d bytes)", id, size)
					return false
				case !notes.seen(id):
					why = fmt.Sprintf("%s's log grew (%d -> %d bytes), and no note of records dropped was written since the disk filled", id, size, now[id])
					return false
				}
			}
			return true
		})
		if err != nil {
			t.Fatalf("disk %d: 20s after the disk freed: %s (seed %d)", i, why, env.seed)
		}
	})
}

// keepFull fills the filesystem of path with path, and fills it again
// every 10ms until the returned stop is called.
func keepFull(t *testing.T, path string) (stop func()) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := fill(f); err != nil {
		t.Fatal(err)
	}
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				_ = fill(f)
			}
		}
	}()
	return func() {
		close(done)
		<-finished
		f.Close()
	}
}

// fill appends to f until the filesystem is full.
func fill(f *os.File) error {
	buf := make([]byte, 64<<10)
	for _, n := range []int{len(buf), 4096, 512} {
		for {
			if _, err := f.Write(buf[:n]); err != nil {
				if errors.Is(err, syscall.ENOSPC) {
					break
				}
				return err
			}
		}
	}
	return nil
}

// logSizes returns the total size of the log files of each task's running
// container, by container ID.
func (w *world) logSizes(tasks ...string) map[string]int64 {
	w.t.Helper()
	running := w.running()
	out := map[string]int64{}
	for _, task := range tasks {
		c, ok := running[task]
		if !ok {
			w.t.Fatalf("%s not running", task)
		}
		path := logfile.Path(filepath.Join(w.state, "logs"), c.ID)
		var total int64
		matches, _ := filepath.Glob(path + "*")
		for _, m := range matches {
			if fi, err := os.Stat(m); err == nil {
				total += fi.Size()
			}
		}
		// Rotation may shrink the total; a changed total is output
		// flowing.
		out[c.ID] = total
	}
	return out
}

// noteWatch looks for notes of dropped records in tasks' logs, every
// 100 ms, and keeps which containers wrote one since it began.
type noteWatch struct {
	mu    sync.Mutex
	found map[string]bool
	done  chan struct{}
	once  sync.Once
}

// watchNotes starts a noteWatch over the running containers of tasks, for
// notes written at or after since (records carry their time).
func (w *world) watchNotes(since time.Time, tasks ...string) *noteWatch {
	w.t.Helper()
	var ids []string
	for _, task := range tasks {
		c, ok := w.running()[task]
		if !ok {
			w.t.Fatalf("%s not running", task)
		}
		ids = append(ids, c.ID)
	}
	n := &noteWatch{found: map[string]bool{}, done: make(chan struct{})}
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			for _, id := range ids {
				if w.noteSince(id, since) {
					n.mu.Lock()
					n.found[id] = true
					n.mu.Unlock()
				}
			}
			select {
			case <-n.done:
				return
			case <-tick.C:
			}
		}
	}()
	return n
}

func (n *noteWatch) seen(id string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.found[id]
}

func (n *noteWatch) stop() { n.once.Do(func() { close(n.done) }) }

// noteSince reports whether a log file of container id holds a note of
// dropped records written at or after since.
func (w *world) noteSince(id string, since time.Time) bool {
	matches, _ := filepath.Glob(logfile.Path(filepath.Join(w.state, "logs"), id) + "*")
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if !strings.Contains(line, "records dropped: ") {
				continue
			}
			ts, _, _ := strings.Cut(line, " ")
			if at, err := time.Parse(time.RFC3339Nano, ts); err == nil && !at.Before(since) {
				return true
			}
		}
	}
	return false
}
