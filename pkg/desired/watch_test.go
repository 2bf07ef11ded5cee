package desired

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/warren/reconciler/pkg/clock"
)

const (
	waitTimeout   = 10 * time.Second
	testDebounce  = 20 * time.Millisecond
	slowWriterGap = 5 * testDebounce // a pause a writer makes mid-save: long enough for a read in between
)

// watchHarness runs a Watcher whose callback loads the directory and hands
// every State to the test, in order.
type watchHarness struct {
	t      *testing.T
	states chan State
	calls  atomic.Int64 // callback invocations
	loader *Loader
	logs   *logSink
	gate   chan struct{} // when not nil, the callback waits on it before loading
	gateMu sync.Mutex
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
	h := &watchHarness{t: t, states: make(chan State, 4096), logs: &logSink{}, loader: NewLoader(dir)}
	log := funcr.New(func(prefix, args string) {
		h.logs.mu.Lock()
		h.logs.lines = append(h.logs.lines, args)
		h.logs.mu.Unlock()
		t.Log(args)
	}, funcr.Options{Verbosity: 1})
	w := NewWatcher(dir, testDebounce, log)
	if configure != nil {
		configure(w)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	var inFlight atomic.Int32
	go func() {
		done <- w.Run(ctx, func() {
			if inFlight.Add(1) != 1 {
				t.Error("changed called concurrently")
			}
			defer inFlight.Add(-1)
			h.calls.Add(1)
			h.gateMu.Lock()
			gate := h.gate
			h.gateMu.Unlock()
			if gate != nil {
				select {
				case <-gate:
				case <-ctx.Done():
				}
			}
			st := h.loader.Load()
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
func (h *watchHarness) waitFor(what string, ok func(State) bool) State {
	h.t.Helper()
	return h.waitAll(what, ok, nil)
}

// waitAll receives states until one satisfies ok; every state before it
// must satisfy always (when not nil), which says what it saw when not.
func (h *watchHarness) waitAll(what string, ok func(State) bool, always func(State) string) State {
	h.t.Helper()
	return h.waitAllFor(waitTimeout, what, ok, always)
}

func (h *watchHarness) waitAllFor(timeout time.Duration, what string, ok func(State) bool, always func(State) string) State {
	h.t.Helper()
	deadline := time.After(timeout)
	var last State
	for {
		select {
		case st := <-h.states:
			if always != nil {
				if bad := always(st); bad != "" {
					h.t.Fatalf("while waiting for %s: %s", what, bad)
				}
			}
			if ok(st) {
				return st
			}
			last = st
		case <-deadline:
			tasks, broken := summary(last)
			h.t.Fatalf("timed out waiting for %s; last state: tasks %v broken %v err %v", what, tasks, broken, last.Err)
		}
	}
}

// quiet checks every state that arrives within d (the watcher settling after
// the last event).
func (h *watchHarness) quiet(d time.Duration, always func(State) string) int {
	h.t.Helper()
	n := 0
	end := time.After(d)
	for {
		select {
		case st := <-h.states:
			n++
			if bad := always(st); bad != "" {
				h.t.Fatalf("after settling: %s", bad)
			}
		case <-end:
			return n
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

func and(fs ...func(State) bool) func(State) bool {
	return func(st State) bool {
		for _, f := range fs {
			if !f(st) {
				return false
			}
		}
		return true
	}
}

func noBroken(st State) bool { return st.Err == nil && len(st.Broken) == 0 }

// keeps says what is wrong with a state in which task name does not run one
// of images (the directory read fine).
func keeps(name string, images ...string) func(State) string {
	return func(st State) string {
		if st.Err != nil {
			return fmt.Sprintf("directory error %v", st.Err)
		}
		t, ok := st.Tasks[name]
		if !ok || !slices.Contains(images, t.Spec.Image) {
			tasks, broken := summary(st)
			return fmt.Sprintf("task %s not at one of %v: tasks %v broken %v", name, images, tasks, broken)
		}
		return ""
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

// A save is one way a program replaces web.yaml's content with next.
// pause is slept at the points where a slow writer (a loaded machine, a
// network filesystem) would leave the file in a transient state.
type save func(t *testing.T, dir, next string, pause time.Duration)

func sleep(d time.Duration) {
	if d > 0 {
		time.Sleep(d) // a slow writer, not a wait for a condition
	}
}

// writeInPlace opens name without truncating, truncates it, writes data in
// the given pieces and closes it: what vim does for the file it saves (open
// O_WRONLY|O_CREAT, ftruncate, write, fsync, fchmod, close).
func writeInPlace(t *testing.T, path string, pause time.Duration, pieces ...string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644)
	must(t, err)
	defer f.Close()
	must(t, f.Truncate(0))
	for _, p := range pieces {
		sleep(pause)
		_, err := f.WriteString(p)
		must(t, err)
	}
	must(t, f.Sync())
	must(t, f.Chmod(0o644))
	must(t, f.Close())
}

// vimSave replays vim's system calls for `:w` with 'writebackup' (the
// default) and 'nobackup', as strace shows them for vim 9:
//
//	backupcopy=auto: open("4913", O_CREAT|O_EXCL), fchown, close,
//	  unlink("4913"), then as for no
//	backupcopy=no:   rename(web.yaml, web.yaml~), open(web.yaml,
//	  O_WRONLY|O_CREAT), ftruncate, write, fsync, fchmod, close,
//	  unlink(web.yaml~)
//	backupcopy=yes:  open(web.yaml~, O_CREAT|O_EXCL), write the old
//	  content, utimensat, close, open(web.yaml, O_WRONLY|O_CREAT), ftruncate,
//	  write, fsync, fchmod, close, unlink(web.yaml~)
func vimSave(mode string) save {
	return func(t *testing.T, dir, next string, pause time.Duration) {
		path := filepath.Join(dir, "web.yaml")
		backup := path + "~"
		if mode == "auto" {
			probe := filepath.Join(dir, "4913")
			f, err := os.OpenFile(probe, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o644)
			must(t, err)
			must(t, f.Chown(os.Getuid(), os.Getgid()))
			must(t, f.Close())
			must(t, os.Remove(probe))
		}
		if err := os.Remove(backup); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if mode == "yes" {
			old, err := os.ReadFile(path)
			must(t, err)
			f, err := os.OpenFile(backup, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o644)
			must(t, err)
			_, err = f.Write(old)
			must(t, err)
			must(t, f.Close())
			now := time.Now()
			must(t, os.Chtimes(backup, now, now))
		} else {
			must(t, os.Rename(path, backup))
		}
		sleep(pause)
		writeInPlace(t, path, pause, next)
		sleep(pause)
		must(t, os.Remove(backup))
	}
}

// realVim runs vim itself on the file (skipped when vim is not installed).
// backupskip is emptied: its default skips backups under /tmp.
func realVim(mode string) save {
	return func(t *testing.T, dir, next string, pause time.Duration) {
		vim, err := exec.LookPath("vim")
		if err != nil {
			t.Skip("vim not installed")
		}
		script := filepath.Join(t.TempDir(), "next.yaml")
		must(t, os.WriteFile(script, []byte(next), 0o644))
		cmd := exec.Command(vim, "-u", "NONE", "-N", "-n", "-es",
			"-c", "set writebackup nobackup backupskip= backupdir=. backupcopy="+mode,
			"-c", "%d", "-c", "read "+script, "-c", "wq", "web.yaml")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("vim: %v\n%s", err, out)
		}
	}
}

// emacsFirstSave is emacs' first save of a visited file: the lock symlink
// ".#web.yaml" made on the first change, an auto-save "#web.yaml#" of the
// half-edited buffer, then the backup made by renaming the original to
// "web.yaml~", the new file written, the auto-save and the lock removed.
func emacsFirstSave(t *testing.T, dir, next string, pause time.Duration) {
	path := filepath.Join(dir, "web.yaml")
	lock := filepath.Join(dir, ".#web.yaml")
	autosave := filepath.Join(dir, "#web.yaml#")
	must(t, os.Symlink("root@node.4242:1767225600", lock))
	must(t, os.WriteFile(autosave, []byte(manifest("autosave", "busybox")+"spec: {ima"), 0o644))
	sleep(pause)
	must(t, os.Rename(path, path+"~"))
	sleep(pause)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	must(t, err)
	_, err = f.WriteString(next)
	must(t, err)
	must(t, f.Close())
	must(t, os.Remove(autosave))
	must(t, os.Remove(lock))
}

// emacsLaterSave is a later save in the same session: the backup exists, the
// file is written in place.
func emacsLaterSave(t *testing.T, dir, next string, pause time.Duration) {
	path := filepath.Join(dir, "web.yaml")
	must(t, os.WriteFile(path+"~", []byte("an older backup"), 0o644))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0o644)
	must(t, err)
	sleep(pause)
	_, err = f.WriteString(next)
	must(t, err)
	must(t, f.Close())
}

func atomicRename(tmpName string) save {
	return func(t *testing.T, dir, next string, pause time.Duration) {
		tmp := filepath.Join(dir, tmpName)
		must(t, os.WriteFile(tmp, []byte(next), 0o644))
		sleep(pause)
		must(t, os.Rename(tmp, filepath.Join(dir, "web.yaml")))
	}
}

func inPlace(t *testing.T, dir, next string, pause time.Duration) {
	must(t, os.WriteFile(filepath.Join(dir, "web.yaml"), []byte(next), 0o644))
}

// chunked writes the new content in place in three pieces, each cut in the
// middle of a line so that no prefix is valid.
func chunked(t *testing.T, dir, next string, pause time.Duration) {
	a, b := len(next)/3, 2*len(next)/3
	f, err := os.OpenFile(filepath.Join(dir, "web.yaml"), os.O_WRONLY|os.O_TRUNC, 0o644)
	must(t, err)
	defer f.Close()
	for _, piece := range []string{next[:a], next[a:b], next[b:]} {
		_, err := f.WriteString(piece)
		must(t, err)
		sleep(pause)
	}
	must(t, f.Close())
}

func truncateThenWrite(t *testing.T, dir, next string, pause time.Duration) {
	path := filepath.Join(dir, "web.yaml")
	must(t, os.Truncate(path, 0))
	sleep(pause)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o644)
	must(t, err)
	_, err = f.WriteString(next)
	must(t, err)
	must(t, f.Close())
}

func command(name string, args ...string) save {
	return func(t *testing.T, dir, next string, pause time.Duration) {
		args := slices.Clone(args)
		for i, a := range args {
			if a == "SRC" {
				args[i] = filepath.Join(t.TempDir(), "web.yaml")
				must(t, os.WriteFile(args[i], []byte(next), 0o644))
			}
		}
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
}

// TestWatcherWritePatterns replaces web.yaml's content (image nginx:1 ->
// nginx:2) the way people and tools do. Every state the callback sees along
// the way must still have the task, at the old or the new image, and no
// other task (editor files are never read): a transient state never removes
// it. The slow variants pause where the writer leaves a transient state
// (file renamed away, empty, half written) for longer than the debounce, so
// the watcher does read in between: last known good, the empty-file rule and
// the remove grace must then hold the task.
func TestWatcherWritePatterns(t *testing.T) {
	tests := []struct {
		name  string
		save  save
		pause time.Duration
		// midway: the pause is long enough that a read must happen while
		// the file is broken or empty (proving the task is kept by the
		// loader, not only by the debounce).
		midway bool
	}{
		{name: "create in place", save: inPlace},
		{name: "chunked", save: chunked, pause: slowWriterGap, midway: true},
		{name: "atomic rename of a dotfile", save: atomicRename(".web.yaml.tmp")},
		{name: "atomic rename of a .tmp", save: atomicRename("web.yaml.tmp")},
		{name: "atomic rename, slow", save: atomicRename(".web.yaml.tmp"), pause: slowWriterGap},
		{name: "vim backupcopy=auto", save: vimSave("auto")},
		{name: "vim backupcopy=no", save: vimSave("no")},
		{name: "vim backupcopy=yes", save: vimSave("yes")},
		{name: "vim backupcopy=no, slow", save: vimSave("no"), pause: slowWriterGap, midway: true},
		{name: "vim backupcopy=yes, slow", save: vimSave("yes"), pause: slowWriterGap, midway: true},
		{name: "real vim backupcopy=no", save: realVim("no")},
		{name: "real vim backupcopy=yes", save: realVim("yes")},
		{name: "emacs first save", save: emacsFirstSave},
		{name: "emacs first save, slow", save: emacsFirstSave, pause: slowWriterGap},
		{name: "emacs later save, slow", save: emacsLaterSave, pause: slowWriterGap, midway: true},
		{name: "sed -i", save: command("sed", "-i", "s/nginx:1/nginx:2/", "web.yaml")},
		{name: "cp over", save: command("cp", "SRC", "web.yaml")},
		{name: "truncate then write, slow", save: truncateThenWrite, pause: slowWriterGap, midway: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, "web.yaml", manifest("web", "nginx:1"))
			h := startWatcher(t, dir, nil)
			h.waitFor("the call at start", hasImage("web", "nginx:1"))

			sawBroken := false
			always := func(st State) string {
				if bad := keeps("web", "nginx:1", "nginx:2")(st); bad != "" {
					return bad
				}
				if len(st.Tasks) != 1 || slices.ContainsFunc(slices.Collect(maps.Keys(st.Broken)), func(f string) bool { return f != "web.yaml" }) {
					tasks, broken := summary(st)
					return fmt.Sprintf("an editor's file was read: tasks %v broken %v", tasks, broken)
				}
				if st.Broken["web.yaml"] != nil {
					sawBroken = true
				}
				return ""
			}
			tt.save(t, dir, manifest("web", "nginx:2"), tt.pause)
			h.waitAll("the new content", and(hasImage("web", "nginx:2"), noBroken), always)
			h.quiet(2*RemoveGrace, func(st State) string {
				if !hasImage("web", "nginx:2")(st) || !noBroken(st) {
					return "the state changed after the new content was read: " + fmt.Sprint(summary(st))
				}
				return ""
			})
			if tt.midway && !sawBroken {
				t.Errorf("no read while the file was half written; the test did not exercise last known good")
			}
		})
	}
}

// TestWatcherMoves moves files out of, into and within the directory.
func TestWatcherMoves(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	writeFile(t, dir, "web.yaml", manifest("web", "nginx:1"))
	writeFile(t, dir, "db.yaml", manifest("db", "postgres"))
	h := startWatcher(t, dir, nil)
	before := h.waitFor("the call at start", and(hasImage("web", "nginx:1"), hasImage("db", "postgres")))

	// Renamed within: the same task from another file, the same spec.
	must(t, os.Rename(filepath.Join(dir, "web.yaml"), filepath.Join(dir, "site.yaml")))
	st := h.waitAll("web from site.yaml", func(st State) bool { return st.Tasks["web"].Source == "site.yaml" }, keeps("web", "nginx:1"))
	if st.Tasks["web"].Hash() != before.Tasks["web"].Hash() {
		t.Errorf("renaming the file changed the spec hash")
	}

	// Moved out: the task goes, but only after the grace period (the
	// directory's modification time, which the loader compares, comes from
	// the kernel's coarse clock: up to a few milliseconds early).
	moved := time.Now()
	must(t, os.Rename(filepath.Join(dir, "site.yaml"), filepath.Join(other, "site.yaml")))
	h.waitAll("web removed", hasNoTask("web"), keeps("db", "postgres"))
	if took := time.Since(moved); took < RemoveGrace-10*time.Millisecond {
		t.Errorf("a moved-out file was acted on after %s, before the grace period %s", took, RemoveGrace)
	}

	// Moved in.
	must(t, os.Rename(filepath.Join(other, "site.yaml"), filepath.Join(dir, "site.yaml")))
	h.waitAll("web back", hasImage("web", "nginx:1"), keeps("db", "postgres"))

	// Moved out and, within the grace period, back: never removed.
	must(t, os.Rename(filepath.Join(dir, "site.yaml"), filepath.Join(other, "site.yaml")))
	sleep(slowWriterGap)
	must(t, os.Rename(filepath.Join(other, "site.yaml"), filepath.Join(dir, "site.yaml")))
	h.quiet(2*RemoveGrace, keeps("web", "nginx:1"))
}

// TestWatcherTouchAndChmodParseNothing: events whose content is unchanged
// (touch, chmod, the same bytes written again, cp of the same content) lead
// to a state equal to the last one, and no file is parsed again.
func TestWatcherTouchAndChmodParseNothing(t *testing.T) {
	dir := t.TempDir()
	content := manifest("web", "nginx:1")
	writeFile(t, dir, "web.yaml", content)
	writeFile(t, dir, "db.yaml", manifest("db", "postgres"))
	h := startWatcher(t, dir, nil)
	first := h.waitFor("the call at start", and(hasImage("web", "nginx:1"), hasImage("db", "postgres")))
	h.loader.mu.Lock()
	parses := h.loader.parses
	h.loader.mu.Unlock()

	path := filepath.Join(dir, "web.yaml")
	src := filepath.Join(t.TempDir(), "web.yaml")
	must(t, os.WriteFile(src, []byte(content), 0o644))
	steps := map[string]func(){
		"touch":      func() { now := time.Now(); must(t, os.Chtimes(path, now, now)) },
		"chmod":      func() { must(t, os.Chmod(path, 0o600)) },
		"chmod back": func() { must(t, os.Chmod(path, 0o644)) },
		"same bytes": func() { must(t, os.WriteFile(path, []byte(content), 0o644)) },
		"cp same":    func() { command("cp", src, "web.yaml")(t, dir, "", 0) },
		"touch(1)":   func() { command("touch", "web.yaml")(t, dir, "", 0) },
	}
	for _, name := range slices.Sorted(maps.Keys(steps)) {
		calls := h.calls.Load()
		steps[name]()
		waitCalls(t, &h.calls, calls+1)
		n := h.quiet(5*testDebounce, func(st State) string {
			if !sameState(st, first) {
				return fmt.Sprintf("%s: state changed: %v", name, fmt.Sprint(summary(st)))
			}
			return ""
		})
		if n == 0 {
			t.Errorf("%s: no state after the event", name)
		}
	}
	h.loader.mu.Lock()
	defer h.loader.mu.Unlock()
	if h.loader.parses != parses {
		t.Errorf("files parsed again: %d parses, want %d", h.loader.parses, parses)
	}
}

// waitCalls polls the callback counter until it reaches n.
func waitCalls(t *testing.T, calls *atomic.Int64, n int64) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for calls.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("callback called %d times, want %d", calls.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// sameState: the same tasks (name, source, spec hash) and broken files.
func sameState(a, b State) bool {
	if (a.Err == nil) != (b.Err == nil) || len(a.Tasks) != len(b.Tasks) || len(a.Broken) != len(b.Broken) {
		return false
	}
	for name, t := range a.Tasks {
		u, ok := b.Tasks[name]
		if !ok || t.Source != u.Source || t.Hash() != u.Hash() {
			return false
		}
	}
	for f := range a.Broken {
		if _, ok := b.Broken[f]; !ok {
			return false
		}
	}
	return true
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
	// While it is missing, no state says anything but "unreadable".
	h.waitAll("the directory to go", func(st State) bool { return st.Err != nil }, keepsOrErr("web"))

	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	h.waitFor("the empty directory", func(st State) bool { return st.Err == nil })
	writeFile(t, dir, "web.yaml", manifest("web", "nginx:2"))
	h.waitFor("a file in the re-created directory", hasImage("web", "nginx:2"))

	// And the new directory is watched, not only noticed.
	writeFile(t, dir, "web.yaml", manifest("web", "nginx:3"))
	h.waitFor("a change in the re-created directory", hasImage("web", "nginx:3"))

	// Deleted, re-created and filled again by a script that takes longer
	// than the debounce: the empty directory in between is not read.
	must(t, os.RemoveAll(dir))
	h.waitAll("the directory to go", func(st State) bool { return st.Err != nil }, keepsOrErr("web"))
	must(t, os.Mkdir(dir, 0o755))
	sleep(slowWriterGap)
	writeFile(t, dir, "web.yaml", manifest("web", "nginx:3"))
	h.waitAll("the refilled directory", hasImage("web", "nginx:3"), keepsOrErr("web"))

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

// keepsOrErr: the directory is unreadable (callers delete nothing then), or
// task name is there.
func keepsOrErr(name string) func(State) string {
	return func(st State) string {
		if _, ok := st.Tasks[name]; st.Err == nil && !ok {
			return fmt.Sprintf("task %s gone from a readable directory: %v", name, fmt.Sprint(summary(st)))
		}
		return ""
	}
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

// swapLink points the symlink link at target atomically, the way git-sync
// and kubelet do it: a new symlink renamed over the old one
// (`ln -s target tmp && mv -T tmp link`).
func swapLink(t *testing.T, target, link string) {
	t.Helper()
	tmp := link + "_tmp"
	must(t, os.Symlink(target, tmp))
	must(t, os.Rename(tmp, link))
}

// TestWatcherSymlinkSwap: the directory is a symlink atomically swapped to a
// new revision (git-sync).
func TestWatcherSymlinkSwap(t *testing.T) {
	root := t.TempDir()
	for _, v := range []string{"v1", "v2", "v3"} {
		must(t, os.Mkdir(filepath.Join(root, v), 0o755))
		writeFile(t, filepath.Join(root, v), "web.yaml", manifest("web", "nginx:"+v))
		writeFile(t, filepath.Join(root, v), "db.yaml", manifest("db", "postgres"))
	}
	dir := filepath.Join(root, "current")
	must(t, os.Symlink("v1", dir))
	h := startWatcher(t, dir, nil)
	first := h.waitFor("the call at start", hasImage("web", "nginx:v1"))
	swapLink(t, "v2", dir)
	st := h.waitAll("the swapped directory", hasImage("web", "nginx:v2"), keeps("db", "postgres"))
	if st.Tasks["db"].Hash() != first.Tasks["db"].Hash() {
		t.Error("the unchanged task's spec hash changed")
	}
	// git-sync removes the old revision after the swap.
	must(t, os.RemoveAll(filepath.Join(root, "v1")))
	writeFile(t, filepath.Join(root, "v2"), "web.yaml", manifest("web", "nginx:v2b"))
	h.waitAll("a change behind the new symlink", hasImage("web", "nginx:v2b"), keeps("db", "postgres"))
	swapLink(t, "v3", dir)
	must(t, os.RemoveAll(filepath.Join(root, "v2")))
	h.waitAll("the second swap", hasImage("web", "nginx:v3"), keeps("db", "postgres"))
}

// TestWatcherSymlinkTargetReplacedInPlace: the directory is a symlink whose
// target directory is deleted and made again (the link itself unchanged):
// no event names the link, the periodic check of the watched directory's
// identity finds it.
func TestWatcherSymlinkTargetReplacedInPlace(t *testing.T) {
	root := t.TempDir()
	target := filepath.Join(root, "rev")
	must(t, os.Mkdir(target, 0o755))
	writeFile(t, target, "web.yaml", manifest("web", "nginx:1"))
	dir := filepath.Join(root, "current")
	must(t, os.Symlink("rev", dir))
	h := startWatcher(t, dir, func(w *Watcher) { w.poll = 50 * time.Millisecond })
	h.waitFor("the call at start", hasImage("web", "nginx:1"))
	must(t, os.Rename(target, target+".old"))
	must(t, os.Mkdir(target, 0o755))
	writeFile(t, target, "web.yaml", manifest("web", "nginx:2"))
	h.waitFor("the new target directory", hasImage("web", "nginx:2"))
	writeFile(t, target, "web.yaml", manifest("web", "nginx:3"))
	h.waitFor("a change in it", hasImage("web", "nginx:3"))
}

// configMap lays dir out as kubelet does for a ConfigMap volume: the files
// of a revision in a timestamped directory, "..data" a symlink to it, and
// each key a symlink through "..data". update is kubelet's AtomicWriter:
// write the new revision, point "..data_tmp" at it and rename it over
// "..data", add links for new keys, remove the old revision.
type configMap struct {
	t   *testing.T
	dir string
	rev int
	old string
}

func (c *configMap) update(files map[string]string) {
	t := c.t
	c.rev++
	ts := fmt.Sprintf("..2026_01_02_15_04_%02d.%d", c.rev, 100000+c.rev)
	must(t, os.Mkdir(filepath.Join(c.dir, ts), 0o755))
	for name, content := range files {
		writeFile(t, filepath.Join(c.dir, ts), name, content)
	}
	swapLink(t, ts, filepath.Join(c.dir, "..data"))
	for name := range files {
		link := filepath.Join(c.dir, name)
		if _, err := os.Lstat(link); os.IsNotExist(err) {
			must(t, os.Symlink(filepath.Join("..data", name), link))
		}
	}
	entries, err := os.ReadDir(c.dir)
	must(t, err)
	for _, e := range entries {
		if _, ok := files[e.Name()]; !ok && !strings.HasPrefix(e.Name(), "..") {
			must(t, os.Remove(filepath.Join(c.dir, e.Name())))
		}
	}
	if c.old != "" {
		must(t, os.RemoveAll(filepath.Join(c.dir, c.old)))
	}
	c.old = ts
}

func TestWatcherConfigMapLayout(t *testing.T) {
	dir := t.TempDir()
	cm := &configMap{t: t, dir: dir}
	cm.update(map[string]string{"web.yaml": manifest("web", "nginx:1"), "db.yaml": manifest("db", "postgres")})
	h := startWatcher(t, dir, nil)
	first := h.waitFor("the call at start", and(hasImage("web", "nginx:1"), hasImage("db", "postgres")))
	if got := first.Tasks["web"].Source; got != "web.yaml" {
		t.Errorf("Source = %q, want web.yaml", got)
	}

	// Only the content changes: the only event in the directory is the
	// rename of "..data".
	cm.update(map[string]string{"web.yaml": manifest("web", "nginx:2"), "db.yaml": manifest("db", "postgres")})
	st := h.waitAll("the new revision", hasImage("web", "nginx:2"), keeps("db", "postgres"))
	if st.Tasks["db"].Hash() != first.Tasks["db"].Hash() {
		t.Error("the unchanged task's spec hash changed")
	}
	// A key added, one removed.
	cm.update(map[string]string{"web.yaml": manifest("web", "nginx:2"), "api.yaml": manifest("api", "busybox")})
	h.waitAll("the third revision", and(hasImage("api", "busybox"), hasNoTask("db")), keeps("web", "nginx:2"))
	cm.update(map[string]string{"web.yaml": manifest("web", "nginx:3"), "api.yaml": manifest("api", "busybox")})
	h.waitAll("the fourth revision", hasImage("web", "nginx:3"), keeps("api", "busybox"))
}

// TestWatcherSymlinkedFileTarget: a manifest symlinked to a file elsewhere
// (kubelet misses changes of the target: kubernetes#40123). The target is
// edited in place, replaced by rename, and its directory swapped.
func TestWatcherSymlinkedFileTarget(t *testing.T) {
	dir, shared := t.TempDir(), t.TempDir()
	must(t, os.Mkdir(filepath.Join(shared, "r1"), 0o755))
	writeFile(t, filepath.Join(shared, "r1"), "web.conf", manifest("web", "nginx:1"))
	must(t, os.Symlink("r1", filepath.Join(shared, "cur")))
	must(t, os.Symlink(filepath.Join(shared, "cur", "web.conf"), filepath.Join(dir, "web.yaml")))
	h := startWatcher(t, dir, nil)
	h.waitFor("the call at start", hasImage("web", "nginx:1"))

	writeInPlace(t, filepath.Join(shared, "r1", "web.conf"), 0, manifest("web", "nginx:2"))
	h.waitFor("the target edited in place", hasImage("web", "nginx:2"))
	atomic := filepath.Join(shared, "r1", ".web.conf.tmp")
	must(t, os.WriteFile(atomic, []byte(manifest("web", "nginx:3")), 0o644))
	must(t, os.Rename(atomic, filepath.Join(shared, "r1", "web.conf")))
	h.waitFor("the target replaced by rename", hasImage("web", "nginx:3"))
	must(t, os.Mkdir(filepath.Join(shared, "r2"), 0o755))
	writeFile(t, filepath.Join(shared, "r2"), "web.conf", manifest("web", "nginx:4"))
	swapLink(t, "r2", filepath.Join(shared, "cur"))
	h.waitFor("the target's directory swapped", hasImage("web", "nginx:4"))
	writeInPlace(t, filepath.Join(shared, "r2", "web.conf"), 0, manifest("web", "nginx:5"))
	h.waitFor("the new target edited", hasImage("web", "nginx:5"))
}

func TestLinkChain(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "m")
	must(t, os.MkdirAll(filepath.Join(dir, "..2026"), 0o755))
	writeFile(t, filepath.Join(dir, "..2026"), "web.yaml", "")
	must(t, os.Symlink("..2026", filepath.Join(dir, "..data")))
	must(t, os.Symlink("..data/web.yaml", filepath.Join(dir, "web.yaml")))
	must(t, os.Symlink(filepath.Join(root, "elsewhere", "x.yaml"), filepath.Join(dir, "dangling.yaml")))
	must(t, os.Symlink("loop.yaml", filepath.Join(dir, "loop.yaml")))
	tests := []struct {
		name  string
		links []string
		final string
	}{
		{"web.yaml", []string{"web.yaml", "..data"}, "..2026/web.yaml"},
		{"dangling.yaml", []string{"dangling.yaml"}, "../elsewhere/x.yaml"},
		{"loop.yaml", slices.Repeat([]string{"loop.yaml"}, maxLinkHops), "loop.yaml"},
	}
	for _, tt := range tests {
		links, final := linkChain(dir, tt.name)
		for i := range links {
			links[i], _ = filepath.Rel(dir, links[i])
		}
		final, _ = filepath.Rel(dir, final)
		if !slices.Equal(links, tt.links) || final != tt.final {
			t.Errorf("linkChain(%s) = %v, %s; want %v, %s", tt.name, links, final, tt.links, tt.final)
		}
	}
}

func TestWatcherPollsWhenWatchLimitReached(t *testing.T) {
	dir := t.TempDir()
	h := startWatcher(t, dir, func(w *Watcher) {
		w.poll = 20 * time.Millisecond
		w.newSource = func() (eventSource, error) {
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

// limitedSource is real fsnotify whose Add fails with err for paths under
// limited (the watch limit, fs.inotify.max_user_watches, reached).
type limitedSource struct {
	eventSource
	limited string
	err     error
}

func (s limitedSource) Add(path string) error {
	if strings.HasPrefix(path, s.limited) {
		return fmt.Errorf("add watch: %w", s.err)
	}
	return s.eventSource.Add(path)
}

func TestWatcherPollsWhenAddHitsLimit(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EMFILE} {
		t.Run(errno.Error(), func(t *testing.T) {
			dir := t.TempDir()
			h := startWatcher(t, dir, func(w *Watcher) {
				w.poll = 20 * time.Millisecond
				w.newSource = func() (eventSource, error) {
					src, err := newFSNotify()
					return limitedSource{eventSource: src, limited: dir, err: errno}, err
				}
			})
			h.waitFor("the call at start", func(st State) bool { return st.Err == nil })
			writeFile(t, dir, "web.yaml", manifest("web", "nginx:1"))
			h.waitFor("create, by polling", hasImage("web", "nginx:1"))
			writeFile(t, dir, "web.yaml", manifest("web", "nginx:2"))
			h.waitFor("modify, by polling", hasImage("web", "nginx:2"))
			if n := h.logs.count("polling it instead"); n != 1 {
				t.Errorf("the fall back to polling was logged %d times, want once", n)
			}
			if n := h.logs.count(errno.Error()); n != 1 {
				t.Errorf("the reason (%s) was logged %d times, want once", errno, n)
			}
		})
	}
}

// fakeSource delivers only what the test sends.
type fakeSource struct {
	events chan fsnotify.Event
	errs   chan error
}

func (s *fakeSource) Add(string) error              { return nil }
func (s *fakeSource) Remove(string) error           { return nil }
func (s *fakeSource) Events() <-chan fsnotify.Event { return s.events }
func (s *fakeSource) Errors() <-chan error          { return s.errs }
func (s *fakeSource) Close() error                  { return nil }

// TestWatcherOverflowRereads: after an overflow the events that were lost
// are not needed: the whole directory is read.
func TestWatcherOverflowRereads(t *testing.T) {
	dir := t.TempDir()
	src := &fakeSource{events: make(chan fsnotify.Event), errs: make(chan error)}
	h := startWatcher(t, dir, func(w *Watcher) {
		w.newSource = func() (eventSource, error) { return src, nil }
	})
	h.waitFor("the call at start", func(st State) bool { return st.Err == nil && len(st.Tasks) == 0 })
	writeFile(t, dir, "web.yaml", manifest("web", "nginx:1")) // no event reaches the watcher
	src.errs <- fsnotify.ErrEventOverflow
	h.waitFor("the full read after the overflow", hasImage("web", "nginx:1"))
	if n := h.logs.count("inotify queue overflow"); n != 1 {
		t.Errorf("overflow logged %d times, want once", n)
	}
}

// TestWatcherRealOverflow overflows the kernel's inotify queue while the
// callback is busy, and checks that the change made meanwhile is read.
func TestWatcherRealOverflow(t *testing.T) {
	limit := 16384
	if b, err := os.ReadFile("/proc/sys/fs/inotify/max_queued_events"); err == nil {
		fmt.Sscan(string(b), &limit)
	}
	if limit > 200000 {
		t.Skipf("max_queued_events is %d: too many events to generate", limit)
	}
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", manifest("a", "busybox"))
	writeFile(t, dir, "b.yaml", manifest("b", "busybox"))
	h := startWatcher(t, dir, nil)
	h.waitFor("the call at start", hasImage("a", "busybox"))

	gate := make(chan struct{})
	h.gateMu.Lock()
	h.gate = gate
	h.gateMu.Unlock()
	calls := h.calls.Load()
	must(t, os.Chmod(filepath.Join(dir, "a.yaml"), 0o600))
	waitCalls(t, &h.calls, calls+1) // the callback is busy now
	for i := range limit + 1000 {
		// Alternating files: the kernel merges identical consecutive events.
		must(t, os.Chmod(filepath.Join(dir, []string{"a.yaml", "b.yaml"}[i%2]), os.FileMode(0o600+i%2*0o40)))
	}
	writeFile(t, dir, "c.yaml", manifest("c", "busybox"))
	h.gateMu.Lock()
	h.gate = nil
	h.gateMu.Unlock()
	close(gate)
	h.waitFor("the file written during the overflow", hasImage("c", "busybox"))
	deadline := time.Now().Add(waitTimeout)
	for h.logs.count("inotify queue overflow") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no overflow was reported")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWatcherBurstCoalesced drops 1,000 files into the directory at once:
// they are read in a bounded number of passes, not one per file.
func TestWatcherBurstCoalesced(t *testing.T) {
	dir := t.TempDir()
	h := startWatcher(t, dir, nil)
	h.waitFor("the call at start", func(st State) bool { return st.Err == nil })
	calls := h.calls.Load()
	for i := range 1000 {
		writeFile(t, dir, fmt.Sprintf("task-%04d.yaml", i), manifest(fmt.Sprintf("task-%04d", i), "busybox"))
	}
	h.waitAllFor(60*time.Second, "all 1,000 tasks", func(st State) bool { return len(st.Tasks) == 1000 }, nil)
	n := h.calls.Load() - calls
	t.Logf("1,000 files read in %d passes", n)
	if n > 20 {
		t.Errorf("1,000 files took %d directory reads, want at most 20", n)
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
	r := newRun(NewWatcher(dir, 0, logr.Discard()))
	r.via = map[string]bool{"..data": true}
	tests := []struct {
		ev   fsnotify.Event
		want bool
	}{
		{fsnotify.Event{Name: filepath.Join(dir, "web.yaml"), Op: fsnotify.Write}, true},
		{fsnotify.Event{Name: filepath.Join(dir, "web.yaml"), Op: fsnotify.Chmod}, true},
		{fsnotify.Event{Name: filepath.Join(dir, ".web.yaml.swp"), Op: fsnotify.Write}, false},
		{fsnotify.Event{Name: filepath.Join(dir, "4913"), Op: fsnotify.Create}, false},
		{fsnotify.Event{Name: filepath.Join(dir, "web.yaml~"), Op: fsnotify.Create}, false},
		{fsnotify.Event{Name: filepath.Join(dir, "#web.yaml#"), Op: fsnotify.Write}, false},
		{fsnotify.Event{Name: filepath.Join(dir, ".#web.yaml"), Op: fsnotify.Create}, false},
		{fsnotify.Event{Name: filepath.Join(dir, "..data"), Op: fsnotify.Create}, true},
		{fsnotify.Event{Name: filepath.Join(dir, "..data_tmp"), Op: fsnotify.Create}, false},
		{fsnotify.Event{Name: filepath.Join(root, "other"), Op: fsnotify.Create}, false},
		{fsnotify.Event{Name: dir, Op: fsnotify.Remove}, true},
		{fsnotify.Event{Name: filepath.Join(dir, "sub", "x.yaml"), Op: fsnotify.Create}, false},
	}
	for _, tt := range tests {
		if got := r.event(tt.ev); got != tt.want {
			t.Errorf("event(%v) = %v, want %v", tt.ev, got, tt.want)
		}
	}
	// A read right after an entry changed is followed by one when the
	// loader's grace for removals is over; not once the directory settled.
	writeFile(t, dir, "web.yaml", "")
	if wait := r.untilSettled(time.Now()); wait <= 0 || wait > RemoveGrace+settleMargin {
		t.Errorf("untilSettled right after a change = %s, want (0, %s]", wait, RemoveGrace+settleMargin)
	}
	if wait := r.untilSettled(time.Now().Add(RemoveGrace)); wait != 0 {
		t.Errorf("untilSettled after the grace = %s, want 0", wait)
	}
}

// BenchmarkWatcherLatency measures the time from the rename of a file into
// the directory to the callback, with the default debounce; it reports the
// median and the 99th percentile.
func BenchmarkWatcherLatency(b *testing.B) {
	dir := b.TempDir()
	called := make(chan time.Time, 1)
	w := NewWatcher(dir, DefaultDebounce, logr.Discard())
	l := NewLoader(dir)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = w.Run(ctx, func() {
			l.Load()
			select {
			case called <- time.Now():
			default:
			}
		})
	}()
	defer func() { cancel(); <-done }()
	<-called
	var took []time.Duration
	for i := 0; b.Loop(); i++ {
		tmp := filepath.Join(dir, ".web.yaml.tmp")
		if err := os.WriteFile(tmp, []byte(manifest("web", fmt.Sprintf("nginx:%d", i))), 0o644); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := os.Rename(tmp, filepath.Join(dir, "web.yaml")); err != nil {
			b.Fatal(err)
		}
		took = append(took, (<-called).Sub(start))
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
}

func TestNotBeingWritten(t *testing.T) {
	dir := t.TempDir()
	closed := filepath.Join(dir, "closed.yaml")
	must(t, os.WriteFile(closed, []byte(manifest("web", "nginx")), 0o644))
	open := filepath.Join(dir, "open.yaml")
	f, err := os.OpenFile(open, os.O_CREATE|os.O_WRONLY, 0o644)
	must(t, err)
	defer f.Close()
	readOnly := filepath.Join(dir, "read.yaml")
	must(t, os.WriteFile(readOnly, nil, 0o644))
	r, err := os.Open(readOnly) // readers do not count
	must(t, err)
	defer r.Close()
	link := filepath.Join(dir, "link.yaml")
	must(t, os.Symlink("closed.yaml", link))

	for _, tc := range []struct {
		name, path string
		want       bool
	}{
		{"closed after writing", closed, true},
		{"open for reading only", readOnly, true},
		{"symlink to a closed file", link, true},
		{"open for writing", open, false},
		{"directory", dir, false},
		{"missing", filepath.Join(dir, "gone.yaml"), false},
	} {
		if got := notBeingWritten(tc.path); got != tc.want {
			t.Errorf("%s: notBeingWritten = %v, want %v", tc.name, got, tc.want)
		}
	}
	// The lease is given back: a writer can open the file afterwards.
	w, err := os.OpenFile(closed, os.O_WRONLY|os.O_APPEND, 0)
	must(t, err)
	w.Close()
}

// TestWatcherReadsCompleteFileAtOnce: with a debounce of an hour, a file
// renamed into place from another name of the directory is read at once;
// a file written in place is not, even once closed (its writer may open it
// again to write more), nor is a file renamed into place while its writer
// still holds it.
func TestWatcherReadsCompleteFileAtOnce(t *testing.T) {
	dir := t.TempDir()
	h := startWatcher(t, dir, func(w *Watcher) {
		w.debounce, w.maxDelay, w.quiet = time.Hour, time.Hour, 0
	})
	h.waitFor("the call at start", func(st State) bool { return st.Err == nil && len(st.Tasks) == 0 })

	atomicRename(".web.yaml.tmp")(t, dir, manifest("web", "nginx:1"), 0)
	h.waitFor("web, renamed into place, read at once", hasImage("web", "nginx:1"))

	notYet := func(task, why string) {
		t.Helper()
		h.quiet(5*testDebounce, func(st State) string {
			if _, ok := st.Tasks[task]; ok {
				return task + ": " + why
			}
			return ""
		})
	}
	// Written in place, in two sessions: the first is a valid manifest.
	writeFile(t, dir, "db.yaml", manifest("db", "postgres"))
	notYet("db", "a file written in place was read before the debounce")

	// Renamed into place while its writer still holds it open.
	tmp := filepath.Join(dir, ".cache.yaml.tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY, 0o644)
	must(t, err)
	_, err = f.WriteString(manifest("cache", "redis"))
	must(t, err)
	must(t, os.Rename(tmp, filepath.Join(dir, "cache.yaml")))
	notYet("cache", "a file renamed into place while open for writing was read before the debounce")
	must(t, f.Close())

	// The next complete rename brings all in.
	atomicRename(".web.yaml.tmp")(t, dir, manifest("web", "nginx:2"), 0)
	h.waitFor("db, cache and web", and(hasImage("db", "postgres"), hasImage("cache", "redis"), hasImage("web", "nginx:2")))
}

// TestWatcherWaitsUnlessQuiet: a rename into a directory that was read or
// changed less than the quiet period before waits for the debounce.
func TestWatcherWaitsUnlessQuiet(t *testing.T) {
	dir := t.TempDir()
	h := startWatcher(t, dir, func(w *Watcher) {
		w.debounce, w.maxDelay, w.quiet = time.Hour, time.Hour, time.Hour
	})
	h.waitFor("the call at start", func(st State) bool { return st.Err == nil && len(st.Tasks) == 0 })
	atomicRename(".web.yaml.tmp")(t, dir, manifest("web", "nginx:1"), 0)
	if n := h.quiet(5*testDebounce, func(State) string { return "" }); n != 0 {
		t.Errorf("%d reads right after the read at start, want none before the debounce", n)
	}
}

// TestWatcherTimersOnItsClock: the debounce runs on the watcher's clock. A
// file written in place is read once that clock has moved past the
// debounce, and not before, however long the test waits in real time.
func TestWatcherTimersOnItsClock(t *testing.T) {
	dir := t.TempDir()
	src := &fakeSource{events: make(chan fsnotify.Event), errs: make(chan error)}
	clk := clock.NewFake(time.Now())
	h := startWatcher(t, dir, func(w *Watcher) {
		w.newSource = func() (eventSource, error) { return src, nil }
		WatchClock(clk)(w)
	})
	h.waitFor("the call at start", func(st State) bool { return st.Err == nil && len(st.Tasks) == 0 })
	calls := h.calls.Load()
	path := filepath.Join(dir, "web.yaml")
	must(t, os.WriteFile(path, []byte(manifest("web", "nginx:1")), 0o644))
	src.events <- fsnotify.Event{Name: path, Op: fsnotify.Write}
	due := clk.Now().Add(testDebounce)
	deadline := time.Now().Add(waitTimeout)
	for !slices.ContainsFunc(clk.Pending(), due.Equal) {
		if time.Now().After(deadline) {
			t.Fatalf("no read set for the end of the debounce (%s); pending: %v", due, clk.Pending())
		}
		time.Sleep(time.Millisecond)
	}
	if n := h.calls.Load(); n != calls {
		t.Fatalf("%d reads before the watcher's clock moved, want none", n-calls)
	}
	clk.Step(testDebounce)
	h.waitFor("the read once the debounce is over", hasImage("web", "nginx:1"))
}
