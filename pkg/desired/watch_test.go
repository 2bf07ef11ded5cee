package desired

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
)

const waitTimeout = 10 * time.Second

// watchHarness runs a Watcher whose callback loads the directory and hands
// the State to the test.
type watchHarness struct {
	t      *testing.T
	states chan State
	logs   *logSink
}

type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (s *logSink) count(substr string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, l := range s.lines {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

func startWatcher(t *testing.T, dir string, configure func(*Watcher)) *watchHarness {
	t.Helper()
	h := &watchHarness{t: t, states: make(chan State), logs: &logSink{}}
	log := funcr.New(func(prefix, args string) {
		h.logs.mu.Lock()
		h.logs.lines = append(h.logs.lines, args)
		h.logs.mu.Unlock()
		t.Log(args)
	}, funcr.Options{Verbosity: 1})
	w := NewWatcher(dir, 20*time.Millisecond, log)
	if configure != nil {
		configure(w)
	}
	l := NewLoader(dir)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	var inFlight atomic.Int32
	go func() {
		done <- w.Run(ctx, func() {
			if inFlight.Add(1) != 1 {
				t.Error("changed called concurrently")
			}
			defer inFlight.Add(-1)
			st := l.Load()
			select {
			case h.states <- st:
			case <-ctx.Done():
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v, want nil", err)
			}
		case <-time.After(waitTimeout):
			t.Error("Run did not return after cancel")
		}
	})
	return h
}

// waitFor receives states until one satisfies ok, or fails the test.
func (h *watchHarness) waitFor(what string, ok func(State) bool) {
	h.t.Helper()
	deadline := time.After(waitTimeout)
	var last State
	for {
		select {
		case st := <-h.states:
			if ok(st) {
				return
			}
			last = st
		case <-deadline:
			tasks, broken := summary(last)
			h.t.Fatalf("timed out waiting for %s; last state: tasks %v broken %v err %v", what, tasks, broken, last.Err)
		}
	}
}

func hasImage(name, image string) func(State) bool {
	return func(st State) bool { return st.Err == nil && st.Tasks[name].Spec.Image == image }
}

func hasNoTask(name string) func(State) bool {
	return func(st State) bool {
		_, ok := st.Tasks[name]
		return st.Err == nil && !ok
	}
}

func TestWatcherFileChanges(t *testing.T) {
	dir := t.TempDir()
	h := startWatcher(t, dir, nil)
	h.waitFor("the call at start", func(st State) bool { return st.Err == nil && len(st.Tasks) == 0 })

	writeFile(t, dir, "web.yaml", manifest("web", "nginx:1"))
	h.waitFor("create", hasImage("web", "nginx:1"))

	writeFile(t, dir, "web.yaml", manifest("web", "nginx:2"))
	h.waitFor("modify", hasImage("web", "nginx:2"))

	if err := os.Remove(filepath.Join(dir, "web.yaml")); err != nil {
		t.Fatal(err)
	}
	h.waitFor("delete", hasNoTask("web"))

	// Atomic write: a dotfile that is ignored, renamed into place.
	writeFile(t, dir, ".web.yaml.tmp", manifest("web", "nginx:3"))
	if err := os.Rename(filepath.Join(dir, ".web.yaml.tmp"), filepath.Join(dir, "web.yaml")); err != nil {
		t.Fatal(err)
	}
	h.waitFor("rename into the directory", hasImage("web", "nginx:3"))

	// Renamed in from another directory.
	other := t.TempDir()
	writeFile(t, other, "db.yaml", manifest("db", "postgres"))
	if err := os.Rename(filepath.Join(other, "db.yaml"), filepath.Join(dir, "db.yaml")); err != nil {
		t.Fatal(err)
	}
	h.waitFor("move from elsewhere", hasImage("db", "postgres"))
}

func TestWatcherDirectoryDeletedAndRecreated(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "manifests")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "web.yaml", manifest("web", "nginx:1"))
	h := startWatcher(t, dir, nil)
	h.waitFor("the call at start", hasImage("web", "nginx:1"))

	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	h.waitFor("the directory to go", func(st State) bool { return st.Err != nil })

	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	h.waitFor("the empty directory", func(st State) bool { return st.Err == nil })
	writeFile(t, dir, "web.yaml", manifest("web", "nginx:2"))
	h.waitFor("a file in the re-created directory", hasImage("web", "nginx:2"))

	// And the new directory is watched, not only noticed.
	writeFile(t, dir, "web.yaml", manifest("web", "nginx:3"))
	h.waitFor("a change in the re-created directory", hasImage("web", "nginx:3"))

	// Renamed away and back.
	if err := os.Rename(dir, dir+".old"); err != nil {
		t.Fatal(err)
	}
	h.waitFor("the directory to be renamed away", func(st State) bool { return st.Err != nil })
	writeFile(t, dir+".old", "web.yaml", manifest("web", "nginx:4"))
	if err := os.Rename(dir+".old", dir); err != nil {
		t.Fatal(err)
	}
	h.waitFor("the directory to be renamed back", hasImage("web", "nginx:4"))
	writeFile(t, dir, "web.yaml", manifest("web", "nginx:5"))
	h.waitFor("a change after the rename", hasImage("web", "nginx:5"))
}

func TestWatcherDirectoryMissingAtStart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "manifests")
	h := startWatcher(t, dir, nil)
	h.waitFor("the call at start", func(st State) bool { return st.Err != nil })
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "web.yaml", manifest("web", "nginx:1"))
	h.waitFor("the directory to appear", hasImage("web", "nginx:1"))
	writeFile(t, dir, "web.yaml", manifest("web", "nginx:2"))
	h.waitFor("a change in it", hasImage("web", "nginx:2"))
}

func TestWatcherSymlinkSwap(t *testing.T) {
	// The layout of a Kubernetes ConfigMap volume or of git-sync: the
	// directory is a symlink that is atomically replaced.
	root := t.TempDir()
	for _, v := range []string{"v1", "v2"} {
		if err := os.Mkdir(filepath.Join(root, v), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(root, v), "web.yaml", manifest("web", "nginx:"+v))
	}
	dir := filepath.Join(root, "current")
	if err := os.Symlink("v1", dir); err != nil {
		t.Fatal(err)
	}
	h := startWatcher(t, dir, nil)
	h.waitFor("the call at start", hasImage("web", "nginx:v1"))
	if err := os.Symlink("v2", dir+".new"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(dir+".new", dir); err != nil {
		t.Fatal(err)
	}
	h.waitFor("the swapped directory", hasImage("web", "nginx:v2"))
	writeFile(t, filepath.Join(root, "v2"), "web.yaml", manifest("web", "nginx:v2b"))
	h.waitFor("a change behind the new symlink", hasImage("web", "nginx:v2b"))
}

func TestWatcherPollsWhenWatchLimitReached(t *testing.T) {
	dir := t.TempDir()
	h := startWatcher(t, dir, func(w *Watcher) {
		w.poll = 20 * time.Millisecond
		w.newFS = func() (*fsnotify.Watcher, error) {
			return nil, fmt.Errorf("couldn't initialize inotify: %w", syscall.EMFILE)
		}
	})
	h.waitFor("the call at start", func(st State) bool { return st.Err == nil })
	writeFile(t, dir, "web.yaml", manifest("web", "nginx:1"))
	h.waitFor("create, by polling", hasImage("web", "nginx:1"))
	writeFile(t, dir, "web.yaml", manifest("web", "nginx:22"))
	h.waitFor("modify, by polling", hasImage("web", "nginx:22"))
	if err := os.Remove(filepath.Join(dir, "web.yaml")); err != nil {
		t.Fatal(err)
	}
	h.waitFor("delete, by polling", hasNoTask("web"))
	if n := h.logs.count("polling it instead"); n != 1 {
		t.Errorf("the fall back to polling was logged %d times, want once", n)
	}
}

func TestWatcherParentMissingAtStart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b", "manifests")
	h := startWatcher(t, dir, func(w *Watcher) { w.poll = 20 * time.Millisecond })
	h.waitFor("the call at start", func(st State) bool { return st.Err != nil })
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "web.yaml", manifest("web", "nginx:1"))
	h.waitFor("the directory and its parents to appear", hasImage("web", "nginx:1"))
	writeFile(t, dir, "web.yaml", manifest("web", "nginx:2"))
	h.waitFor("a change in it", hasImage("web", "nginx:2"))
}

func TestWatcherIgnoresSiblingsAndIgnoredFiles(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "manifests")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r := &watchRun{w: NewWatcher(dir, 0, logr.Discard())}
	tests := []struct {
		ev   fsnotify.Event
		want bool
	}{
		{fsnotify.Event{Name: filepath.Join(dir, "web.yaml"), Op: fsnotify.Write}, true},
		{fsnotify.Event{Name: filepath.Join(dir, ".web.yaml.swp"), Op: fsnotify.Write}, false},
		{fsnotify.Event{Name: filepath.Join(root, "other"), Op: fsnotify.Create}, false},
		{fsnotify.Event{Name: dir, Op: fsnotify.Remove}, true},
		{fsnotify.Event{Name: filepath.Join(dir, "sub", "x.yaml"), Op: fsnotify.Create}, false},
	}
	for _, tt := range tests {
		if got := r.event(tt.ev); got != tt.want {
			t.Errorf("event(%v) = %v, want %v", tt.ev, got, tt.want)
		}
	}
}
