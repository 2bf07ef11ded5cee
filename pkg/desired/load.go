package desired

import (
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
	// Err is non-nil when the directory itself could not be read
	// (missing, not a directory, permission). Callers must then delete
	// nothing. Tasks and Broken are nil in that case.
	Err error
}

// Loader loads a directory and remembers the last valid tasks of each file
// (last known good). It is safe for concurrent use; loads are serialized.
type Loader struct {
	dir      string
	insecure bool // the drop-directory guard is off (see guard.go)
	uid      int  // the reconciler's own user, trusted by the guard besides root

	mu       sync.Mutex
	lastGood map[string][]Task // by file base name
}

// NewLoader returns a Loader for dir. It reads nothing yet. Unless
// [InsecureDir] is given, every load checks first who can write the
// directory and its files (see guard.go).
func NewLoader(dir string, opts ...LoaderOption) *Loader {
	l := &Loader{dir: dir, uid: os.Geteuid(), lastGood: map[string][]Task{}}
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
func (l *Loader) Load() State {
	l.mu.Lock()
	defer l.mu.Unlock()

	entries, err := readDir(l.dir)
	g := newGuard(l.uid)
	if err == nil && !l.insecure {
		err = g.checkDir(l.dir, l.dir)
	}
	if err != nil {
		return State{Err: err}
	}

	st := State{Tasks: map[string]Task{}, Broken: map[string]error{}}
	parsed := map[string][]parsedTask{} // files that parse and validate
	for _, e := range entries {
		name := e.Name()
		if Ignored(name) {
			continue
		}
		path := filepath.Join(l.dir, name)
		if e.IsDir() || isDirLink(path, e) {
			continue // subdirectories are not read
		}
		st.Files = append(st.Files, name)
		if !l.insecure {
			if err := g.checkFile(path, name); err != nil {
				st.Broken[name] = err
				continue
			}
		}
		pts, err := readFile(path, name)
		if err != nil {
			st.Broken[name] = err
			continue
		}
		parsed[name] = pts
	}
	for name, err := range duplicates(st.Files, parsed, st.Broken, l.lastGood) {
		st.Broken[name] = err
		delete(parsed, name)
	}

	for name := range maps.Keys(l.lastGood) {
		if !slices.Contains(st.Files, name) {
			delete(l.lastGood, name)
		}
	}
	for _, name := range st.Files {
		tasks := l.lastGood[name]
		if pts, ok := parsed[name]; ok {
			tasks = make([]Task, len(pts))
			for i, pt := range pts {
				tasks[i] = pt.task
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
	return st
}

// claim is one file's definition of a task name.
type claim struct {
	file     string
	line     int  // of metadata.name; 0 for a last-known-good task
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
							Field: "metadata.name", Msg: duplicateMsg(name, c, cs)})
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

// readDir lists dir, sorted by name, with an error that names the directory.
func readDir(dir string) ([]fs.DirEntry, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("read manifests directory %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("read manifests directory %s: not a directory", dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read manifests directory %s: %w", dir, err)
	}
	return entries, nil
}

// isDirLink reports whether e is a symlink to a directory.
func isDirLink(path string, e fs.DirEntry) bool {
	if e.Type()&fs.ModeSymlink == 0 {
		return false
	}
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// readFile reads and parses one manifest file: a regular file, or a symlink
// to one, of at most MaxFileSize bytes.
func readFile(path, name string) ([]parsedTask, error) {
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
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(data) > MaxFileSize {
		return nil, tooLarge(name)
	}
	return parseFile(name, data)
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
