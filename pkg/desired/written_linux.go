package desired

import (
	"os"

	"golang.org/x/sys/unix"
)

// notBeingWritten reports whether the regular file at path is open for
// writing by no process at all, which the kernel knows: a read lease
// (fcntl F_SETLEASE) can only be taken on a file that nobody has open for
// writing. A file renamed into place, copied and closed, or saved and
// closed by an editor is complete; a file that a writer still holds may
// be half written. The lease is given back at once (a writer that opens
// the file meanwhile waits for those microseconds). Any error, a
// filesystem without leases (NFS, FUSE) or a caller without the right to
// lease (neither the file's owner nor CAP_LEASE), reports false: the
// watcher then waits for the directory to be quiet as it would anyway.
func notBeingWritten(path string) bool {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	fd := int(f.Fd())
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETLEASE, unix.F_RDLCK); err != nil {
		return false
	}
	_, _ = unix.FcntlInt(uintptr(fd), unix.F_SETLEASE, unix.F_UNLCK)
	return true
}
