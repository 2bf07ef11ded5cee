package logfile

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)

func fixedNow() time.Time { return t0 }

func TestRecordRoundTrip(t *testing.T) {
	dir := t.TempDir()
	w, err := Open(dir, "web-abc123abc123", 1<<20, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Copy("stdout", strings.NewReader("one\ntwo\nno newline"), fixedNow); err != nil {
		t.Fatal(err)
	}
	if err := w.Copy("stderr", strings.NewReader("err line\n"), fixedNow); err != nil {
		t.Fatal(err)
	}
	w.Close()
	b, _ := os.ReadFile(Path(dir, "web-abc123abc123"))
	want := "2025-01-02T03:04:05.000000006Z stdout F one\n" +
		"2025-01-02T03:04:05.000000006Z stdout F two\n" +
		"2025-01-02T03:04:05.000000006Z stdout F no newline\n" +
		"2025-01-02T03:04:05.000000006Z stderr F err line\n"
	if string(b) != want {
		t.Errorf("file:\n%s\nwant:\n%s", b, want)
	}
	var out bytes.Buffer
	if err := Read(dir, "web-abc123abc123", -1, &out); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "one\ntwo\nno newline\nerr line\n" {
		t.Errorf("Read = %q", got)
	}
	out.Reset()
	if err := Read(dir, "web-abc123abc123", 2, &out); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "no newline\nerr line\n" {
		t.Errorf("Read tail 2 = %q", got)
	}
	out.Reset()
	if err := Read(dir, "web-abc123abc123", 0, &out); err != nil || out.Len() != 0 {
		t.Errorf("Read tail 0 = %q, %v", out.String(), err)
	}
}

func TestLongLinesSplitAndJoined(t *testing.T) {
	dir := t.TempDir()
	w, err := Open(dir, "c", 1024, 50)
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("abcdefghij", 300) // 3000 bytes > record limit
	if err := w.Copy("stdout", strings.NewReader(long+"\nshort\n"), fixedNow); err != nil {
		t.Fatal(err)
	}
	w.Close()
	files, _ := Files(dir, "c")
	for _, f := range files {
		fi, _ := os.Stat(f)
		if fi.Size() > 1024 {
			t.Errorf("%s is %d bytes, over the 1024 limit", f, fi.Size())
		}
	}
	var out bytes.Buffer
	if err := Read(dir, "c", -1, &out); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != long+"\nshort\n" {
		t.Errorf("Read joined %d bytes, want %d", len(got), len(long)+7)
	}
}

func TestRotationKeepsBound(t *testing.T) {
	for _, maxFiles := range []int{1, 2, 3} {
		t.Run(fmt.Sprint(maxFiles), func(t *testing.T) {
			dir := t.TempDir()
			w, err := Open(dir, "c", 512, maxFiles)
			if err != nil {
				t.Fatal(err)
			}
			var in strings.Builder
			for i := range 200 {
				fmt.Fprintf(&in, "line %03d\n", i)
			}
			if err := w.Copy("stdout", strings.NewReader(in.String()), fixedNow); err != nil {
				t.Fatal(err)
			}
			w.Close()
			files, err := Files(dir, "c")
			if err != nil {
				t.Fatal(err)
			}
			if len(files) != maxFiles {
				t.Errorf("%d files %v, want %d", len(files), files, maxFiles)
			}
			all, _ := filepath.Glob(filepath.Join(dir, "*"))
			if len(all) != maxFiles {
				t.Errorf("directory holds %v, want %d files", all, maxFiles)
			}
			for _, f := range files {
				if fi, _ := os.Stat(f); fi.Size() > 512 {
					t.Errorf("%s: %d bytes > 512", f, fi.Size())
				}
			}
			var out bytes.Buffer
			if err := Read(dir, "c", -1, &out); err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if lines[len(lines)-1] != "line 199" {
				t.Errorf("last line %q, want line 199", lines[len(lines)-1])
			}
			// Oldest first and contiguous: rotation loses whole files only.
			var first int
			fmt.Sscanf(lines[0], "line %d", &first)
			for i, l := range lines {
				if l != fmt.Sprintf("line %03d", first+i) {
					t.Fatalf("line %d = %q, want line %03d", i, l, first+i)
				}
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		id       string
		size     int64
		files    int
		contains string
	}{
		{"../x", 1024, 1, "invalid container id"},
		{"", 1024, 1, "invalid container id"},
		{"c", 10, 1, "below the minimum"},
		{"c", 1024, 0, "below 1"},
	} {
		if _, err := Open(dir, tc.id, tc.size, tc.files); err == nil || !strings.Contains(err.Error(), tc.contains) {
			t.Errorf("Open(%q, %d, %d) = %v, want %q", tc.id, tc.size, tc.files, err, tc.contains)
		}
	}
	if _, err := Files(dir, "a/b"); err == nil {
		t.Error("Files accepted an id with a slash")
	}
}

func TestParseRecordErrors(t *testing.T) {
	for _, in := range []string{"", "garbage", "notatime stdout F x", "2025-01-02T03:04:05Z stdout X x"} {
		if _, err := ParseRecord([]byte(in)); err == nil {
			t.Errorf("ParseRecord(%q) accepted", in)
		}
	}
	r, err := ParseRecord([]byte("2025-01-02T03:04:05Z stderr P"))
	if err != nil || !r.Partial || r.Stream != "stderr" || len(r.Content) != 0 {
		t.Errorf("ParseRecord(empty partial) = %+v, %v", r, err)
	}
}

func TestContainerForTaskAndRemove(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, age time.Duration) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		mt := time.Now().Add(-age)
		os.Chtimes(p, mt, mt)
	}
	write("web-aaaaaaaaaaaa.log", time.Hour)
	write("web-bbbbbbbbbbbb.log", time.Minute)
	write("web-bbbbbbbbbbbb.log.1", time.Minute)
	write("web-api-cccccccccccc.log", 0) // another task
	id, err := ContainerForTask(dir, "web")
	if err != nil || id != "web-bbbbbbbbbbbb" {
		t.Errorf("ContainerForTask(web) = %q, %v", id, err)
	}
	if id, _ := ContainerForTask(dir, "db"); id != "" {
		t.Errorf("ContainerForTask(db) = %q, want none", id)
	}
	if err := Remove(dir, "web-bbbbbbbbbbbb"); err != nil {
		t.Fatal(err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "web-bbbbbbbbbbbb*"))
	if len(left) != 0 {
		t.Errorf("Remove left %v", left)
	}
	if err := Remove(dir, "web-bbbbbbbbbbbb"); err != nil {
		t.Errorf("Remove of nothing = %v", err)
	}
}

// syncBuffer is a bytes.Buffer safe for the follower's goroutine.
type syncBuffer struct {
	mu chan struct{}
	b  bytes.Buffer
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{mu: make(chan struct{}, 1)} }

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	return s.b.String()
}

func TestFollowAcrossRotationAndReplacement(t *testing.T) {
	dir := t.TempDir()
	w, err := Open(dir, "web-aaaaaaaaaaaa", 300, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.WriteRecord(t0, "stdout", false, []byte("before"))
	out := newSyncBuffer()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- Follow(ctx, dir, "web", "web-aaaaaaaaaaaa", -1, out, 10*time.Millisecond) }()
	waitFor := func(s string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(out.String(), s) {
			if time.Now().After(deadline) {
				t.Fatalf("follower never printed %q; got:\n%s", s, out.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor("before\n")
	for i := range 20 { // several rotations of a 300-byte file
		w.WriteRecord(t0, "stdout", false, fmt.Appendf(nil, "after %02d", i))
		time.Sleep(15 * time.Millisecond)
	}
	waitFor("after 19\n")
	// A replaced container: a newer file of the same task.
	time.Sleep(20 * time.Millisecond)
	w2, err := Open(dir, "web-bbbbbbbbbbbb", 1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	w2.WriteRecord(t0, "stdout", false, []byte("new container"))
	waitFor("new container\n")
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Follow = %v", err)
	}
	got := out.String()
	for i := range 20 {
		if !strings.Contains(got, fmt.Sprintf("after %02d\n", i)) {
			t.Errorf("follower lost line %02d (rotation):\n%s", i, got)
		}
	}
}

// TestCopyDropsWhileFullThenRecovers: while the log file cannot be written
// (a full disk, here /dev/full) Copy goes on reading, so that the task is
// never blocked or killed by SIGPIPE; the records are dropped and counted,
// and once writing works again a note says how many were lost and why.
func TestCopyDropsWhileFullThenRecovers(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	dir := t.TempDir()
	const id = "web-abc123abc123"
	path := Path(dir, id)
	if err := os.Symlink("/dev/full", path); err != nil {
		t.Fatal(err)
	}
	w, err := Open(dir, id, 1<<20, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	clock := t0
	now := func() time.Time { clock = clock.Add(100 * time.Millisecond); return clock }
	r := strings.NewReader("a\nb\nc\nd\ne\n")
	if err := w.Copy("stdout", r, now); err != nil {
		t.Fatalf("Copy with the disk full = %v, want nil (keep reading)", err)
	}
	if r.Len() != 0 {
		t.Errorf("Copy left %d bytes unread", r.Len())
	}

	// Space again. Within a second of the last failure records are still
	// dropped; after it, the note, then the record.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := w.Copy("stdout", strings.NewReader("f\n"), now); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(time.Second)
	if err := w.Copy("stdout", strings.NewReader("g\n"), now); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], " stderr F [reconciler log driver: 6 records dropped: write ") ||
		!strings.Contains(lines[0], "no space left on device]") || !strings.HasSuffix(lines[1], " stdout F g") {
		t.Errorf("file after recovery:\n%s\nwant the drop note and then g", b)
	}

	// Closed: Copy stops.
	w.Close()
	if err := w.Copy("stdout", strings.NewReader("h\n"), now); err == nil {
		t.Error("Copy after Close = nil, want an error")
	}
}

// TestWriteRecordNeverTorn: a record that fits only in part is cut off
// again, so that the next record starts a line.
func TestWriteRecordNeverTorn(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("mount a tmpfs: %v: %s", err, out)
	}
	defer exec.Command("umount", dir).Run()
	w, err := Open(dir, "web-abc123abc123", 1<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	line := []byte(strings.Repeat("x", 3000))
	var failed bool
	for range 5 {
		if err := w.WriteRecord(t0, "stdout", false, line); err != nil {
			failed = true
		}
	}
	if !failed {
		t.Fatal("no write failed on an 8k tmpfs")
	}
	b, _ := os.ReadFile(Path(dir, "web-abc123abc123"))
	if n := len(record(t0, "stdout", false, line)); len(b)%n != 0 || !strings.HasSuffix(string(b), "x\n") {
		t.Errorf("file of %d bytes does not end with a whole record", len(b))
	}
}
