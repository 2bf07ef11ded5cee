package chaos

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
	if err := os.WriteFile(secret, []byte("s3cr3t\n"), 0o600); err != nil {
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
		fill(t, filler)
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
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
		since := time.Now()
		w.converge(fmt.Sprintf("disk %d (status said %q)", i, msg), since, b)
		// The output of the running tasks reaches the disk again.
		waitFor(t, 10*time.Second, "the chatty tasks' logs to grow again", func() bool {
			now := w.logSizes("chatty-a", "chatty-b")
			for id, size := range logs {
				if now[id] == size {
					return false
				}
			}
			return true
		})
	})
}

// fill writes path until the filesystem is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			t.Fatal(err)
		}
	}
	// Smaller writes take the last pages.
	for {
		if _, err := f.Write(buf[:512]); err != nil {
			return
		}
	}
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
