package desired

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/go-logr/logr"
	"github.com/warren/reconciler/pkg/clock"
)

const (
	// DefaultDebounce is the quiet time after the last file event before
	// the directory is read. Writers that produce several events (an
	// editor's save, a copy, a rename) do so within microseconds, so a short
	// window coalesces them; transient states that last longer are covered
	// by [Loader.Load] (last known good, empty files, [RemoveGrace]), not by
	// the window, which can therefore stay short. A manifest renamed into
	// place that nobody has open for writing does not wait for it at all
	// when the directory was quiet (see [Watcher.Run]).
	DefaultDebounce = 20 * time.Millisecond

	// DefaultPollInterval is how often the watcher looks at the directory
	// when it cannot rely on fsnotify (watch limits reached, parent
	// directory missing), and how often it checks that its watch is still
	// on the directory the path names.
	DefaultPollInterval = time.Second

	// settleMargin is added to the wait for the directory to settle, so
	// that the read comes after the loader's grace is over.
	settleMargin = 10 * time.Millisecond

	// maxLinkDirs bounds the extra watches on directories that symlinked
	// manifests point into; beyond it those are polled.
	maxLinkDirs = 64
	// maxLinkHops bounds the symlinks followed to resolve one manifest.
	maxLinkHops = 40
)

// Watcher reports that the directory may have changed. It never parses
// anything itself: the callback reloads (level-triggered), so a lost or
// merged event costs nothing, and comparing contents is the loader's job
// (a touch makes the callback run, and the loader finds nothing new).
type Watcher struct {
	dir       string // cleaned, absolute when possible
	parent    string // "" when dir is the root
	debounce  time.Duration
	quiet     time.Duration // since the last read, for a complete file to be read at once: the debounce
	maxDelay  time.Duration // a burst of events is read at least this often
	grace     time.Duration // the loader's RemoveGrace
	poll      time.Duration
	clock     clock.Clock
	log       logr.Logger
	newSource func() (eventSource, error) // replaced in tests
}

// WatcherOption configures a [Watcher].
type WatcherOption func(*Watcher)

// WatchClock sets the clock of the watcher's timers (default: the real
// one): the debounce, the poll and the read after a removal's grace.
func WatchClock(c clock.Clock) WatcherOption { return func(w *Watcher) { w.clock = c } }

// NewWatcher returns a watcher of dir; it starts no goroutines. debounce is
// the quiet period after the last event before changed is called
// ([DefaultDebounce]); a stream of events that never pauses is still read
// every max(10 × debounce, 100ms), so a busy directory is never starved.
func NewWatcher(dir string, debounce time.Duration, log logr.Logger, opts ...WatcherOption) *Watcher {
	clean := filepath.Clean(dir)
	if abs, err := filepath.Abs(clean); err == nil {
		clean = abs
	}
	parent := filepath.Dir(clean)
	if parent == clean {
		parent = ""
	}
	debounce = max(debounce, 0)
	w := &Watcher{
		dir:       clean,
		parent:    parent,
		debounce:  debounce,
		quiet:     debounce,
		maxDelay:  max(10*debounce, 100*time.Millisecond),
		grace:     RemoveGrace,
		poll:      DefaultPollInterval,
		clock:     clock.Real{},
		log:       log.WithValues("dir", clean),
		newSource: newFSNotify,
	}
	for _, o := range opts {
		o(w)
	}
	return w
}

// eventSource is what the watcher needs of fsnotify.
type eventSource interface {
	Add(path string) error
	Remove(path string) error
	Events() <-chan fsnotify.Event
	Errors() <-chan error
	Close() error
}

type fsnotifySource struct{ w *fsnotify.Watcher }

func newFSNotify() (eventSource, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	return fsnotifySource{w}, nil
}

func (s fsnotifySource) Add(path string) error         { return s.w.Add(path) }
func (s fsnotifySource) Remove(path string) error      { return s.w.Remove(path) }
func (s fsnotifySource) Events() <-chan fsnotify.Event { return s.w.Events }
func (s fsnotifySource) Errors() <-chan error          { return s.w.Errors }
func (s fsnotifySource) Close() error                  { return s.w.Close() }

// Run blocks until ctx is done, then returns nil. It calls changed once at
// start and then, after events in the directory settle for the debounce
// period, again; always from Run's goroutine, never concurrently. Events
// that arrive while changed runs are coalesced into one more call.
//
// One exception to the wait: when the directory has been quiet for the
// debounce period and the event is a manifest renamed into place from
// another name in the directory (the way docs/writing-manifests.md asks files to be
// written; sed -i and most atomic writers do it) that no process has open
// for writing (the kernel knows: see notBeingWritten), changed is called at
// once. That saves the debounce on the way from a dropped file to a running
// container; the events that follow within the debounce are coalesced as
// before, so a burst costs one extra read at most. Files written in place
// always wait for the debounce.
//
// What counts as a change: any event on a manifest file name (see
// [Ignored]), on the directory itself or its parent, on an entry that a
// symlinked manifest resolves through (the "..data" link of a Kubernetes
// ConfigMap volume), and on the files symlinked manifests point to in other
// directories, which are watched too. When the directory's entries changed
// less than [RemoveGrace] before a read, it is read once more when the grace
// is over: the loader keeps a file that disappeared until then.
//
// It survives the directory being missing at start, deleted, re-created or
// replaced, also when it is a symlink that is swapped (git-sync): it watches
// the parent directory too, re-adds the watch on the directory when it
// appears, and checks every poll interval that the watch is on the directory
// the path names now. An inotify queue overflow makes it read the directory
// again. When fsnotify cannot be used (watch or file limits, parent missing,
// permission) it logs that once and polls every second, comparing a
// fingerprint of the directory.
func (w *Watcher) Run(ctx context.Context, changed func()) error {
	if ctx.Err() != nil {
		return nil
	}
	r := newRun(w)
	defer r.close()
	if src, err := w.newSource(); err != nil {
		r.degrade(fmt.Errorf("start file watcher: %w", err))
	} else {
		r.src = src
	}
	r.ensure()
	r.watchLinks()
	r.print = fingerprint(w.dir)

	ticker := clock.NewAlarm(w.clock) // re-set at each poll
	ticker.Reset(w.poll)
	defer ticker.Stop()
	timer := clock.NewAlarm(w.clock) // the next read
	defer timer.Stop()
	pending := false                  // events not read yet
	var first time.Time               // of the oldest of them
	now := false                      // the timer is set to read at once
	var lastRead, lastEvent time.Time // lastEvent: of the last event that may have changed the directory
	movedFrom := false                // the last event was a file of the directory renamed (IN_MOVED_FROM)

	changed()
	lastRead = w.clock.Now()
	if wait := r.untilSettled(lastRead); wait > 0 {
		pending, first = true, lastRead
		timer.Reset(wait)
	}
	for {
		var events <-chan fsnotify.Event
		var errs <-chan error
		if r.src != nil {
			events, errs = r.src.Events(), r.src.Errors()
		}
		dirty, complete := false, false
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
			// A quiet directory (no read and no other event for the
			// debounce period) and a manifest renamed into place that
			// nobody is writing: read it now rather than after the
			// debounce; the events that follow are coalesced as usual.
			if dirty {
				t := w.clock.Now()
				complete = !now && t.Sub(lastRead) >= w.quiet && t.Sub(lastEvent) >= w.quiet && r.complete(ev, movedFrom)
				lastEvent = t
			}
			movedFrom = ev.Has(fsnotify.Rename) && filepath.Dir(filepath.Clean(ev.Name)) == w.dir
		case err, ok := <-errs:
			switch {
			case !ok:
				r.degrade(errors.New("file watcher stopped"))
			case errors.Is(err, fsnotify.ErrEventOverflow):
				w.log.Info("file events were lost (inotify queue overflow); reading the whole directory again")
				r.recheck()
			default:
				w.log.Error(err, "file watcher failed; reading the whole directory again")
				r.recheck()
			}
			dirty = true
		case <-ticker.C():
			ticker.Reset(w.poll)
			dirty = r.recheck()
			if r.polling() {
				if p := fingerprint(w.dir); p != r.print {
					r.print = p
					dirty = true
				}
			}
		case <-timer.C():
			pending, now = false, false
			r.watchLinks()
			if r.polling() {
				r.print = fingerprint(w.dir)
			}
			changed()
			lastRead = w.clock.Now()
			if wait := r.untilSettled(lastRead); wait > 0 {
				// Read again once the loader applies removals.
				pending, first = true, lastRead
				timer.Reset(wait)
			}
		}
		switch {
		case !dirty || now:
			// Nothing to read, or a read is due at once anyway.
		case complete:
			pending, first, now = true, w.clock.Now(), true
			timer.Reset(0)
		default:
			t := w.clock.Now()
			if !pending {
				pending, first = true, t
			}
			timer.Reset(max(0, min(w.debounce, first.Add(w.maxDelay).Sub(t))))
		}
	}
}

// watchRun is the state of one Run.
type watchRun struct {
	w             *Watcher
	src           eventSource // nil once degraded
	dirWatched    bool
	dirID         fileID // of the directory when its watch was added
	parentWatched bool
	addFailed     bool   // an Add failed for another reason than "not there"
	degraded      bool   // fsnotify is given up for this run
	print         uint64 // fingerprint of the directory, while polling
	logged        bool   // the fall back to polling was logged

	via          map[string]bool // entries of dir that symlinked manifests resolve through
	targets      map[string]bool // paths outside dir that symlinked manifests resolve through
	linkDirs     map[string]bool // directories watched for targets
	linksPartial bool            // some targets' directories are not watched
}

func newRun(w *Watcher) *watchRun {
	return &watchRun{w: w, linkDirs: map[string]bool{}}
}

func (r *watchRun) close() {
	if r.src != nil {
		r.src.Close()
	}
}

// polling reports whether events alone may miss a change.
func (r *watchRun) polling() bool {
	return r.degraded || r.addFailed || r.linksPartial || (r.w.parent != "" && !r.parentWatched)
}

// degrade gives up on fsnotify for the rest of the run.
func (r *watchRun) degrade(err error) {
	if r.src != nil {
		r.src.Close()
		r.src = nil
	}
	r.dirWatched, r.parentWatched = false, false
	clear(r.linkDirs)
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
	if r.src == nil {
		return false
	}
	r.addFailed = false
	if r.w.parent != "" && !r.parentWatched {
		r.parentWatched = r.add(r.w.parent)
	}
	if r.src == nil || r.dirWatched {
		return false
	}
	id, err := statID(r.w.dir)
	if err != nil {
		return false // not there (yet)
	}
	r.dirWatched, r.dirID = r.add(r.w.dir), id
	return r.dirWatched
}

func (r *watchRun) unwatchDir() {
	if r.dirWatched && r.src != nil {
		_ = r.src.Remove(r.w.dir) // may be gone with the directory already
	}
	r.dirWatched = false
}

// recheck makes sure the watch is on the directory the path names now (a
// swapped symlink or a replaced directory whose events were lost) and adds
// the watches that are missing. It reports whether the directory may have
// changed.
func (r *watchRun) recheck() bool {
	if r.src == nil {
		return false
	}
	if r.dirWatched {
		if id, err := statID(r.w.dir); err != nil || id != r.dirID {
			r.unwatchDir()
		}
	}
	return r.ensure()
}

func (r *watchRun) add(path string) bool {
	err := r.src.Add(path)
	switch {
	case err == nil:
		return true
	case errors.Is(err, fs.ErrNotExist):
	case isLimit(err):
		r.degrade(fmt.Errorf("watch %s: %w", path, err))
	default:
		r.addFailed = true
		r.logPolling(fmt.Errorf("watch %s: %w", path, err))
	}
	return false
}

// isLimit reports whether err is a watch or file descriptor limit.
func isLimit(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// untilSettled returns how long until the directory's entries will not
// have changed for the loader's RemoveGrace (plus a margin), or 0 when that
// is past: a read then sees removals the loader held back.
func (r *watchRun) untilSettled(now time.Time) time.Duration {
	fi, err := os.Stat(r.w.dir)
	if err != nil {
		return 0
	}
	age := now.Sub(fi.ModTime())
	if age >= r.w.grace || age <= -r.w.grace {
		return 0
	}
	return r.w.grace - age + settleMargin
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
			r.unwatchDir()
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
		base := filepath.Base(name)
		return !Ignored(base) || r.via[base]
	}
	// A file or a symlink on the way to a symlinked manifest, or the
	// directory holding one; else a sibling of the directory, or a
	// neighbour of a target.
	return r.targets[name] || r.linkDirs[name]
}

// complete reports whether ev is a manifest of the directory renamed into
// place from another name in it (a Create right after a Rename in the
// directory: inotify's IN_MOVED_FROM and IN_MOVED_TO of one rename come one
// after the other) that no process has open for writing: its content is
// whole and can be read without waiting for the debounce. A file created or
// written in place is not: its writer may close it and open it again to
// write more (`echo a > f; echo b >> f`), which no check can foresee.
func (r *watchRun) complete(ev fsnotify.Event, movedFrom bool) bool {
	if !movedFrom || !ev.Has(fsnotify.Create) {
		return false
	}
	name := filepath.Clean(ev.Name)
	if filepath.Dir(name) != r.w.dir || Ignored(filepath.Base(name)) {
		return false
	}
	return notBeingWritten(name)
}

// watchLinks finds what the symlinked manifests of the directory resolve
// through, and watches the directories outside it that they point into.
func (r *watchRun) watchLinks() {
	realDir, err := filepath.EvalSymlinks(r.w.dir)
	if err != nil {
		return // not there: nothing to resolve; done again once it is
	}
	entries, err := os.ReadDir(realDir)
	if err != nil {
		return
	}
	via, targets, dirs := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, e := range entries {
		if Ignored(e.Name()) || e.Type()&fs.ModeSymlink == 0 {
			continue
		}
		links, final := linkChain(realDir, e.Name())
		for _, p := range append(links, final) {
			if d := filepath.Dir(p); d == realDir {
				via[filepath.Base(p)] = true
			} else {
				dirs[d], targets[p] = true, true
			}
		}
	}
	r.via, r.targets = via, targets
	if r.src == nil {
		return // polling: the fingerprint follows the links
	}
	for d := range r.linkDirs {
		if !dirs[d] {
			_ = r.src.Remove(d)
			delete(r.linkDirs, d)
		}
	}
	partial := false
	for _, d := range slices.Sorted(maps.Keys(dirs)) {
		if r.linkDirs[d] || d == r.w.parent {
			continue // the parent is watched already
		}
		if len(r.linkDirs) >= maxLinkDirs {
			partial = true
			break
		}
		err := r.src.Add(d)
		if err == nil {
			r.linkDirs[d] = true
			continue
		}
		if isLimit(err) {
			r.degrade(fmt.Errorf("watch %s: %w", d, err))
			return
		}
		partial = true // missing (a dangling link) or not allowed: polled
	}
	if partial && !r.linksPartial {
		r.w.log.Info("cannot watch every directory that symlinked manifests point into; polling them", "interval", r.w.poll)
	}
	r.linksPartial = partial
}

// linkChain resolves dir/name component by component, dir being free of
// symlinks. It returns the symlinks it went through in order (dir/name
// first, when it is one) and the path it ended at, which may not exist.
func linkChain(dir, name string) (links []string, final string) {
	resolved := dir
	rest := []string{name}
	for hops := 0; len(rest) > 0; {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			resolved = filepath.Dir(resolved)
			continue
		}
		p := filepath.Join(resolved, c)
		fi, err := os.Lstat(p)
		if err != nil {
			return links, filepath.Join(append([]string{p}, rest...)...)
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			resolved = p
			continue
		}
		target, err := os.Readlink(p)
		if hops++; err != nil || hops > maxLinkHops {
			return links, p
		}
		links = append(links, p)
		if filepath.IsAbs(target) {
			resolved = "/"
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	return links, resolved
}

// fileID identifies a directory: a different one at the same path is
// another directory.
type fileID struct{ dev, ino uint64 }

func statID(path string) (fileID, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileID{}, err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fileID{dev: uint64(st.Dev), ino: st.Ino}, nil
	}
	return fileID{}, nil
}

// fingerprint summarizes what Load would look at: the names, kinds, sizes,
// modification times and inodes of the manifest files (through symlinks),
// or the error reading the directory.
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
		var ino uint64
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			ino = st.Ino
		}
		fmt.Fprintf(h, "%q %v %d %d %d\n", e.Name(), fi.Mode(), fi.Size(), fi.ModTime().UnixNano(), ino)
	}
	return h.Sum64()
}
