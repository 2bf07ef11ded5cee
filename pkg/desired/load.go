package desired

import (
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
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
	// or validate, or that define a task name an earlier file already
	// defines. The error is a join of *Error where it is about the content.
	Broken map[string]error
	// Err is non-nil when the directory itself could not be read
	// (missing, not a directory, permission). Callers must then delete
	// nothing. Tasks and Broken are nil in that case.
	Err error
}

// Loader loads a directory and remembers the last valid tasks of each file
// (last known good). It is safe for concurrent use; loads are serialized.
type Loader struct {
	dir string

	mu       sync.Mutex
	lastGood map[string][]Task // by file base name
}

// NewLoader returns a Loader for dir. It reads nothing yet.
func NewLoader(dir string) *Loader {
	return &Loader{dir: dir, lastGood: map[string][]Task{}}
}

// Load reads the directory now. See [State] for what it returns.
//
// Files are read in name order. A file that is valid replaces its tasks and
// becomes the file's last known good; a file that is broken keeps the tasks
// of its last successful load by this Loader; a file that is gone is
// forgotten. When two files define the same task name, the file that sorts
// first keeps it and the later file is broken.
func (l *Loader) Load() State {
	l.mu.Lock()
	defer l.mu.Unlock()

	entries, err := readDir(l.dir)
	if err != nil {
		return State{Err: err}
	}

	st := State{Tasks: map[string]Task{}, Broken: map[string]error{}}
	owner := map[string]string{} // task name -> file
	present := map[string]bool{}
	for _, e := range entries {
		name := e.Name()
		if Ignored(name) {
			continue
		}
		path := filepath.Join(l.dir, name)
		if e.IsDir() || isDirLink(path, e) {
			continue // subdirectories are not read
		}
		present[name] = true

		pts, err := readFile(path, name)
		if err == nil {
			err = conflicts(name, pts, owner)
		}
		var tasks []Task
		if err != nil {
			st.Broken[name] = err
			tasks = l.lastGood[name]
		} else {
			tasks = make([]Task, len(pts))
			for i, pt := range pts {
				tasks[i] = pt.task
			}
			l.lastGood[name] = tasks
		}
		for _, t := range tasks {
			// A broken file's last-good task may have been claimed
			// since by an earlier file: the earlier file wins.
			if _, taken := owner[t.Metadata.Name]; !taken {
				owner[t.Metadata.Name] = name
				st.Tasks[t.Metadata.Name] = t.clone()
			}
		}
	}
	for name := range maps.Keys(l.lastGood) {
		if !present[name] {
			delete(l.lastGood, name)
		}
	}
	return st
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

// conflicts reports the tasks of file that an earlier file already defines.
func conflicts(file string, pts []parsedTask, owner map[string]string) error {
	var errs []*Error
	for _, pt := range pts {
		if other, taken := owner[pt.task.Metadata.Name]; taken {
			errs = append(errs, &Error{File: file, Line: pt.nameLine, Doc: pt.doc, Field: "metadata.name",
				Msg: fmt.Sprintf("task %q is already defined in %s", pt.task.Metadata.Name, other)})
		}
	}
	return joinErrors(errs)
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
