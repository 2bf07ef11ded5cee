package desired

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

// The watcher's event-to-enqueue path: a manifest renamed into place (as the
// docs/writing-manifests.md asks writers to do), fsnotify's event, the debounce, and the
// callback, which in the daemon loads the directory and hands the State to
// the controller (whose SetDesired only compares hashes and queues keys).
// Each iteration replaces one file with a new content and waits until the
// callback has seen that content, so an iteration is one whole trip.

// daemonDebounce is the daemon's default --debounce.
const daemonDebounce = 20 * time.Millisecond

// watchBench runs a watcher of dir with debounce d and onChange as its
// callback, and returns a function that renames content into place as name
// and waits until seen reports i (the iteration) from the callback.
func watchBench(b *testing.B, dir string, d time.Duration, onChange func() int) (replace func(i int, name, content string)) {
	b.Helper()
	seen := make(chan int, 64)
	ctx, cancel := context.WithCancel(context.Background())
	w := NewWatcher(dir, d, logr.Discard())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = w.Run(ctx, func() { seen <- onChange() })
	}()
	b.Cleanup(func() { cancel(); <-done })
	<-seen // the first call, at start
	tmp := filepath.Join(dir, ".next.tmp")
	return func(i int, name, content string) {
		if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
			b.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			b.Fatal(err)
		}
		deadline := time.After(10 * time.Second)
		for {
			select {
			case v := <-seen:
				if v == i {
					return
				}
			case <-deadline:
				b.Fatalf("iteration %d: the callback did not see the change within 10s", i)
			}
		}
	}
}

// marker is a manifest whose env carries i, and its reading back.
func marker(name string, i int) string {
	return fmt.Sprintf("apiVersion: warren/v1\nkind: Task\nmetadata:\n  name: %s\nspec:\n  image: example.com/app:1\n  env: [{name: ITER, value: %q}]\n", name, strconv.Itoa(i))
}

func iterOf(t Task) int {
	for _, e := range t.Spec.Env {
		if e.Name == "ITER" {
			v, _ := strconv.Atoi(e.Value)
			return v
		}
	}
	return -1
}

// BenchmarkWatchEventToCallback is the watcher alone: rename, event,
// debounce, callback (which only reads the one file back). With the default
// debounce and one rename right after the other, the figure is that quiet
// time plus the same overhead; "quiet" waits (untimed) for the debounce
// before each rename, as a single file dropped into a quiet directory: the
// watcher reads it at once.
func BenchmarkWatchEventToCallback(b *testing.B) {
	for _, c := range []struct {
		name  string
		d     time.Duration
		quiet bool
	}{
		{"debounce=0s", 0, false},
		{"debounce=20ms", daemonDebounce, false},
		{"debounce=20ms/quiet", daemonDebounce, true},
	} {
		d := c.d
		b.Run(c.name, func(b *testing.B) {
			dir := b.TempDir()
			path := filepath.Join(dir, "t.yaml")
			writeFile(b, dir, "t.yaml", marker("t", -1))
			replace := watchBench(b, dir, d, func() int {
				data, err := os.ReadFile(path)
				if err != nil {
					return -1
				}
				tasks, err := Parse("t.yaml", data)
				if err != nil || len(tasks) != 1 {
					return -1
				}
				return iterOf(tasks[0])
			})
			i := 0
			for b.Loop() {
				if c.quiet {
					b.StopTimer()
					time.Sleep(d + 5*time.Millisecond)
					b.StartTimer()
				}
				replace(i, "t.yaml", marker("t", i))
				i++
			}
		})
	}
}

// BenchmarkWatchEventToState is the daemon's whole path from the rename to
// the new desired State ready for the controller, in a directory of n
// manifests: the watcher (debounce 0) and a Load of the directory (which
// parses only the changed file) and the hash of every task (what
// SetDesired compares).
func BenchmarkWatchEventToState(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("files=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			for i := range n - 1 {
				writeFile(b, dir, fmt.Sprintf("task-%04d.yaml", i), benchManifest(i))
			}
			writeFile(b, dir, "marker.yaml", marker("marker", -1))
			l := NewLoader(dir)
			if st := l.Load(); len(st.Tasks) != n || st.Err != nil || len(st.Broken) != 0 {
				b.Fatalf("tasks %d, err %v, broken %v", len(st.Tasks), st.Err, st.Broken)
			}
			replace := watchBench(b, dir, 0, func() int {
				st := l.Load()
				for name := range st.Tasks {
					st.Hash(name) // as the controller's SetDesired
				}
				return iterOf(st.Tasks["marker"])
			})
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				replace(i, "marker.yaml", marker("marker", i))
				i++
			}
		})
	}
}
