package desired

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// State is what the directory asks for at one moment.
type State struct {
	// Tasks by metadata.name: the valid tasks, plus the last-known-good
	// tasks of broken files.
	Tasks map[string]Task
	// Broken by file base name: files that exist but fail to read, parse
	// or validate, or that define a task name another file defines too.
	// The error is a join of *Error where it is about the content.
	Broken map[string]error
	// Files are the base names of the manifest files that were read, valid
	// and broken, in name order.
	Files []string
	// Warnings by file base name: what the valid files ask for that is
	// accepted and has no effect on this node (a Kubernetes Pod's
	// resources.requests, ...), in file order. Nil when there are none.
	Warnings map[string][]Warning
	// Err is non-nil when the directory itself could not be read
	// (missing, not a directory, permission). Callers must then delete
	// nothing. Tasks and Broken are nil in that case.
	Err error
	// hashes holds Task.Hash of tasks of Tasks, computed once per content
	// of their file (a load of unchanged files hashes nothing); see Hash.
	// Only the loader and State's own methods write it.
	hashes map[string]string
}

// StateOf returns a state of tasks with their spec hashes, as Load keeps
// them.
func StateOf(tasks ...Task) State {
	s := State{Tasks: make(map[string]Task, len(tasks)), hashes: make(map[string]string, len(tasks))}
	for _, t := range tasks {
		s.Tasks[t.Metadata.Name] = t
		s.hashes[t.Metadata.Name] = t.Hash()
	}
	return s
}

// Hash returns the spec hash of task name of s: the one Load computed, or
// else Tasks[name].Hash().
func (s State) Hash(name string) string {
	if h, ok := s.hashes[name]; ok {
		return h
	}
	return s.Tasks[name].Hash()
}

// Only returns s as it bears on task name: that task alone (none when s has
// no such task) with its spec hash, and s's broken files and error.
func (s State) Only(name string) State {
	out := State{Broken: s.Broken, Err: s.Err, Tasks: map[string]Task{}}
	if t, ok := s.Tasks[name]; ok {
		out.Tasks[name], out.hashes = t, map[string]string{name: s.Hash(name)}
	}
	return out
}

// WithTasksOf returns s with the tasks, hashes and broken files of old: what
// a state whose directory could not be read (Err) keeps.
func (s State) WithTasksOf(old State) State {
	s.Tasks, s.Broken, s.Warnings, s.hashes = old.Tasks, old.Broken, old.Warnings, old.hashes
	return s
}

// RemoveGrace is how long a manifest file that disappeared keeps its tasks
// while the directory is still changing: a file is removed for good once the
// directory's entries (its modification time) have not changed for this
// long. Editors that save by renaming the original away (vim's
// backupcopy=no, emacs' first save), `git checkout` and scripts that
// re-create the directory and fill it again leave a file missing for a
// moment before its new version exists; removing a task is never urgent.
// The [Watcher] reads the directory again once the grace is over.
const RemoveGrace = 200 * time.Millisecond

// LoaderOption configures a [Loader].
type LoaderOption func(*Loader)

// InsecureDir turns the drop-directory guard off: files are applied whoever
// owns them and whatever their mode. For development only.
func InsecureDir() LoaderOption { return func(l *Loader) { l.insecure = true } }

// WithRevision makes each load name the revision of what it read:
// revision is called once per load with the directory resolved (a
// symlinked directory, as the git source's, is read at one target), and
// its answer is the [Task.Revision] of the tasks of the files that load
// read as valid.
func WithRevision(revision func(dir string) string) LoaderOption {
	return func(l *Loader) { l.revision = revision }
}

// withOwner makes the guard take uid as the reconciler's own user (tests).
func withOwner(uid int) LoaderOption { return func(l *Loader) { l.uid = uid } }

// Loader loads a directory and remembers the last valid tasks of each file
// (last known good). It is safe for concurrent use; loads are serialized.
type Loader struct {
	dir      string
	insecure bool // the drop-directory guard is off (see guard.go)
	uid      int  // the reconciler's own user, trusted by the guard besides root
	grace    time.Duration
	now      func() time.Time // injected in tests
	revision func(dir string) string

	mu       sync.Mutex
	lastGood map[string][]Task     // by file base name
	parsed   map[string]parsedFile // by file base name: its last content and what it parsed to
	parses   int                   // files parsed (not taken from parsed), for tests
}

// parsedFile is what one content of a file parsed to.
type parsedFile struct {
	sum   [sha256.Size]byte
	pts   []parsedTask
	warns []Warning
	err   error
}

// NewLoader returns a Loader for dir. It reads nothing yet. Unless
// [InsecureDir] is given, every load checks first who can write the
// directory and its files (see guard.go).
func NewLoader(dir string, opts ...LoaderOption) *Loader {
	l := &Loader{dir: dir, uid: os.Geteuid(), grace: RemoveGrace, now: time.Now,
		lastGood: map[string][]Task{}, parsed: map[string]parsedFile{}}
	for _, o := range opts {
		o(l)
	}
	return l
}

// Load reads the directory now. See [State] for what it returns.
//
// A file that is valid replaces its tasks and becomes the file's last known
// good; a file that is broken keeps the tasks of its last successful load by
// this Loader; a file that is gone is forgotten.
//
// A task name may come from one file only. When two files define the same
// name, both are broken (each error names the other file) and the task keeps
// the spec it had: the last known good of whichever file had it. The last
// known good tasks of a broken file still count as defined by it, so another
// file cannot take one of its names over while it is broken; moving a task
// from one file to another works once both files are valid. A file that is
// broken for a duplicate keeps its other tasks at their last known good too:
// a file is applied whole or not at all.
//
// Writers are caught mid-write, so two transient states are not taken at
// their word. An empty file (0 bytes: truncated, its new content not yet
// written, as by `cp`, shell redirection or an editor that writes in place)
// whose last known good has tasks is reported as broken and keeps them; an
// empty file that had none is a valid file with no tasks. To remove the tasks
// of a file, delete it or write a comment into it. A file that disappeared
// keeps its tasks while the directory changed less than [RemoveGrace] ago
// (unless another file defines them now: a file renamed). A file whose
// content is the same as at the last load is not parsed again (touch, chmod,
// a rewrite with the same bytes cost a read and a hash).
//
// When the directory is a symlink (git-sync, a ConfigMap-style layout) it is
// resolved once per load, so that one load reads one revision even if the
// link is swapped meanwhile.
func (l *Loader) Load() State {
	l.mu.Lock()
	defer l.mu.Unlock()

	dir := l.dir
	if real, err := filepath.EvalSymlinks(l.dir); err == nil {
		dir = real
	}
	entries, changed, err := readDir(l.dir, dir)
	g := newGuard(l.uid)
	if err == nil && !l.insecure {
		err = g.checkDir(l.dir, dir)
	}
	if err != nil {
		return State{Err: err}
	}

	st := State{Tasks: map[string]Task{}, Broken: map[string]error{}, hashes: map[string]string{}}
	rev := ""
	if l.revision != nil {
		rev = l.revision(dir)
	}
	parsed := map[string][]parsedTask{} // files that parse and validate
	warns := map[string][]Warning{}     // of the files in parsed
	for _, e := range entries {
		name := e.Name()
		if Ignored(name) {
			continue
		}
		path := filepath.Join(dir, name)
		if e.IsDir() || isDirLink(path, e) {
			continue // subdirectories are not read
		}
		st.Files = append(st.Files, name)
		if !l.insecure {
			if err := g.checkFile(path, name, e.Type()&fs.ModeSymlink != 0); err != nil {
				st.Broken[name] = err
				continue
			}
		}
		data, err := readFile(path, name)
		if err != nil {
			st.Broken[name] = err
			continue
		}
		if len(data) == 0 && len(l.lastGood[name]) > 0 {
			st.Broken[name] = &Error{File: name, Msg: "file is empty (being written?); its tasks keep their last valid spec until it has content; delete the file or write a comment into it to remove them"}
			continue
		}
		pts, ws, err := l.parse(name, data)
		if err != nil {
			st.Broken[name] = err
			continue
		}
		parsed[name] = pts
		if len(ws) > 0 {
			warns[name] = ws
		}
	}
	for name, err := range duplicates(st.Files, parsed, st.Broken, l.lastGood) {
		st.Broken[name] = err
		delete(parsed, name)
	}
	for name, err := range hostPortClashes(st.Files, parsed, st.Broken, l.lastGood) {
		st.Broken[name] = err
		delete(parsed, name)
	}
	for name, err := range cycles(st.Files, parsed, st.Broken, l.lastGood) {
		st.Broken[name] = err
		delete(parsed, name)
	}

	// Files that disappeared while the directory is still changing keep
	// their tasks a moment longer, after the files that are there.
	present := make(map[string]bool, len(st.Files))
	for _, name := range st.Files {
		present[name] = true
	}
	var vanished []string
	if age := l.now().Sub(changed); age < l.grace && age > -l.grace {
		for name, tasks := range l.lastGood {
			if len(tasks) > 0 && !present[name] {
				vanished = append(vanished, name)
			}
		}
		slices.Sort(vanished)
	}
	for name := range maps.Keys(l.lastGood) {
		if !present[name] && !slices.Contains(vanished, name) {
			delete(l.lastGood, name)
		}
	}
	for name := range maps.Keys(l.parsed) {
		if !present[name] {
			delete(l.parsed, name)
		}
	}
	for _, name := range st.Files {
		tasks := l.lastGood[name]
		if pts, ok := parsed[name]; ok {
			if ws := warns[name]; ws != nil {
				if st.Warnings == nil {
					st.Warnings = map[string][]Warning{}
				}
				st.Warnings[name] = slices.Clone(ws)
			}
			tasks = make([]Task, len(pts))
			for i, pt := range pts {
				tasks[i] = pt.task
				tasks[i].Revision = rev
				if _, taken := st.Tasks[pt.task.Metadata.Name]; !taken {
					st.hashes[pt.task.Metadata.Name] = pt.hash
				}
			}
			l.lastGood[name] = tasks
		}
		for _, t := range tasks {
			// Names are unique by now; should two last-known-good
			// sets ever overlap, the file that sorts first keeps it.
			if _, taken := st.Tasks[t.Metadata.Name]; !taken {
				st.Tasks[t.Metadata.Name] = t.clone()
			}
		}
	}
	for _, name := range vanished {
		for _, t := range l.lastGood[name] {
			if _, taken := st.Tasks[t.Metadata.Name]; !taken {
				st.Tasks[t.Metadata.Name] = t.clone()
			}
		}
	}
	return st
}

// parse parses the content of file name, or returns what the same content
// parsed to at the last load.
func (l *Loader) parse(name string, data []byte) ([]parsedTask, []Warning, error) {
	sum := sha256.Sum256(data)
	if p, ok := l.parsed[name]; ok && p.sum == sum {
		return p.pts, p.warns, p.err
	}
	l.parses++
	pts, warns, err := parseFile(name, data)
	for i := range pts {
		pts[i].hash = pts[i].task.Hash()
	}
	l.parsed[name] = parsedFile{sum: sum, pts: pts, warns: warns, err: err}
	return pts, warns, err
}

// claim is one file's definition of a task name.
type claim struct {
	file     string
	line     int  // of metadata.name (a pod's container name); 0 for a last-known-good task
	lastGood bool // the definition is the last known good of a broken file
}

// duplicates finds the task names defined by more than one file, and
// returns the valid files that must be treated as broken for it, with
// their errors. files are all files in name order, parsed the valid ones,
// broken the others. A file that becomes broken here falls back to its last
// known good tasks, which may clash in turn: repeat until nothing changes.
func duplicates(files []string, parsed map[string][]parsedTask, broken map[string]error, lastGood map[string][]Task) map[string]error {
	out := map[string]error{}
	for {
		claims := map[string][]claim{}
		for _, f := range files {
			if pts, ok := parsed[f]; ok && out[f] == nil {
				for _, pt := range pts {
					claims[pt.task.Metadata.Name] = append(claims[pt.task.Metadata.Name], claim{file: f, line: pt.nameLine})
				}
				continue
			}
			if broken[f] != nil || out[f] != nil {
				for _, t := range lastGood[f] {
					claims[t.Metadata.Name] = append(claims[t.Metadata.Name], claim{file: f, lastGood: true})
				}
			}
		}
		errs := map[string][]*Error{}
		for _, name := range slices.Sorted(maps.Keys(claims)) {
			cs := claims[name]
			if len(cs) < 2 {
				continue
			}
			for _, c := range cs {
				if c.lastGood {
					continue
				}
				for _, pt := range parsed[c.file] {
					if pt.task.Metadata.Name == name {
						errs[c.file] = append(errs[c.file], &Error{File: c.file, Line: pt.nameLine, Doc: pt.doc,
							Field: pt.nameField, Msg: duplicateMsg(name, c, cs)})
					}
				}
			}
		}
		if len(errs) == 0 {
			return out
		}
		for f, es := range errs {
			out[f] = joinErrors(es)
		}
	}
}

// duplicateMsg says where else task name is defined, for the claim c.
func duplicateMsg(name string, c claim, all []claim) string {
	var others []string
	for _, o := range all {
		switch {
		case o.file == c.file:
		case o.lastGood:
			others = append(others, o.file+" (its last valid version; the file is broken now)")
		default:
			others = append(others, fmt.Sprintf("%s:%d", o.file, o.line))
		}
	}
	return fmt.Sprintf("task %q is also defined in %s; neither definition is applied, the task keeps its previous spec until only one file defines it",
		name, strings.Join(others, " and "))
}

// readDir lists path, sorted by name, with an error that names the
// directory as the user gave it (name). changed is the modification time of
// the directory: when an entry was last added, removed or renamed.
func readDir(name, path string) (entries []fs.DirEntry, changed time.Time, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("read manifests directory %s: %w", name, err)
	}
	if !fi.IsDir() {
		return nil, time.Time{}, fmt.Errorf("read manifests directory %s: not a directory", name)
	}
	entries, err = os.ReadDir(path)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("read manifests directory %s: %w", name, err)
	}
	return entries, fi.ModTime(), nil
}

// isDirLink reports whether e is a symlink to a directory.
func isDirLink(path string, e fs.DirEntry) bool {
	if e.Type()&fs.ModeSymlink == 0 {
		return false
	}
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// readFile reads one manifest file: a regular file, or a symlink to one, of
// at most MaxFileSize bytes.
func readFile(path, name string) ([]byte, error) {
	// O_NONBLOCK: if the name was swapped for a FIFO since the listing,
	// opening it must not hang the loader.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, &Error{File: name, Msg: "not a regular file but " + fileKind(fi.Mode())}
	}
	if fi.Size() > MaxFileSize {
		return nil, tooLarge(name)
	}
	// One allocation of the size the file has (it may still grow: a
	// buffer reads on past it, up to the limit).
	var b bytes.Buffer
	b.Grow(int(fi.Size()) + bytes.MinRead)
	if _, err := b.ReadFrom(io.LimitReader(f, MaxFileSize+1)); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if b.Len() > MaxFileSize {
		return nil, tooLarge(name)
	}
	return b.Bytes(), nil
}

// fileKind names the kind of a file that is not a regular one.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "an irregular file"
}

func tooLarge(name string) error {
	return &Error{File: name, Msg: fmt.Sprintf("file is larger than %d bytes", MaxFileSize)}
}

// ignoredSuffixes are editor backups, swap files and temporaries.
var ignoredSuffixes = []string{"~", ".swp", ".swx", ".bak", ".tmp", "-bak"}

// Ignored reports whether a directory entry name is not a manifest: anything
// not ending in ".yaml" or ".yml", dotfiles (including editor lock and
// temporary files such as ".#web.yaml" and ".web.yaml.swp"), editor backups
// and temporaries (suffixes "~", ".swp", ".swx", ".bak", ".tmp", "-bak") and
// emacs autosave files ("#web.yaml#").
func Ignored(name string) bool {
	switch {
	case name == "", strings.HasPrefix(name, "."):
		return true
	case strings.HasPrefix(name, "#") && strings.HasSuffix(name, "#"):
		return true
	}
	for _, s := range ignoredSuffixes {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	ext := filepath.Ext(name)
	return ext != ".yaml" && ext != ".yml"
}

// hostPortClashes finds the host ports that two tasks publish (the valid
// files' tasks and the last known good ones of the broken files): each
// valid file with such a task is broken, its error at the port and naming
// the other task and its file. A file that becomes broken falls back to its
// last good tasks, which may clash in turn: repeat until nothing changes.
func hostPortClashes(files []string, parsed map[string][]parsedTask, broken map[string]error, lastGood map[string][]Task) map[string]error {
	type portClaim struct {
		task, file     string
		field          string // of the hostPort; "" for spec.ports[idx].hostPort
		line, doc, idx int
		lastGood       bool
	}
	out := map[string]error{}
	for {
		claims := map[string][]portClaim{} // "8080/TCP" -> who publishes it
		add := func(t Task, c portClaim, lines []int, fields []string) {
			for i, p := range t.Spec.Ports {
				if p.HostPort == 0 {
					continue
				}
				c.task, c.idx = t.Metadata.Name, i
				if i < len(lines) {
					c.line = lines[i]
				}
				if i < len(fields) {
					c.field = fields[i]
				}
				key := fmt.Sprintf("%d/%s", p.HostPort, orDefault(string(p.Protocol), string(ProtocolTCP)))
				claims[key] = append(claims[key], c)
			}
		}
		for _, f := range files {
			if pts, ok := parsed[f]; ok && out[f] == nil {
				for _, pt := range pts {
					add(pt.task, portClaim{file: f, doc: pt.doc}, pt.portLine, pt.portField)
				}
				continue
			}
			if broken[f] != nil || out[f] != nil {
				for _, t := range lastGood[f] {
					add(t, portClaim{file: f, lastGood: true}, nil, nil)
				}
			}
		}
		errs := map[string][]*Error{}
		for _, key := range slices.Sorted(maps.Keys(claims)) {
			cs := claims[key]
			for _, c := range cs {
				if c.lastGood {
					continue
				}
				for _, o := range cs {
					if o.task == c.task {
						continue
					}
					msg := fmt.Sprintf("host port %s is also published by task %s (%s)", key, o.task, o.file)
					if o.lastGood {
						msg += ", whose file is broken: its last good spec still runs"
					}
					field := c.field
					if field == "" {
						field = fmt.Sprintf("spec.ports[%d].hostPort", c.idx)
					}
					errs[c.file] = append(errs[c.file], &Error{File: c.file, Line: c.line, Doc: c.doc, Field: field, Msg: msg})
					break
				}
			}
		}
		if len(errs) == 0 {
			return out
		}
		for f, es := range errs {
			out[f] = joinErrors(es)
		}
	}
}
