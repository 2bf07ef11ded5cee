package logfile

import (
	"bytes"
	"context"
	"fmt"
	"os"
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
