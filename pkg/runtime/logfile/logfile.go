package logfile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults for the size limit of one file and the number of files kept.
const (
	DefaultMaxSize  = 10 << 20
	DefaultMaxFiles = 5
	// MinMaxSize is the smallest size limit accepted: room for a record
	// header and some content.
	MinMaxSize = 256
	// maxLine is the longest content of one record; longer lines are split
	// into P records.
	maxLine = 16 << 10
)

const timeFormat = "2006-01-02T15:04:05.000000000Z07:00"

// Writer appends records to a container's log file and rotates it by size.
// It is safe for concurrent use (stdout and stderr share one file).
type Writer struct {
	mu       sync.Mutex
	path     string
	maxSize  int64
	maxFiles int
	f        *os.File
	size     int64

	// While writes fail (a full disk), Copy drops records, counting
	// them, and tries again every retryEvery; the first record written
	// again says how many were lost and why.
	dropped int64
	dropErr error
	retryAt time.Time
	closed  bool
}

// retryEvery is how often a Writer whose writes fail tries again.
const retryEvery = time.Second

// Path is the current log file of container id in dir.
func Path(dir, id string) string { return filepath.Join(dir, id+".log") }

// Open opens (appending) the log file of container id in dir.
func Open(dir, id string, maxSize int64, maxFiles int) (*Writer, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	if maxSize < MinMaxSize {
		return nil, fmt.Errorf("log size limit %d is below the minimum %d", maxSize, MinMaxSize)
	}
	if maxFiles < 1 {
		return nil, fmt.Errorf("log file count %d is below 1", maxFiles)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create log directory: %w", err)
	}
	w := &Writer{path: Path(dir, id), maxSize: maxSize, maxFiles: maxFiles}
	if err := w.open(); err != nil {
		return nil, err
	}
	return w, nil
}

func checkID(id string) error {
	if id == "" || strings.ContainsAny(id, "/\x00") || id == "." || id == ".." {
		return fmt.Errorf("invalid container id %q", id)
	}
	return nil
}

func (w *Writer) open() error {
	f, err := os.OpenFile(w.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open log file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("open log file: %w", err)
	}
	w.f, w.size = f, fi.Size()
	return nil
}

// recordLimit is the longest content one record may carry so that the record
// fits in a file.
func (w *Writer) recordLimit() int {
	n := int(w.maxSize) - len(timeFormat) - len(" stdout F \n") - 8
	return min(n, maxLine)
}

// WriteRecord writes one record. partial marks a piece of a longer line.
func (w *Writer) WriteRecord(ts time.Time, stream string, partial bool, content []byte) error {
	rec := record(ts, stream, partial, content)
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writeLocked(rec)
}

// writeLocked writes one whole record, rotating first if it would not fit.
// A record that could be written only in part is cut off again, so that
// the file never holds a torn record.
func (w *Writer) writeLocked(rec []byte) error {
	if w.closed {
		return errors.New("log file closed")
	}
	if w.f == nil { // a rotation failed half way
		if err := w.open(); err != nil {
			return err
		}
	}
	if w.size > 0 && w.size+int64(len(rec)) > w.maxSize {
		if err := w.rotate(); err != nil {
			return err
		}
	}
	n, err := w.f.Write(rec)
	if err != nil {
		if n > 0 {
			_ = w.f.Truncate(w.size)
		}
		return err
	}
	w.size += int64(n)
	return nil
}

// writeOrDrop writes a record as Copy does: when the file cannot be
// written (a full disk, a failed rotation) the record is dropped and
// counted instead, and the writer tries again no sooner than retryEvery
// later, reopening the file. The first record written after a loss is
// preceded by a stderr record saying how many were dropped and why. It
// fails only once the writer is closed.
func (w *Writer) writeOrDrop(ts time.Time, stream string, partial bool, content []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errors.New("log file closed")
	}
	if w.dropped > 0 {
		if ts.Before(w.retryAt) {
			w.dropped++
			return nil
		}
		if w.f != nil {
			_ = w.f.Close()
			w.f = nil
		}
		note := fmt.Sprintf("[reconciler log driver: %d records dropped: %v]", w.dropped, w.dropErr)
		if err := w.writeLocked(record(ts, "stderr", false, []byte(note))); err != nil {
			w.drop(ts, err)
			return nil
		}
		w.dropped, w.dropErr = 0, nil
	}
	if err := w.writeLocked(record(ts, stream, partial, content)); err != nil {
		w.drop(ts, err)
	}
	return nil
}

func (w *Writer) drop(ts time.Time, err error) {
	w.dropped++
	w.dropErr = err
	w.retryAt = ts.Add(retryEvery)
}

// record formats one record.
func record(ts time.Time, stream string, partial bool, content []byte) []byte {
	tag := "F"
	if partial {
		tag = "P"
	}
	var b bytes.Buffer
	b.Grow(len(content) + 48)
	b.WriteString(ts.UTC().Format(timeFormat))
	b.WriteByte(' ')
	b.WriteString(stream)
	b.WriteByte(' ')
	b.WriteString(tag)
	b.WriteByte(' ')
	b.Write(content)
	b.WriteByte('\n')
	return b.Bytes()
}

// rotate shifts ID.log.N to ID.log.N+1 (dropping the oldest) and starts a
// new ID.log.
func (w *Writer) rotate() error {
	if err := w.f.Close(); err != nil {
		return err
	}
	w.f = nil
	if w.maxFiles == 1 {
		if err := os.Remove(w.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return w.open()
	}
	_ = os.Remove(fmt.Sprintf("%s.%d", w.path, w.maxFiles-1))
	for i := w.maxFiles - 2; i >= 1; i-- {
		err := os.Rename(fmt.Sprintf("%s.%d", w.path, i), fmt.Sprintf("%s.%d", w.path, i+1))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if err := os.Rename(w.path, w.path+".1"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return w.open()
}

// Close closes the file.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

// Copy reads r until EOF and writes every line as a record of stream. It
// never stops reading because the file cannot be written: a task whose
// output is not read blocks, or dies of SIGPIPE once the driver is gone.
// Records that cannot be written (a full disk) are dropped and counted
// until writing works again (see writeOrDrop). A line
// longer than the record limit is written as P records and a final F record;
// content after the last newline is written as an F record at EOF.
func (w *Writer) Copy(stream string, r io.Reader, now func() time.Time) error {
	br := bufio.NewReaderSize(r, w.recordLimit())
	for {
		line, err := br.ReadSlice('\n')
		switch {
		case err == nil:
			if werr := w.writeOrDrop(now(), stream, false, line[:len(line)-1]); werr != nil {
				return werr
			}
		case errors.Is(err, bufio.ErrBufferFull):
			if werr := w.writeOrDrop(now(), stream, true, line); werr != nil {
				return werr
			}
		case errors.Is(err, io.EOF):
			if len(line) > 0 {
				return w.writeOrDrop(now(), stream, false, line)
			}
			return nil
		default:
			if len(line) > 0 {
				_ = w.writeOrDrop(now(), stream, false, line)
			}
			return err
		}
	}
}

// Record is one parsed log record.
type Record struct {
	Time    time.Time
	Stream  string
	Partial bool
	Content []byte
}

// ParseRecord parses one line of a log file (without its newline).
func ParseRecord(line []byte) (Record, error) {
	parts := bytes.SplitN(line, []byte(" "), 4)
	if len(parts) < 3 {
		return Record{}, fmt.Errorf("malformed log record %q", truncate(line))
	}
	ts, err := time.Parse(time.RFC3339Nano, string(parts[0]))
	if err != nil {
		return Record{}, fmt.Errorf("malformed log record time %q", truncate(parts[0]))
	}
	r := Record{Time: ts, Stream: string(parts[1])}
	switch string(parts[2]) {
	case "F":
	case "P":
		r.Partial = true
	default:
		return Record{}, fmt.Errorf("malformed log record tag %q", truncate(parts[2]))
	}
	if len(parts) == 4 {
		r.Content = parts[3]
	}
	return r, nil
}

func truncate(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}

// Files returns the existing log files of container id in dir, oldest first.
func Files(dir, id string) ([]string, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	base := Path(dir, id)
	matches, err := filepath.Glob(globEscape(base) + ".*")
	if err != nil {
		return nil, err
	}
	type rotated struct {
		path string
		n    int
	}
	var rs []rotated
	for _, m := range matches {
		n, err := strconv.Atoi(strings.TrimPrefix(m, base+"."))
		if err != nil || n < 1 {
			continue
		}
		rs = append(rs, rotated{m, n})
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].n > rs[j].n })
	out := make([]string, 0, len(rs)+1)
	for _, r := range rs {
		out = append(out, r.path)
	}
	if _, err := os.Stat(base); err == nil {
		out = append(out, base)
	}
	return out, nil
}

func globEscape(s string) string {
	r := strings.NewReplacer(`*`, `\*`, `?`, `\?`, `[`, `\[`, `\`, `\\`)
	return r.Replace(s)
}

// Remove deletes every log file of container id in dir. Missing files are
// not an error.
func Remove(dir, id string) error {
	files, err := Files(dir, id)
	if err != nil {
		return err
	}
	var errs []error
	for _, f := range files {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ContainerForTask returns the ID of the container of task whose log file
// was written last ("" if none). Container IDs are TASK-HASH with a
// lower-case hex hash.
func ContainerForTask(dir, task string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(task) + `-[0-9a-f]{6,64}\.log$`)
	var best string
	var bestTime time.Time
	for _, e := range entries {
		if !re.MatchString(e.Name()) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		if best == "" || fi.ModTime().After(bestTime) {
			best, bestTime = strings.TrimSuffix(e.Name(), ".log"), fi.ModTime()
		}
	}
	return best, nil
}
