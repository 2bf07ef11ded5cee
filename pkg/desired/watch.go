package desired

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/go-logr/logr"
)

// DefaultPollInterval is how often the watcher looks at the directory when
// it cannot rely on fsnotify (watch limits reached, parent directory
// missing).
const DefaultPollInterval = time.Second

// Watcher reports that the directory may have changed. It never parses
// anything itself: the callback reloads (level-triggered), so a lost or
// merged event costs nothing.
type Watcher struct {
	dir      string // cleaned, absolute when possible
	parent   string // "" when dir is the root
	debounce time.Duration
	poll     time.Duration
	log      logr.Logger
	newFS    func() (*fsnotify.Watcher, error) // replaced in tests
}

// NewWatcher returns a watcher of dir; it starts no goroutines. debounce is
// the quiet period after the last event before changed is called (e.g.
// 20ms).
func NewWatcher(dir string, debounce time.Duration, log logr.Logger) *Watcher {
	clean := filepath.Clean(dir)
	if abs, err := filepath.Abs(clean); err == nil {
		clean = abs
	}
	parent := filepath.Dir(clean)
	if parent == clean {
		parent = ""
	}
	return &Watcher{
		dir:      clean,
		parent:   parent,
		debounce: max(debounce, 0),
		poll:     DefaultPollInterval,
		log:      log.WithValues("dir", clean),
		newFS:    fsnotify.NewWatcher,
	}
}

// Run blocks until ctx is done, then returns nil. It calls changed once at
// start and then, after events in the directory settle for the debounce
// period, again; always from Run's goroutine, never concurrently.
//
// It survives the directory being missing at start, deleted, re-created or
// replaced (it watches the parent directory too and re-adds the watch on the
// directory when it appears), and treats fsnotify's event overflow as a
// change. When fsnotify cannot be used (watch or file limits, parent
// missing, permission) it logs that once and polls every second, comparing
// a fingerprint of the directory.
func (w *Watcher) Run(ctx context.Context, changed func()) error {
	if ctx.Err() != nil {
		return nil
	}
	r := &watchRun{w: w}
	defer r.close()
	if fsw, err := w.newFS(); err != nil {
		r.degrade(fmt.Errorf("start file watcher: %w", err))
	} else {
		r.fsw = fsw
	}
	r.ensure()
	r.print = fingerprint(w.dir)

	ticker := time.NewTicker(w.poll)
	defer ticker.Stop()
	debounce := time.NewTimer(w.debounce)
	debounce.Stop()
	defer debounce.Stop()
	var settle <-chan time.Time

	changed()
	for {
		var events <-chan fsnotify.Event
		var errs <-chan error
		if r.fsw != nil {
			events, errs = r.fsw.Events, r.fsw.Errors
		}
		dirty := false
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				r.degrade(errors.New("file watcher stopped"))
				dirty = true
				break
			}
			dirty = r.event(ev)
		case err, ok := <-errs:
			switch {
			case !ok:
				r.degrade(errors.New("file watcher stopped"))
			case errors.Is(err, fsnotify.ErrEventOverflow):
				w.log.V(1).Info("file watcher queue overflowed, reloading")
			default:
				w.log.Error(err, "file watcher failed, reloading")
			}
			dirty = true
		case <-ticker.C:
			if r.ensure() {
				dirty = true
			}
			if r.polling() {
				if p := fingerprint(w.dir); p != r.print {
					r.print = p
					dirty = true
				}
			}
		case <-settle:
			settle = nil
			if r.polling() {
				r.print = fingerprint(w.dir)
			}
			changed()
		}
		if dirty {
			debounce.Reset(w.debounce)
			settle = debounce.C
		}
	}
}

// watchRun is the state of one Run.
type watchRun struct {
	w             *Watcher
	fsw           *fsnotify.Watcher // nil once degraded
	dirWatched    bool
	parentWatched bool
	addFailed     bool   // an Add failed for another reason than "not there"
	degraded      bool   // fsnotify is given up for this run
	print         uint64 // fingerprint of the directory, while polling
	logged        bool   // the fall back to polling was logged
}

func (r *watchRun) close() {
	if r.fsw != nil {
		r.fsw.Close()
	}
}

// polling reports whether events alone may miss a change.
func (r *watchRun) polling() bool {
	return r.degraded || r.addFailed || (r.w.parent != "" && !r.parentWatched)
}

// degrade gives up on fsnotify for the rest of the run.
func (r *watchRun) degrade(err error) {
	if r.fsw != nil {
		r.fsw.Close()
		r.fsw = nil
	}
	r.degraded = true
	r.logPolling(err)
}

func (r *watchRun) logPolling(err error) {
	if !r.logged {
		r.logged = true
		r.w.log.Info("cannot watch manifests directory, polling it instead", "interval", r.w.poll, "reason", err.Error())
	}
}

// ensure adds the watches that are missing; it reports whether the watch
// on the directory was (re)added, which means its content may be new.
func (r *watchRun) ensure() bool {
	if r.fsw == nil {
		return false
	}
	r.addFailed = false
	if r.w.parent != "" && !r.parentWatched {
		r.parentWatched = r.add(r.w.parent)
	}
	if r.fsw == nil || r.dirWatched {
		return false
	}
	r.dirWatched = r.add(r.w.dir)
	return r.dirWatched
}

func (r *watchRun) add(path string) bool {
	err := r.fsw.Add(path)
	switch {
	case err == nil:
		return true
	case errors.Is(err, fs.ErrNotExist):
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		r.degrade(fmt.Errorf("watch %s: %w", path, err))
	default:
		r.addFailed = true
		r.logPolling(fmt.Errorf("watch %s: %w", path, err))
	}
	return false
}

// event handles one fsnotify event and reports whether the directory may
// have changed.
func (r *watchRun) event(ev fsnotify.Event) bool {
	name := filepath.Clean(ev.Name)
	switch {
	case name == r.w.dir:
		// The directory itself was created, removed, renamed or
		// replaced (a symlink swap): drop any stale watch and add
		// it again if there is something to watch.
		if ev.Has(fsnotify.Create) || ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
			if r.dirWatched && r.fsw != nil {
				_ = r.fsw.Remove(r.w.dir) // may be gone with the directory already
			}
			r.dirWatched = false
			r.ensure()
		}
		return true
	case name == r.w.parent:
		// The parent itself went away: its watch is gone too.
		if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
			r.parentWatched = false
		}
		return true
	case filepath.Dir(name) == r.w.dir:
		return !Ignored(filepath.Base(name))
	}
	return false // a sibling of the directory
}

// fingerprint summarizes what Load would look at: the names, kinds, sizes
// and modification times of the manifest files, or the error reading the
// directory.
func fingerprint(dir string) uint64 {
	h := fnv.New64a()
	entries, err := os.ReadDir(dir)
	if err != nil {
		fmt.Fprintf(h, "error %v", err)
		return h.Sum64()
	}
	for _, e := range entries {
		if Ignored(e.Name()) {
			continue
		}
		fi, err := os.Stat(filepath.Join(dir, e.Name()))
		if err != nil {
			fmt.Fprintf(h, "%q error %v\n", e.Name(), err)
			continue
		}
		fmt.Fprintf(h, "%q %v %d %d\n", e.Name(), fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
	}
	return h.Sum64()
}
