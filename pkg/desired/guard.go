package desired

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// The drop-directory guard. The manifests directory is as powerful as root
// on the node: whoever can write a file there chooses what runs, with which
// mounts and privileges. So before anything in it is applied, the loader
// checks that only root or the reconciler's own user can change it:
//
//   - the directory (after symlinks are resolved) and each of its parents
//     is owned by root or by the reconciler's user, and is not writable by
//     group or others; a parent that is writable by others but has the
//     sticky bit (/tmp) is accepted, as others cannot rename or remove what
//     they do not own in it;
//   - each manifest file (the file a symlink points to) is owned by root or
//     by the reconciler's user and is not writable by group or others; a
//     symlinked file's own directory is checked like the manifests
//     directory.
//
// A directory that fails is reported in [State.Err]: nothing is deleted and
// nothing new is applied, every task keeps running as it is. A file that
// fails is reported in [State.Broken]: its tasks keep their last valid spec,
// as for any broken file. Every message names the path, its mode or owner,
// and the command that fixes it. [InsecureDir] turns the guard off for
// development (the daemon's --insecure-manifests-dir).

// InsecureDirFlag is the daemon flag that turns the guard off; messages
// name it.
const InsecureDirFlag = "--insecure-manifests-dir"

// guard checks who can write what the loader is about to read.
type guard struct {
	uid  int             // the reconciler's own user, besides root
	dir  string          // the manifests directory, symlinks resolved (set by checkDir)
	seen map[string]bool // directories already found safe in this load
}

func newGuard(uid int) *guard { return &guard{uid: uid, seen: map[string]bool{}} }

// checkDir checks the manifests directory dir and every parent of it, after
// symlinks are resolved. name is the directory as the user gave it, for
// messages.
func (g *guard) checkDir(name, dir string) error {
	g.dir = filepath.Clean(dir)
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		g.dir = real
	}
	if err := g.dirChain(g.dir); err != nil {
		return fmt.Errorf("manifests directory %s: refusing to apply any manifest, every task is kept as it is: %w", name, err)
	}
	return nil
}

// dirChain checks dir and its parents up to the root.
func (g *guard) dirChain(dir string) error {
	var child os.FileInfo
	for p := filepath.Clean(dir); ; p = filepath.Dir(p) {
		if g.seen[p] {
			return nil
		}
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("check %s: %w", p, err)
		}
		if err := g.dirOK(p, fi, child); err != nil {
			return err
		}
		g.seen[p] = true
		if filepath.Dir(p) == p {
			return nil
		}
		child = fi
	}
}

// dirOK checks one directory of the chain. child is the entry below it in
// the chain (nil for the manifests directory itself).
func (g *guard) dirOK(path string, fi os.FileInfo, child os.FileInfo) error {
	if uid, ok := owner(fi); ok && !g.trusted(uid) {
		return fmt.Errorf("%s is owned by uid %d, not by root or the reconciler's user (uid %d): run chown %d %s (or start with %s, for development only)",
			path, uid, g.uid, g.uid, path, InsecureDirFlag)
	}
	if fi.Mode().Perm()&0o022 == 0 {
		return nil
	}
	if child != nil && fi.Mode()&fs.ModeSticky != 0 && fi.Mode().Perm()&0o002 != 0 {
		// /tmp: others may add entries but not rename or remove ours,
		// provided ours is owned by a trusted user (checked one step down).
		if uid, ok := owner(child); ok && g.trusted(uid) {
			return nil
		}
	}
	return fmt.Errorf("%s is writable by group or others (mode %s): run chmod go-w %s (or start with %s, for development only)",
		path, fi.Mode(), path, InsecureDirFlag)
}

// checkFile checks one manifest file of the directory checkDir checked:
// path is its path, name its base name.
func (g *guard) checkFile(path, name string, link bool) error {
	fi, err := os.Stat(path)
	if err != nil {
		return nil // readFile reports it
	}
	if uid, ok := owner(fi); ok && !g.trusted(uid) {
		return &Error{File: name, Msg: fmt.Sprintf("refused: the file is owned by uid %d, not by root or the reconciler's user (uid %d); its tasks keep their last valid spec: run chown %d %s (or start with %s, for development only)",
			uid, g.uid, g.uid, path, InsecureDirFlag)}
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return &Error{File: name, Msg: fmt.Sprintf("refused: the file is writable by group or others (mode %s); its tasks keep their last valid spec: run chmod go-w %s (or start with %s, for development only)",
			fi.Mode(), path, InsecureDirFlag)}
	}
	if !link {
		// Not a symlink when the directory was listed: it is in the
		// directory (resolved already), whose guard passed; swapping it
		// for a link since takes a write to that directory.
		return nil
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil // readFile reports it
	}
	if d := filepath.Dir(real); d != g.dir {
		// A symlink into another directory: whoever can write there can
		// swap the file.
		if err := g.dirChain(d); err != nil {
			return &Error{File: name, Msg: fmt.Sprintf("refused: the file links to %s: %v", real, err)}
		}
	}
	return nil
}

func (g *guard) trusted(uid int) bool { return uid == 0 || uid == g.uid }

// owner is the owning uid of fi, when the platform says.
func owner(fi os.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}
