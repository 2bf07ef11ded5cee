package desired

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func manifest(name, image string) string {
	return "apiVersion: warren/v1\nkind: Task\nmetadata: {name: " + name + "}\nspec: {image: " + image + "}\n"
}

func writeFile(t testing.TB, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// summary is a State in a form easy to compare: task -> image@source, and
// the broken file names.
func summary(st State) (map[string]string, []string) {
	tasks := map[string]string{}
	for name, task := range st.Tasks {
		tasks[name] = task.Spec.Image + "@" + task.Source
	}
	var broken []string
	for f := range st.Broken {
		broken = append(broken, f)
	}
	slices.Sort(broken)
	return tasks, broken
}

func checkState(t *testing.T, st State, wantTasks map[string]string, wantBroken ...string) {
	t.Helper()
	if st.Err != nil {
		t.Fatalf("State.Err = %v", st.Err)
	}
	tasks, broken := summary(st)
	if !mapsEqual(tasks, wantTasks) || !slices.Equal(broken, wantBroken) {
		t.Errorf("state:\n got tasks %v broken %v\nwant tasks %v broken %v", tasks, broken, wantTasks, wantBroken)
	}
	// The hashes Load keeps are those of the tasks it returns.
	for name, task := range st.Tasks {
		if got, want := st.Hash(name), task.Hash(); got != want {
			t.Errorf("State.Hash(%q) = %s, want %s (Task.Hash)", name, got, want)
		}
	}
	for name := range st.hashes {
		if _, ok := st.Tasks[name]; !ok {
			t.Errorf("State.hashes has %q, which is not a task", name)
		}
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestLoaderLastKnownGood(t *testing.T) {
	dir := t.TempDir()
	l := NewLoader(dir)
	l.grace = 0 // deletions at once (TestLoaderVanishedFileGrace has the grace)
	writeFile(t, dir, "web.yaml", manifest("web", "nginx:1"))
	writeFile(t, dir, "db.yaml", manifest("db", "postgres:16"))
	checkState(t, l.Load(), map[string]string{"web": "nginx:1@web.yaml", "db": "postgres:16@db.yaml"})

	// Broken: the old task stays, the file is reported.
	writeFile(t, dir, "web.yaml", strings.Replace(manifest("web", "nginx:2"), "kind: Task", "kind: Tsak", 1))
	st := l.Load()
	checkState(t, st, map[string]string{"web": "nginx:1@web.yaml", "db": "postgres:16@db.yaml"}, "web.yaml")
	if got, want := st.Broken["web.yaml"].Error(), `web.yaml:2: kind: must be "Task", got "Tsak"`; got != want {
		t.Errorf("Broken[web.yaml] = %q, want %q", got, want)
	}
	if es := Errors(st.Broken["web.yaml"]); len(es) != 1 || es[0].Field != "kind" {
		t.Errorf("Broken[web.yaml] should hold one *Error about kind, got %v", es)
	}

	// Still broken on the next load: still the old task.
	checkState(t, l.Load(), map[string]string{"web": "nginx:1@web.yaml", "db": "postgres:16@db.yaml"}, "web.yaml")

	// Fixed: the new task.
	writeFile(t, dir, "web.yaml", manifest("web", "nginx:2"))
	checkState(t, l.Load(), map[string]string{"web": "nginx:2@web.yaml", "db": "postgres:16@db.yaml"})

	// Emptied validly: a valid change removes the task.
	writeFile(t, dir, "web.yaml", "# nothing here\n")
	checkState(t, l.Load(), map[string]string{"db": "postgres:16@db.yaml"})

	// Deleted: gone, and its last-good is forgotten.
	writeFile(t, dir, "web.yaml", manifest("web", "nginx:3"))
	checkState(t, l.Load(), map[string]string{"web": "nginx:3@web.yaml", "db": "postgres:16@db.yaml"})
	if err := os.Remove(filepath.Join(dir, "web.yaml")); err != nil {
		t.Fatal(err)
	}
	checkState(t, l.Load(), map[string]string{"db": "postgres:16@db.yaml"})
	writeFile(t, dir, "web.yaml", "kind: [\n")
	checkState(t, l.Load(), map[string]string{"db": "postgres:16@db.yaml"}, "web.yaml")
}

func TestLoaderBrokenFromTheStart(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "web.yaml", manifest("web", "Not A Ref"))
	checkState(t, NewLoader(dir).Load(), map[string]string{}, "web.yaml")
}

func TestLoaderStateIsACopy(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "web.yaml", "apiVersion: warren/v1\nkind: Task\nmetadata: {name: web}\nspec: {image: nginx, command: [a]}\n")
	l := NewLoader(dir)
	st := l.Load()
	st.Tasks["web"].Spec.Command[0] = "changed"
	writeFile(t, dir, "web.yaml", "broken: [\n")
	if got := l.Load().Tasks["web"].Spec.Command[0]; got != "a" {
		t.Errorf("last-good task was changed through a State: command %q", got)
	}
}

func TestLoaderDuplicateAcrossFiles(t *testing.T) {
	dir := t.TempDir()
	l := NewLoader(dir)
	l.grace = 0 // deletions at once (TestLoaderVanishedFileGrace has the grace)
	writeFile(t, dir, "a.yaml", manifest("web", "nginx:a"))
	writeFile(t, dir, "b.yaml", manifest("db", "postgres")+"---\n"+manifest("web", "nginx:b"))
	// Both definitions are errors, in both files; neither file was ever
	// good, so there is nothing to keep.
	st := l.Load()
	checkState(t, st, map[string]string{}, "a.yaml", "b.yaml")
	for file, want := range map[string]string{
		"a.yaml": `a.yaml:3: metadata.name: task "web" is also defined in b.yaml:8; neither definition is applied, the task keeps its previous spec until only one file defines it`,
		"b.yaml": `b.yaml:8: document 2: metadata.name: task "web" is also defined in a.yaml:3; neither definition is applied, the task keeps its previous spec until only one file defines it`,
	} {
		if got := st.Broken[file].Error(); got != want {
			t.Errorf("Broken[%s] = %q, want %q", file, got, want)
		}
	}

	// The conflict is gone: both files are good.
	writeFile(t, dir, "b.yaml", manifest("db", "postgres"))
	checkState(t, l.Load(), map[string]string{"web": "nginx:a@a.yaml", "db": "postgres@b.yaml"})

	// b.yaml defines web again, and changes db: both files are broken,
	// web keeps a.yaml's spec and db b.yaml's last good one.
	writeFile(t, dir, "b.yaml", manifest("db", "postgres:2")+"---\n"+manifest("web", "nginx:b"))
	checkState(t, l.Load(), map[string]string{"web": "nginx:a@a.yaml", "db": "postgres@b.yaml"}, "a.yaml", "b.yaml")
	// Even when a.yaml changes web meanwhile.
	writeFile(t, dir, "a.yaml", manifest("web", "nginx:a2"))
	checkState(t, l.Load(), map[string]string{"web": "nginx:a@a.yaml", "db": "postgres@b.yaml"}, "a.yaml", "b.yaml")

	// Moving web from a.yaml to b.yaml: once a.yaml drops it, both are good.
	writeFile(t, dir, "a.yaml", manifest("other", "busybox"))
	checkState(t, l.Load(), map[string]string{"web": "nginx:b@b.yaml", "db": "postgres:2@b.yaml", "other": "busybox@a.yaml"})

	// A broken file still owns the names of its last good version: a
	// valid file that defines one of them is broken too.
	writeFile(t, dir, "b.yaml", "broken: [\n")
	writeFile(t, dir, "c.yaml", manifest("web", "nginx:c"))
	st = l.Load()
	checkState(t, st, map[string]string{"web": "nginx:b@b.yaml", "db": "postgres:2@b.yaml", "other": "busybox@a.yaml"}, "b.yaml", "c.yaml")
	if got, want := st.Broken["c.yaml"].Error(), `c.yaml:3: metadata.name: task "web" is also defined in b.yaml (its last valid version; the file is broken now); neither definition is applied, the task keeps its previous spec until only one file defines it`; got != want {
		t.Errorf("Broken[c.yaml] = %q, want %q", got, want)
	}
	// b.yaml deleted: its tasks go, and c.yaml's web is free to run.
	if err := os.Remove(filepath.Join(dir, "b.yaml")); err != nil {
		t.Fatal(err)
	}
	checkState(t, l.Load(), map[string]string{"web": "nginx:c@c.yaml", "other": "busybox@a.yaml"})
}

// TestLoaderDuplicateCascade: a file broken by a duplicate falls back to its
// last good tasks, which may clash with a third file in turn.
func TestLoaderDuplicateCascade(t *testing.T) {
	dir := t.TempDir()
	l := NewLoader(dir)
	writeFile(t, dir, "a.yaml", manifest("p", "busybox:1"))
	checkState(t, l.Load(), map[string]string{"p": "busybox:1@a.yaml"})

	writeFile(t, dir, "a.yaml", manifest("q", "busybox:2")+"---\n"+manifest("r", "busybox:2"))
	writeFile(t, dir, "y.yaml", manifest("p", "busybox:y"))
	writeFile(t, dir, "z.yaml", manifest("r", "busybox:z"))
	// a.yaml and z.yaml clash on r; a.yaml falls back to p, which y.yaml
	// now clashes with.
	st := l.Load()
	checkState(t, st, map[string]string{"p": "busybox:1@a.yaml"}, "a.yaml", "y.yaml", "z.yaml")
	if got := st.Broken["y.yaml"].Error(); !strings.Contains(got, `task "p" is also defined in a.yaml (its last valid version`) {
		t.Errorf("Broken[y.yaml] = %q", got)
	}
}

func TestLoaderFiles(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "b.yaml", manifest("b", "busybox"))
	writeFile(t, dir, "a.yml", "broken: [\n")
	writeFile(t, dir, "c.txt", "")
	st := NewLoader(dir).Load()
	if want := []string{"a.yml", "b.yaml"}; !slices.Equal(st.Files, want) {
		t.Errorf("Files = %q, want %q", st.Files, want)
	}
}

func TestLoaderDirectoryErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	st := NewLoader(missing).Load()
	if st.Err == nil || !errors.Is(st.Err, fs.ErrNotExist) || !strings.Contains(st.Err.Error(), missing) {
		t.Errorf("missing dir: Err = %v, want a not-exist error naming %s", st.Err, missing)
	}
	if st.Tasks != nil || st.Broken != nil {
		t.Errorf("missing dir: Tasks and Broken must be nil, got %v %v", st.Tasks, st.Broken)
	}

	file := filepath.Join(dir, "file")
	writeFile(t, dir, "file", "")
	if st := NewLoader(file).Load(); st.Err == nil || st.Err.Error() != "read manifests directory "+file+": not a directory" {
		t.Errorf("not a dir: Err = %v", st.Err)
	}

	// The directory going away and coming back keeps last-good.
	mdir := filepath.Join(dir, "m")
	if err := os.Mkdir(mdir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, mdir, "web.yaml", manifest("web", "nginx"))
	l := NewLoader(mdir)
	checkState(t, l.Load(), map[string]string{"web": "nginx@web.yaml"})
	if err := os.Rename(mdir, mdir+".old"); err != nil {
		t.Fatal(err)
	}
	if st := l.Load(); st.Err == nil {
		t.Fatal("Load of a removed directory: Err is nil")
	}
	if err := os.Rename(mdir+".old", mdir); err != nil {
		t.Fatal(err)
	}
	writeFile(t, mdir, "web.yaml", "broken: [\n")
	checkState(t, l.Load(), map[string]string{"web": "nginx@web.yaml"}, "web.yaml")
}

func TestLoaderFileSelection(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", manifest("a", "busybox"))
	writeFile(t, dir, "b.yml", manifest("b", "busybox"))
	writeFile(t, dir, "c.json", manifest("c", "busybox"))
	writeFile(t, dir, ".d.yaml", manifest("d", "busybox"))
	writeFile(t, dir, "e.yaml~", manifest("e", "busybox"))
	writeFile(t, dir, "f.yaml.swp", manifest("f", "busybox"))
	if err := os.Mkdir(filepath.Join(dir, "sub.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "sub.yaml"), "g.yaml", manifest("g", "busybox"))
	// Neither hidden nor plain subdirectories are read.
	for _, sub := range []string{".hidden", "drafts"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, sub), "l.yaml", manifest("l"+strings.TrimPrefix(sub, "."), "busybox"))
	}
	// A symlink to a regular file is read; one to a directory is not; a
	// dangling one and a FIFO are broken.
	other := t.TempDir()
	writeFile(t, other, "h.yaml", manifest("h", "busybox"))
	for name, target := range map[string]string{"h.yaml": filepath.Join(other, "h.yaml"), "i.yaml": other, "j.yaml": filepath.Join(other, "missing")} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "k.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	st := NewLoader(dir).Load()
	checkState(t, st, map[string]string{"a": "busybox@a.yaml", "b": "busybox@b.yml", "h": "busybox@h.yaml"}, "j.yaml", "k.yaml")
	if got, want := st.Broken["k.yaml"].Error(), "k.yaml: not a regular file but a named pipe"; got != want {
		t.Errorf("Broken[k.yaml] = %q, want %q", got, want)
	}
	if !errors.Is(st.Broken["j.yaml"], fs.ErrNotExist) {
		t.Errorf("Broken[j.yaml] = %v, want a not-exist error", st.Broken["j.yaml"])
	}
}

func TestLoaderTooLarge(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "big.yaml", manifest("big", "busybox")+strings.Repeat("#", MaxFileSize))
	st := NewLoader(dir).Load()
	if got, want := st.Broken["big.yaml"].Error(), "big.yaml: file is larger than 1048576 bytes"; got != want {
		t.Errorf("Broken[big.yaml] = %q, want %q", got, want)
	}
}

func TestLoaderUnreadableFile(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads files whatever their mode")
	}
	dir := t.TempDir()
	writeFile(t, dir, "web.yaml", manifest("web", "nginx"))
	l := NewLoader(dir)
	checkState(t, l.Load(), map[string]string{"web": "nginx@web.yaml"})
	if err := os.Chmod(filepath.Join(dir, "web.yaml"), 0); err != nil {
		t.Fatal(err)
	}
	st := l.Load()
	checkState(t, st, map[string]string{"web": "nginx@web.yaml"}, "web.yaml")
	if !errors.Is(st.Broken["web.yaml"], fs.ErrPermission) {
		t.Errorf("Broken[web.yaml] = %v, want a permission error", st.Broken["web.yaml"])
	}
}

func TestIgnored(t *testing.T) {
	tests := []struct {
		name    string
		ignored bool
	}{
		{"web.yaml", false},
		{"web.yml", false},
		{"web.prod.yaml", false},
		{"web-bak.yaml", false},
		{"web.json", true},
		{"web", true},
		{"web.YAML", true},
		{".web.yaml", true},
		{".#web.yaml", true},
		{"#web.yaml#", true},
		{"web.yaml~", true},
		{"web.yaml.swp", true},
		{"web.yaml.swx", true},
		{"web.yaml.bak", true},
		{"web.yaml.tmp", true},
		{"web.yaml-bak", true},
		{".yaml", true},
		{"", true},
	}
	for _, tt := range tests {
		if got := Ignored(tt.name); got != tt.ignored {
			t.Errorf("Ignored(%q) = %v, want %v", tt.name, got, tt.ignored)
		}
	}
}

// TestLoaderEmptyFile: an empty file is what a writer leaves between
// truncating a file and writing its new content (cp, shell redirection,
// editors that write in place). It keeps the last known good tasks; an empty
// file that never had tasks is simply a file with none.
func TestLoaderEmptyFile(t *testing.T) {
	dir := t.TempDir()
	l := NewLoader(dir)
	writeFile(t, dir, "web.yaml", manifest("web", "nginx:1"))
	writeFile(t, dir, "new.yaml", "")
	checkState(t, l.Load(), map[string]string{"web": "nginx:1@web.yaml"})

	writeFile(t, dir, "web.yaml", "")
	st := l.Load()
	checkState(t, st, map[string]string{"web": "nginx:1@web.yaml"}, "web.yaml")
	if got := st.Broken["web.yaml"].Error(); !strings.HasPrefix(got, "web.yaml: file is empty") {
		t.Errorf("Broken[web.yaml] = %q", got)
	}
	writeFile(t, dir, "web.yaml", manifest("web", "nginx:2"))
	checkState(t, l.Load(), map[string]string{"web": "nginx:2@web.yaml"})

	// A comment is content: the tasks go. Emptied after that, nothing to keep.
	writeFile(t, dir, "web.yaml", "# retired\n")
	checkState(t, l.Load(), map[string]string{})
	writeFile(t, dir, "web.yaml", "")
	checkState(t, l.Load(), map[string]string{})
}

// TestLoaderParsesChangedContentOnly: a file whose bytes did not change is not
// parsed again; one whose bytes changed is, also back to an earlier content.
func TestLoaderParsesChangedContentOnly(t *testing.T) {
	dir := t.TempDir()
	l := NewLoader(dir)
	writeFile(t, dir, "web.yaml", manifest("web", "nginx:1"))
	writeFile(t, dir, "bad.yaml", "broken: [\n")
	l.Load()
	if l.parses != 2 {
		t.Fatalf("parses = %d, want 2", l.parses)
	}
	now := time.Now().Add(time.Minute)
	must(t, os.Chtimes(filepath.Join(dir, "web.yaml"), now, now))
	writeFile(t, dir, "bad.yaml", "broken: [\n")
	st := l.Load()
	checkState(t, st, map[string]string{"web": "nginx:1@web.yaml"}, "bad.yaml")
	if l.parses != 2 {
		t.Errorf("unchanged files were parsed again: parses = %d, want 2", l.parses)
	}
	writeFile(t, dir, "web.yaml", manifest("web", "nginx:2"))
	checkState(t, l.Load(), map[string]string{"web": "nginx:2@web.yaml"}, "bad.yaml")
	writeFile(t, dir, "web.yaml", manifest("web", "nginx:1"))
	checkState(t, l.Load(), map[string]string{"web": "nginx:1@web.yaml"}, "bad.yaml")
	if l.parses != 4 {
		t.Errorf("parses = %d, want 4", l.parses)
	}
	// A file renamed is another file: parsed under its new name.
	must(t, os.Rename(filepath.Join(dir, "web.yaml"), filepath.Join(dir, "site.yaml")))
	checkState(t, l.Load(), map[string]string{"web": "nginx:1@site.yaml"}, "bad.yaml")
}

// TestLoaderSymlinkLayouts reads the two symlink layouts of GitOps tools: the
// directory a symlink to the checked-out revision (git-sync), and the
// Kubernetes ConfigMap volume (each file a symlink through "..data", itself
// a link to a hidden, timestamped directory).
func TestLoaderSymlinkLayouts(t *testing.T) {
	root := t.TempDir()
	must(t, os.Mkdir(filepath.Join(root, "rev1"), 0o755))
	writeFile(t, filepath.Join(root, "rev1"), "web.yaml", manifest("web", "nginx:1"))
	must(t, os.Symlink("rev1", filepath.Join(root, "current")))
	checkState(t, NewLoader(filepath.Join(root, "current")).Load(), map[string]string{"web": "nginx:1@web.yaml"})

	cm := filepath.Join(root, "cm")
	must(t, os.MkdirAll(filepath.Join(cm, "..2026_01_02_15_04_05.1"), 0o755))
	writeFile(t, filepath.Join(cm, "..2026_01_02_15_04_05.1"), "web.yaml", manifest("web", "nginx:1"))
	writeFile(t, filepath.Join(cm, "..2026_01_02_15_04_05.1"), "db.yaml", manifest("db", "postgres"))
	must(t, os.Symlink("..2026_01_02_15_04_05.1", filepath.Join(cm, "..data")))
	for _, f := range []string{"web.yaml", "db.yaml"} {
		must(t, os.Symlink(filepath.Join("..data", f), filepath.Join(cm, f)))
	}
	st := NewLoader(cm).Load()
	checkState(t, st, map[string]string{"web": "nginx:1@web.yaml", "db": "postgres@db.yaml"})
	if want := []string{"db.yaml", "web.yaml"}; !slices.Equal(st.Files, want) {
		t.Errorf("Files = %v, want %v", st.Files, want)
	}
}

// BenchmarkLoad1000Cold loads 1,000 files with a new Loader each time, so
// every file is parsed (BenchmarkLoad1000 reuses its Loader: after the first
// load it measures listing, reading and hashing unchanged files).
func BenchmarkLoad1000Cold(b *testing.B) {
	dir := b.TempDir()
	for i := range 1000 {
		writeFile(b, dir, fmt.Sprintf("task-%04d.yaml", i), benchManifest(i))
	}
	b.ReportAllocs()
	for b.Loop() {
		if st := NewLoader(dir).Load(); len(st.Tasks) != 1000 {
			b.Fatalf("tasks %d", len(st.Tasks))
		}
	}
}

// TestLoaderVanishedFileGrace: a file that disappeared keeps its tasks while
// the directory changed less than RemoveGrace ago (an editor's save by
// rename, a directory re-created and refilled), unless another file defines
// them now; after that it is gone.
func TestLoaderVanishedFileGrace(t *testing.T) {
	dir := t.TempDir()
	l := NewLoader(dir)
	var later time.Duration // how far the loader's clock is ahead
	l.now = func() time.Time { return time.Now().Add(later) }
	writeFile(t, dir, "web.yaml", manifest("web", "nginx:1"))
	writeFile(t, dir, "db.yaml", manifest("db", "postgres"))
	checkState(t, l.Load(), map[string]string{"web": "nginx:1@web.yaml", "db": "postgres@db.yaml"})

	// vim: renamed to web.yaml~, the new file not there yet.
	must(t, os.Rename(filepath.Join(dir, "web.yaml"), filepath.Join(dir, "web.yaml~")))
	st := l.Load()
	checkState(t, st, map[string]string{"web": "nginx:1@web.yaml", "db": "postgres@db.yaml"})
	if slices.Contains(st.Files, "web.yaml") {
		t.Errorf("Files = %v: web.yaml is not there", st.Files)
	}
	writeFile(t, dir, "web.yaml", manifest("web", "nginx:2"))
	checkState(t, l.Load(), map[string]string{"web": "nginx:2@web.yaml", "db": "postgres@db.yaml"})

	// Renamed within: the new file defines the task at once.
	must(t, os.Rename(filepath.Join(dir, "web.yaml"), filepath.Join(dir, "site.yaml")))
	checkState(t, l.Load(), map[string]string{"web": "nginx:2@site.yaml", "db": "postgres@db.yaml"})

	// Removed: kept during the grace, gone after it.
	must(t, os.Remove(filepath.Join(dir, "db.yaml")))
	checkState(t, l.Load(), map[string]string{"web": "nginx:2@site.yaml", "db": "postgres@db.yaml"})
	later = RemoveGrace
	checkState(t, l.Load(), map[string]string{"web": "nginx:2@site.yaml"})
	later = 0
	// ...and forgotten: a later change of the directory does not bring it back.
	writeFile(t, dir, "other.yaml", manifest("other", "busybox"))
	checkState(t, l.Load(), map[string]string{"web": "nginx:2@site.yaml", "other": "busybox@other.yaml"})

	// The directory deleted and re-created: its files keep their tasks
	// while it is new and filling up.
	must(t, os.RemoveAll(dir))
	if st := l.Load(); st.Err == nil {
		t.Fatal("Load of a missing directory: Err is nil")
	}
	must(t, os.Mkdir(dir, 0o755))
	checkState(t, l.Load(), map[string]string{"web": "nginx:2@site.yaml", "other": "busybox@other.yaml"})
	writeFile(t, dir, "site.yaml", manifest("web", "nginx:2"))
	later = RemoveGrace
	checkState(t, l.Load(), map[string]string{"web": "nginx:2@site.yaml"})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestStateViews: StateOf keeps each task's hash as Load does; Only keeps
// one task with its hash and the directory's broken files and error;
// WithTasksOf keeps another state's tasks, hashes and broken files.
func TestStateViews(t *testing.T) {
	parse := func(name, image string) Task {
		ts, err := Parse(name+".yaml", []byte(manifest(name, image)))
		if err != nil || len(ts) != 1 {
			t.Fatalf("parse %s: %v", name, err)
		}
		return ts[0]
	}
	web, api := parse("web", "nginx:1"), parse("api", "api:2")
	s := StateOf(web, api)
	s.Broken = map[string]error{"db.yaml": errors.New("db.yaml:1: bad")}
	if s.hashes["web"] != web.Hash() || s.hashes["api"] != api.Hash() || len(s.hashes) != 2 {
		t.Fatalf("StateOf hashes = %v", s.hashes)
	}
	one := s.Only("web")
	if len(one.Tasks) != 1 || one.Hash("web") != web.Hash() || len(one.hashes) != 1 || one.Broken["db.yaml"] == nil {
		t.Errorf("Only(web) = %+v", one)
	}
	if none := s.Only("gone"); len(none.Tasks) != 0 || len(none.hashes) != 0 {
		t.Errorf("Only(gone) = %+v", none)
	}
	unread := State{Err: errors.New("open manifests: permission denied")}.WithTasksOf(s)
	if unread.Err == nil || len(unread.Tasks) != 2 || unread.hashes["api"] != api.Hash() || unread.Broken["db.yaml"] == nil {
		t.Errorf("WithTasksOf = %+v", unread)
	}
}

// dependent is a manifest of task name depending on the tasks given.
func dependent(name string, deps ...string) string {
	s := "apiVersion: warren/v1\nkind: Task\nmetadata: {name: " + name + "}\nspec:\n  image: busybox\n"
	if len(deps) > 0 {
		s += "  dependsOn:\n"
		for _, d := range deps {
			s += "    - task: " + d + "\n"
		}
	}
	return s
}

// TestLoaderDependencyCycles: a cycle of spec.dependsOn across files
// breaks the files that close it, each error at the dependency and naming
// the whole cycle; the tasks keep their last valid spec.
func TestLoaderDependencyCycles(t *testing.T) {
	dir := t.TempDir()
	l := NewLoader(dir)
	l.grace = 0
	writeFile(t, dir, "a.yaml", dependent("a", "b"))
	writeFile(t, dir, "b.yaml", dependent("b", "c", "missing"))
	writeFile(t, dir, "c.yaml", dependent("c"))
	// A chain, and a dependency on a task nobody defines: no error.
	checkState(t, l.Load(), map[string]string{"a": "busybox@a.yaml", "b": "busybox@b.yaml", "c": "busybox@c.yaml"})

	// c closes the cycle a -> b -> c -> a: every file of it is broken and
	// keeps its last good task.
	writeFile(t, dir, "c.yaml", dependent("c", "a"))
	st := l.Load()
	checkState(t, st, map[string]string{"a": "busybox@a.yaml", "b": "busybox@b.yaml", "c": "busybox@c.yaml"}, "a.yaml", "b.yaml", "c.yaml")
	cycle := "dependency cycle: a (a.yaml) -> b (b.yaml) -> c (c.yaml) -> a; no task of it could ever start"
	for file, want := range map[string]string{
		"a.yaml": "a.yaml:7: spec.dependsOn[0].task: " + cycle,
		"b.yaml": "b.yaml:7: spec.dependsOn[0].task: " + cycle,
		"c.yaml": "c.yaml:7: spec.dependsOn[0].task: " + cycle,
	} {
		if got := st.Broken[file].Error(); got != want {
			t.Errorf("Broken[%s] = %q\n want %q", file, got, want)
		}
	}
	if st.Tasks["c"].Spec.DependsOn != nil {
		t.Errorf("c runs its new spec: %v", st.Tasks["c"].Spec.DependsOn)
	}

	// Two tasks of one file.
	writeFile(t, dir, "c.yaml", dependent("c"))
	writeFile(t, dir, "d.yaml", dependent("d", "e")+"---\n"+dependent("e", "d"))
	st = l.Load()
	checkState(t, st, map[string]string{"a": "busybox@a.yaml", "b": "busybox@b.yaml", "c": "busybox@c.yaml"}, "d.yaml")
	if got := st.Broken["d.yaml"].Error(); !strings.Contains(got, "d.yaml:7: spec.dependsOn[0].task: dependency cycle: d (d.yaml) -> e (d.yaml) -> d") ||
		!strings.Contains(got, "d.yaml:15: document 2: spec.dependsOn[0].task: dependency cycle") {
		t.Errorf("Broken[d.yaml] = %q", got)
	}
}

func TestParseDependsOn(t *testing.T) {
	for _, c := range []struct {
		name, deps, want string
	}{
		{"self", "[{task: web}]", `x.yaml:6: spec.dependsOn[0].task: a task cannot depend on itself`},
		{"twice", "[{task: db}, {task: db, condition: healthy}]", `x.yaml:6: spec.dependsOn[1].task: "db" is already a dependency (spec.dependsOn[0])`},
		{"condition", "[{task: db, condition: ready}]", `x.yaml:6: spec.dependsOn[0].condition: must be one of running, healthy, completed, got "ready"`},
		{"name", "[{task: DB}]", `x.yaml:6: spec.dependsOn[0].task: ` + dns1123Msg + `, got "DB"`},
		{"no task", "[{condition: healthy}]", `x.yaml:6: spec.dependsOn[0].task: required`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("x.yaml", []byte("apiVersion: warren/v1\nkind: Task\nmetadata: {name: web}\nspec:\n  image: busybox\n  dependsOn: "+c.deps+"\n"))
			if err == nil || err.Error() != c.want {
				t.Errorf("Parse = %v\n want %s", err, c.want)
			}
		})
	}
	ts, err := Parse("x.yaml", []byte(dependent("app", "db")))
	if err != nil || ts[0].Spec.DependsOn[0].Condition != DependRunning {
		t.Errorf("Parse = %+v, %v; want the condition running by default", ts, err)
	}
}

// TestLoaderHostPortClash: a host port published by two tasks breaks both
// files, each error at its port and naming the other task's file; once one
// lets go, both are good.
func TestLoaderHostPortClash(t *testing.T) {
	dir := t.TempDir()
	l := NewLoader(dir)
	l.grace = 0
	bridge := func(name string, port int) string {
		return fmt.Sprintf("apiVersion: warren/v1\nkind: Task\nmetadata: {name: %s}\nspec:\n  image: nginx\n  network: bridge\n  ports:\n    - {containerPort: 80, hostPort: %d}\n", name, port)
	}
	writeFile(t, dir, "a.yaml", bridge("web", 8080))
	writeFile(t, dir, "b.yaml", bridge("api", 8080))
	st := l.Load()
	checkState(t, st, map[string]string{}, "a.yaml", "b.yaml")
	for file, want := range map[string]string{
		"a.yaml": `a.yaml:8: spec.ports[0].hostPort: host port 8080/TCP is also published by task api (b.yaml)`,
		"b.yaml": `b.yaml:8: spec.ports[0].hostPort: host port 8080/TCP is also published by task web (a.yaml)`,
	} {
		if got := st.Broken[file].Error(); got != want {
			t.Errorf("Broken[%s] = %q, want %q", file, got, want)
		}
	}
	writeFile(t, dir, "b.yaml", bridge("api", 8081))
	checkState(t, l.Load(), map[string]string{"web": "nginx@a.yaml", "api": "nginx@b.yaml"})
	// UDP and TCP on one port number do not clash.
	writeFile(t, dir, "b.yaml", strings.Replace(bridge("api", 8080), "hostPort: 8080}", "hostPort: 8080, protocol: UDP}", 1))
	checkState(t, l.Load(), map[string]string{"web": "nginx@a.yaml", "api": "nginx@b.yaml"})
}

// TestLoaderRevision: with WithRevision, the tasks of the files a load
// reads as valid carry that load's revision, read from the directory the
// load resolved; a broken file's last-known-good tasks keep the revision
// they were read at.
func TestLoaderRevision(t *testing.T) {
	root := t.TempDir()
	link := filepath.Join(root, "current")
	var asked []string
	l := NewLoader(link, WithRevision(func(dir string) string {
		asked = append(asked, dir)
		b, _ := os.ReadFile(filepath.Join(dir, ".rev"))
		return string(b)
	}))
	l.grace = 0 // a file gone from a tree is gone at once
	tree := func(rev string, files map[string]string) {
		dir := filepath.Join(root, rev)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, dir, ".rev", rev)
		for name, content := range files {
			writeFile(t, dir, name, content)
		}
		_ = os.Remove(link + ".tmp")
		if err := os.Symlink(rev, link+".tmp"); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(link+".tmp", link); err != nil {
			t.Fatal(err)
		}
	}
	revisions := func(st State) map[string]string {
		out := map[string]string{}
		for name, task := range st.Tasks {
			out[name] = task.Revision
		}
		return out
	}
	tree("c1", map[string]string{"web.yaml": manifest("web", "nginx:1"), "db.yaml": manifest("db", "postgres:16")})
	if got := revisions(l.Load()); !mapsEqual(got, map[string]string{"web": "c1", "db": "c1"}) {
		t.Errorf("first commit: %v", got)
	}
	if real, _ := filepath.EvalSymlinks(filepath.Join(root, "c1")); len(asked) != 1 || asked[0] != real {
		t.Errorf("revision asked of %v, want [%s] (the resolved directory)", asked, real)
	}
	// db.yaml unchanged: it is read from c2 and named so; web.yaml broken
	// keeps the spec, and the revision, of c1.
	tree("c2", map[string]string{"web.yaml": "kind: [\n", "db.yaml": manifest("db", "postgres:16")})
	st := l.Load()
	if got := revisions(st); !mapsEqual(got, map[string]string{"web": "c1", "db": "c2"}) {
		t.Errorf("broken web.yaml: %v", got)
	}
	if st.Hash("db") != st.Tasks["db"].Hash() {
		t.Errorf("the revision must not change the hash")
	}
	tree("c3", map[string]string{"web.yaml": manifest("web", "nginx:2")})
	if got := revisions(l.Load()); !mapsEqual(got, map[string]string{"web": "c3"}) {
		t.Errorf("fixed: %v", got)
	}
	// Without the option, no revision.
	if got := revisions(NewLoader(link).Load()); !mapsEqual(got, map[string]string{"web": ""}) {
		t.Errorf("without WithRevision: %v", got)
	}
}
