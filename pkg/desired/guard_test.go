package desired

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// guardDir is a manifests directory with one valid file, web.yaml, whose
// parents are all safe: a fresh temporary directory under it.
func guardDir(t *testing.T) (parent, dir string) {
	t.Helper()
	parent = filepath.Join(t.TempDir(), "etc")
	dir = filepath.Join(parent, "manifests")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "web.yaml", manifest("web", "nginx"))
	return parent, dir
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func chown(t *testing.T, path string, uid int) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("changing a file's owner needs root")
	}
	if err := os.Lchown(path, uid, -1); err != nil {
		t.Fatal(err)
	}
}

// wantDirRefused checks that st is a refused directory whose error names
// every one of parts.
func wantDirRefused(t *testing.T, st State, parts ...string) {
	t.Helper()
	if st.Err == nil {
		t.Fatalf("State.Err = nil, want the directory refused (tasks %v, broken %v)", st.Tasks, st.Broken)
	}
	if st.Tasks != nil || st.Broken != nil {
		t.Errorf("a refused directory has tasks %v, broken %v; want none (nothing applied, nothing deleted)", st.Tasks, st.Broken)
	}
	for _, p := range parts {
		if !strings.Contains(st.Err.Error(), p) {
			t.Errorf("State.Err = %q, want it to name %q", st.Err, p)
		}
	}
}

// wantFileRefused checks that file is broken for the guard, its error
// naming every one of parts.
func wantFileRefused(t *testing.T, st State, file string, parts ...string) {
	t.Helper()
	if st.Err != nil {
		t.Fatalf("State.Err = %v, want only %s refused", st.Err, file)
	}
	err := st.Broken[file]
	if err == nil {
		t.Fatalf("Broken[%s] = nil, want the file refused", file)
	}
	if es := Errors(err); len(es) != 1 || es[0].File != file {
		t.Errorf("Broken[%s] = %v, want one *Error about the file", file, err)
	}
	for _, p := range append(parts, "refused", InsecureDirFlag) {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("Broken[%s] = %q, want it to name %q", file, err, p)
		}
	}
}

func TestGuardAcceptsSafeDirectory(t *testing.T) {
	_, dir := guardDir(t)
	chmod(t, filepath.Join(dir, "web.yaml"), 0o600)
	writeFile(t, dir, "db.yaml", manifest("db", "postgres")) // 0644
	checkState(t, NewLoader(dir).Load(), map[string]string{"web": "nginx@web.yaml", "db": "postgres@db.yaml"})
}

func TestGuardDirectoryWritableByOthers(t *testing.T) {
	for _, mode := range []os.FileMode{0o775, 0o757, 0o777} {
		t.Run(mode.String(), func(t *testing.T) {
			_, dir := guardDir(t)
			l := NewLoader(dir)
			checkState(t, l.Load(), map[string]string{"web": "nginx@web.yaml"})
			chmod(t, dir, mode)
			wantDirRefused(t, l.Load(), dir, "writable by group or others", mode.String(), "chmod go-w "+dir, InsecureDirFlag)

			// Fixed: applied again, the same tasks.
			chmod(t, dir, 0o755)
			checkState(t, l.Load(), map[string]string{"web": "nginx@web.yaml"})
		})
	}
}

func TestGuardDirectoryOwnedByAnotherUser(t *testing.T) {
	_, dir := guardDir(t)
	chown(t, dir, 1000)
	wantDirRefused(t, NewLoader(dir).Load(), dir, "owned by uid 1000", "chown 0 "+dir)
}

func TestGuardOwnUserIsTrusted(t *testing.T) {
	_, dir := guardDir(t)
	chown(t, dir, 1000)
	chown(t, filepath.Join(dir, "web.yaml"), 1000)
	// A reconciler running as uid 1000 trusts its own files.
	checkState(t, NewLoader(dir, withOwner(1000)).Load(), map[string]string{"web": "nginx@web.yaml"})
}

func TestGuardParentWritableByOthers(t *testing.T) {
	parent, dir := guardDir(t)
	chmod(t, parent, 0o777)
	// Whoever can write the parent can rename the directory away and put
	// another in its place.
	wantDirRefused(t, NewLoader(dir).Load(), parent, "writable by group or others", "chmod go-w "+parent)

	// With the sticky bit (as /tmp) others cannot rename what is not
	// theirs: accepted.
	chmod(t, parent, 0o777|os.ModeSticky)
	checkState(t, NewLoader(dir).Load(), map[string]string{"web": "nginx@web.yaml"})
}

func TestGuardStickyParentOfAnotherUsersDirectory(t *testing.T) {
	parent, dir := guardDir(t)
	chmod(t, parent, 0o777|os.ModeSticky)
	chown(t, dir, 1000)
	wantDirRefused(t, NewLoader(dir).Load(), "owned by uid 1000")
}

func TestGuardFileWritableByOthers(t *testing.T) {
	for _, mode := range []os.FileMode{0o664, 0o646, 0o666} {
		t.Run(mode.String(), func(t *testing.T) {
			_, dir := guardDir(t)
			path := filepath.Join(dir, "web.yaml")
			l := NewLoader(dir)
			checkState(t, l.Load(), map[string]string{"web": "nginx@web.yaml"})

			// A changed spec in a file others can write is not applied: the
			// task keeps its last valid spec.
			writeFile(t, dir, "web.yaml", manifest("web", "nginx:2"))
			chmod(t, path, mode)
			st := l.Load()
			wantFileRefused(t, st, "web.yaml", "writable by group or others", mode.String(), "chmod go-w "+path)
			checkState(t, st, map[string]string{"web": "nginx@web.yaml"}, "web.yaml")

			chmod(t, path, 0o644)
			checkState(t, l.Load(), map[string]string{"web": "nginx:2@web.yaml"})
		})
	}
}

func TestGuardNewInsecureFileNotApplied(t *testing.T) {
	_, dir := guardDir(t)
	writeFile(t, dir, "evil.yaml", manifest("evil", "busybox"))
	chmod(t, filepath.Join(dir, "evil.yaml"), 0o666)
	st := NewLoader(dir).Load()
	wantFileRefused(t, st, "evil.yaml", "writable by group or others")
	checkState(t, st, map[string]string{"web": "nginx@web.yaml"}, "evil.yaml")
}

func TestGuardFileOwnedByAnotherUser(t *testing.T) {
	_, dir := guardDir(t)
	path := filepath.Join(dir, "web.yaml")
	l := NewLoader(dir)
	checkState(t, l.Load(), map[string]string{"web": "nginx@web.yaml"})
	writeFile(t, dir, "web.yaml", manifest("web", "nginx:2"))
	chown(t, path, 1000)
	st := l.Load()
	wantFileRefused(t, st, "web.yaml", "owned by uid 1000", "chown 0 "+path)
	checkState(t, st, map[string]string{"web": "nginx@web.yaml"}, "web.yaml")
}

func TestGuardSymlinkedFile(t *testing.T) {
	_, dir := guardDir(t)
	elsewhere := filepath.Join(t.TempDir(), "drop")
	if err := os.Mkdir(elsewhere, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, elsewhere, "db.yaml", manifest("db", "postgres"))
	if err := os.Symlink(filepath.Join(elsewhere, "db.yaml"), filepath.Join(dir, "db.yaml")); err != nil {
		t.Fatal(err)
	}
	l := NewLoader(dir)
	checkState(t, l.Load(), map[string]string{"web": "nginx@web.yaml", "db": "postgres@db.yaml"})

	// The link's target is what is read: its mode counts, not the link's.
	chmod(t, filepath.Join(elsewhere, "db.yaml"), 0o666)
	wantFileRefused(t, l.Load(), "db.yaml", "writable by group or others")
	chmod(t, filepath.Join(elsewhere, "db.yaml"), 0o644)

	// And so does the directory it lives in: others could swap it there.
	chmod(t, elsewhere, 0o777)
	wantFileRefused(t, l.Load(), "db.yaml", "links to "+filepath.Join(elsewhere, "db.yaml"), "chmod go-w "+elsewhere)
}

func TestGuardSymlinkedDirectory(t *testing.T) {
	_, dir := guardDir(t)
	link := filepath.Join(t.TempDir(), "current")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	l := NewLoader(link)
	checkState(t, l.Load(), map[string]string{"web": "nginx@web.yaml"})
	// The directory the link resolves to is checked.
	chmod(t, dir, 0o777)
	wantDirRefused(t, l.Load(), link, dir, "writable by group or others")
}

func TestGuardInsecureDir(t *testing.T) {
	parent, dir := guardDir(t)
	chmod(t, parent, 0o777)
	chmod(t, dir, 0o777)
	chmod(t, filepath.Join(dir, "web.yaml"), 0o666)
	checkState(t, NewLoader(dir, InsecureDir()).Load(), map[string]string{"web": "nginx@web.yaml"})
}
