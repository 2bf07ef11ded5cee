package logfile

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"syscall"
	"time"
)

// lineSink assembles records into lines (joining P records) and hands each
// complete line to emit.
type lineSink struct {
	partial []byte
	emit    func(line []byte) error
}

func (s *lineSink) record(raw []byte) error {
	r, err := ParseRecord(raw)
	if err != nil {
		return nil // a torn or foreign line: skip it, keep reading
	}
	if r.Partial {
		s.partial = append(s.partial, r.Content...)
		return nil
	}
	line := r.Content
	if len(s.partial) > 0 {
		line = append(s.partial, r.Content...)
		s.partial = nil
	}
	return s.emit(line)
}

// fileReader reads records from one open file, keeping an incomplete last
// record until the rest of it is written.
type fileReader struct {
	f       *os.File
	pending []byte
}

func (fr *fileReader) drain(s *lineSink) error {
	buf := make([]byte, 64<<10)
	for {
		n, err := fr.f.Read(buf)
		if n > 0 {
			fr.pending = append(fr.pending, buf[:n]...)
			for {
				i := bytes.IndexByte(fr.pending, '\n')
				if i < 0 {
					break
				}
				if serr := s.record(fr.pending[:i]); serr != nil {
					return serr
				}
				fr.pending = fr.pending[i+1:]
			}
		}
		if errors.Is(err, io.EOF) || (n == 0 && err == nil) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// ring keeps the last n lines (all lines when n < 0).
type ring struct {
	n     int
	lines [][]byte
}

func (r *ring) add(line []byte) error {
	if r.n == 0 {
		return nil
	}
	r.lines = append(r.lines, append([]byte(nil), line...))
	if r.n > 0 && len(r.lines) > r.n {
		r.lines = r.lines[len(r.lines)-r.n:]
	}
	return nil
}

// Read writes the lines of container id's log files in dir to w, oldest
// first; with tail >= 0 only the last tail lines.
func Read(dir, id string, tail int, w io.Writer) error {
	_, err := read(dir, id, tail, w)
	if err != nil {
		return err
	}
	return nil
}

// read is Read that also returns the current file, open and read to its end
// (nil if there is none), for Follow to go on from.
func read(dir, id string, tail int, w io.Writer) (*fileReader, error) {
	files, err := Files(dir, id)
	if err != nil {
		return nil, err
	}
	rg := &ring{n: tail}
	sink := &lineSink{emit: rg.add}
	var cur *fileReader
	for _, p := range files {
		f, err := os.Open(p)
		if errors.Is(err, os.ErrNotExist) {
			continue // rotated away meanwhile
		}
		if err != nil {
			return nil, err
		}
		fr := &fileReader{f: f}
		if err := fr.drain(sink); err != nil {
			f.Close()
			return nil, err
		}
		if p == Path(dir, id) {
			cur = fr
		} else {
			f.Close()
		}
	}
	bw := bufio.NewWriter(w)
	for _, l := range rg.lines {
		bw.Write(l)
		bw.WriteByte('\n')
	}
	if err := bw.Flush(); err != nil {
		if cur != nil {
			cur.f.Close()
		}
		return nil, err
	}
	return cur, nil
}

// Follow is Read followed by waiting for more: it writes new lines as they
// are written, across rotations, and switches to a newer container of task
// when one starts logging (a replaced container). It returns when ctx is done.
func Follow(ctx context.Context, dir, task, id string, tail int, w io.Writer, poll time.Duration) error {
	cur, err := read(dir, id, tail, w)
	if err != nil {
		return err
	}
	defer func() {
		if cur != nil {
			cur.f.Close()
		}
	}()
	sink := &lineSink{emit: func(line []byte) error {
		if _, err := w.Write(append(line, '\n')); err != nil {
			return err
		}
		return nil
	}}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		if cur != nil {
			if err := cur.drain(sink); err != nil {
				return err
			}
			if !sameFile(cur.f, Path(dir, id)) {
				// Rotated (or removed): finish the old file, go on with the new one.
				if err := cur.drain(sink); err != nil {
					return err
				}
				cur.f.Close()
				cur = nil
			}
		}
		if task != "" {
			if newest, err := ContainerForTask(dir, task); err == nil && newest != "" && newest != id {
				if cur != nil {
					_ = cur.drain(sink)
					cur.f.Close()
					cur = nil
				}
				id = newest
			}
		}
		if cur == nil {
			if f, err := os.Open(Path(dir, id)); err == nil {
				cur = &fileReader{f: f}
				continue
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func sameFile(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	if err != nil {
		return false
	}
	sa, ok1 := a.Sys().(*syscall.Stat_t)
	sb, ok2 := b.Sys().(*syscall.Stat_t)
	if !ok1 || !ok2 {
		return os.SameFile(a, b)
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino
}
