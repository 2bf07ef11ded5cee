package source

import (
	"fmt"
	"os"
	"sync/atomic"

	"github.com/go-git/go-billy/v5"
)

// errTooLarge is returned by a write past the size limit of a fetch.
type errTooLarge struct{ limit int64 }

func (e errTooLarge) Error() string {
	return fmt.Sprintf("the fetch is larger than the size limit of %d bytes (--git-max-size)", e.limit)
}

// limitFS is a billy.Filesystem whose files together accept at most limit
// bytes of writes: the fetch's storage is on it, so that a repository too
// large for the node fails the fetch as it is received, whatever the
// transport, instead of filling the disk.
type limitFS struct {
	billy.Filesystem
	limit   int64
	written *atomic.Int64
}

func newLimitFS(fs billy.Filesystem, limit int64) *limitFS {
	return &limitFS{Filesystem: fs, limit: limit, written: new(atomic.Int64)}
}

func (l *limitFS) wrap(f billy.File, err error) (billy.File, error) {
	if err != nil {
		return nil, err
	}
	return &limitFile{File: f, fs: l}, nil
}

func (l *limitFS) Create(name string) (billy.File, error) { return l.wrap(l.Filesystem.Create(name)) }

func (l *limitFS) OpenFile(name string, flag int, perm os.FileMode) (billy.File, error) {
	return l.wrap(l.Filesystem.OpenFile(name, flag, perm))
}

func (l *limitFS) TempFile(dir, prefix string) (billy.File, error) {
	return l.wrap(l.Filesystem.TempFile(dir, prefix))
}

func (l *limitFS) Chroot(path string) (billy.Filesystem, error) {
	fs, err := l.Filesystem.Chroot(path)
	if err != nil {
		return nil, err
	}
	return &limitFS{Filesystem: fs, limit: l.limit, written: l.written}, nil
}

type limitFile struct {
	billy.File
	fs *limitFS
}

func (f *limitFile) Write(p []byte) (int, error) {
	if f.fs.written.Add(int64(len(p))) > f.fs.limit {
		return 0, errTooLarge{f.fs.limit}
	}
	return f.File.Write(p)
}
