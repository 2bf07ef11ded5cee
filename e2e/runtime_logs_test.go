package e2e

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/warren/reconciler/e2e/testenv"
	"github.com/warren/reconciler/pkg/runtime/logfile"
)

var tickRe = regexp.MustCompile(`testapp: tick (\S+)`)

// ticks returns the times of the tick lines in out.
func ticks(t *testing.T, out string) []time.Time {
	t.Helper()
	var ts []time.Time
	for _, m := range tickRe.FindAllStringSubmatch(out, -1) {
		tm, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil {
			t.Fatalf("bad tick line %q", m[0])
		}
		ts = append(ts, tm)
	}
	return ts
}

// TestRuntimeLogs: a task's output is written by the shim's log driver
// while the reconciler is down, is rotated within the configured bound,
// and `reconciler logs` reads it (all, --tail, -f) with no daemon; the
// files go with the container.
func TestRuntimeLogs(t *testing.T) {
	n := newNode(t, "e2e-rt-logs")
	dir := t.TempDir()
	const maxSize, maxFiles = 4096, 3
	flags := []string{"--log-max-size", "4Ki", "--log-max-files", "3"}
	d := startReconciler(t, n.ns, dir, flags...)
	state := stateDir(n.ns)
	logDir := filepath.Join(state, "logs")
	testenv.WriteFile(t, dir, "chatty.yaml", testenv.Manifest("chatty", testenv.EnvSpec("TICK", "20ms", "TICK_PAD", "100")))
	var c ctr
	testenv.WaitFor(t, converge, "chatty running", func() (ok bool) { c, ok = n.running("chatty"); return ok })

	d.Stop()
	down := time.Now()
	time.Sleep(time.Second)
	up := time.Now()
	startReconciler(t, n.ns, dir, flags...)

	// Read with no daemon involved: the command only reads files.
	out := reconcilerLogs(t, "chatty", "--state-dir", state)
	var during int
	for _, tm := range ticks(t, out) {
		if tm.After(down.Add(100*time.Millisecond)) && tm.Before(up.Add(-100*time.Millisecond)) {
			during++
		}
	}
	if during < 20 {
		t.Errorf("%d tick lines from the second the reconciler was down, want about 50:\n%.2000s", during, out)
	}
	if !strings.Contains(out, "testapp: start") && len(ticks(t, out)) == 0 {
		t.Errorf("no output from the task:\n%s", out)
	}

	// Rotation: about 6 KiB/s into 4 KiB files, at most 3 of them.
	testenv.WaitFor(t, converge, "a second rotation", func() bool { return fileExists(filepath.Join(logDir, c.ID+".log.2")) })
	time.Sleep(500 * time.Millisecond)
	files, err := filepath.Glob(filepath.Join(logDir, c.ID+".log*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) > maxFiles {
		t.Errorf("%d log files %v, want at most %d", len(files), files, maxFiles)
	}
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil && fi.Size() > maxSize {
			t.Errorf("%s is %d bytes, over --log-max-size %d", f, fi.Size(), maxSize)
		}
	}

	tail := reconcilerLogs(t, "chatty", "--tail", "3", "--state-dir", state)
	if lines := strings.Split(strings.TrimSuffix(tail, "\n"), "\n"); len(lines) != 3 || len(ticks(t, tail)) != 3 {
		t.Errorf("--tail 3 printed %q", tail)
	}

	// -f prints lines written after it started.
	ctx, cancel := context.WithTimeout(t.Context(), converge)
	defer cancel()
	follow := exec.CommandContext(ctx, env.bin, "logs", "-f", "--tail", "0", "--state-dir", state, "chatty")
	stdout, err := follow.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	var fresh int
	for fresh < 5 && sc.Scan() {
		if ts := ticks(t, sc.Text()); len(ts) == 1 && ts[0].After(started) {
			fresh++
		}
	}
	cancel()
	_ = follow.Wait()
	if fresh < 5 {
		t.Errorf("logs -f printed %d new lines, want 5", fresh)
	}

	// Deleting the task deletes its log files.
	if err := os.Remove(filepath.Join(dir, "chatty.yaml")); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, converge, "chatty removed", func() bool { return len(n.containers("chatty")) == 0 })
	// The runtime removes the files right after containerd removed the
	// container: allow for the moment in between.
	var left []string
	deadline := time.Now().Add(5 * time.Second)
	for left, _ = logfile.Files(logDir, c.ID); len(left) != 0 && time.Now().Before(deadline); left, _ = logfile.Files(logDir, c.ID) {
		time.Sleep(50 * time.Millisecond)
	}
	if len(left) != 0 {
		t.Errorf("log files left 5s after the container was deleted: %v", left)
	}
}
