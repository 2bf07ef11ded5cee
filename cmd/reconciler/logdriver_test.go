package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"
)

func TestInstallDriver(t *testing.T) {
	for _, tc := range []struct {
		name    string
		dir     func(t *testing.T) string
		program string
		err     string // "" for success
	}{
		{"runs", func(t *testing.T) string { return t.TempDir() }, "#!/bin/sh\nexit 0\n", ""},
		{"replaces an older one", func(t *testing.T) string {
			d := t.TempDir()
			if err := os.WriteFile(filepath.Join(d, driverFile), []byte("old"), 0o755); err != nil {
				t.Fatal(err)
			}
			return d
		}, "#!/bin/sh\nexit 0\n", ""},
		{"does not run", func(t *testing.T) string { return t.TempDir() }, "#!/bin/sh\necho broken; exit 3\n", "run the log driver"},
		{"no directory", func(t *testing.T) string { return filepath.Join(t.TempDir(), "gone") }, "#!/bin/sh\nexit 0\n", "write the log driver"},
		{"directory others can write", func(t *testing.T) string {
			d := t.TempDir()
			if err := os.Chmod(d, 0o777); err != nil {
				t.Fatal(err)
			}
			return d
		}, "#!/bin/sh\nexit 0\n", "writable by others"},
		{"a temporary file left by a killed daemon", func(t *testing.T) string {
			d := t.TempDir()
			if err := os.WriteFile(filepath.Join(d, "."+driverFile+"-123"), []byte("half"), 0o600); err != nil {
				t.Fatal(err)
			}
			return d
		}, "#!/bin/sh\nexit 0\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.dir(t)
			path, err := installDriver(dir, tc.program)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("installDriver: %v, want an error with %q", err, tc.err)
				}
				if tc.name == "does not run" && !strings.Contains(err.Error(), "broken") {
					t.Errorf("the error %q does not show the driver's output", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if path != filepath.Join(dir, driverFile) {
				t.Errorf("path %s, want %s", path, filepath.Join(dir, driverFile))
			}
			b, err := os.ReadFile(path)
			if err != nil || string(b) != tc.program {
				t.Errorf("the file holds %q (%v), want the program", b, err)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Errorf("the directory holds %d entries, want only the driver (no temporary file left)", len(entries))
			}
		})
	}
}

// Without the embeddriver build tag (go test), the binary itself is the
// log driver, and nothing is written.
func TestLogDriverBinaryWithoutEmbedded(t *testing.T) {
	if embeddedDriver != "" {
		t.Skip("built with the embedded driver")
	}
	dir := t.TempDir()
	path, err := logDriverBinary(dir, func(err error, msg string) { t.Errorf("%s: %v", msg, err) })
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	exe, _ = filepath.EvalSymlinks(exe)
	if path != exe {
		t.Errorf("log driver %s, want this binary %s", path, exe)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("the state directory holds %d entries, want none", len(entries))
	}
}

// With an embedded driver (as make build gives), the daemon runs the copy
// it wrote; one that cannot run is reported and the binary itself is the
// driver instead.
func TestLogDriverBinaryEmbedded(t *testing.T) {
	defer func(orig string) { embeddedDriver = orig }(embeddedDriver)
	exe, _ := os.Executable()
	exe, _ = filepath.EvalSymlinks(exe)
	for _, tc := range []struct {
		name, program string
		fallback      bool
	}{
		{"runs", "#!/bin/sh\nexit 0\n", false},
		{"does not run", "#!/bin/sh\nexit 3\n", true},
	} {
		embeddedDriver = tc.program
		dir := t.TempDir()
		var warned error
		path, err := logDriverBinary(dir, func(err error, msg string) { warned = err })
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		want := filepath.Join(dir, driverFile)
		if tc.fallback {
			want = exe
		}
		if path != want || (warned != nil) != tc.fallback {
			t.Errorf("%s: log driver %s (warned: %v), want %s", tc.name, path, warned, want)
		}
	}
}

// readOnlyText is a constant of several pages: the linker puts it in the
// binary's read-only data, as go:embed does the driver.
const (
	usage8       = usage + usage + usage + usage + usage + usage + usage + usage
	readOnlyText = usage8 + usage8 + usage8 + usage8 + usage8 + usage8 + usage8 + usage8
)

func TestDropPages(t *testing.T) {
	page := os.Getpagesize()
	if len(readOnlyText) < 8*page {
		t.Fatalf("the constant is %d bytes, want at least eight pages", len(readOnlyText))
	}
	// Writable memory (the heap) is never touched: it would be zeroed.
	heap := strings.Repeat("x", 4*page)
	if readOnlyFileMapping(addr(heap), addr(heap)+uintptr(len(heap))) {
		t.Fatal("the heap taken for a read-only file mapping")
	}
	dropPages(heap)
	if strings.Count(heap, "x") != len(heap) {
		t.Fatal("dropPages changed memory on the heap")
	}

	// Read-only data of the binary leaves the resident memory, and reads
	// the same afterwards (the kernel maps it again from the file).
	if !readOnlyFileMapping(addr(readOnlyText), addr(readOnlyText)+uintptr(len(readOnlyText))) {
		t.Fatal("the binary's read-only data not found as a read-only file mapping")
	}
	want := strings.Clone(readOnlyText) // reads every page of it
	residentKiB(t, addr(readOnlyText))  // once first: its own code and data in memory
	before := residentKiB(t, addr(readOnlyText))
	dropPages(readOnlyText)
	after := residentKiB(t, addr(readOnlyText))
	if min := (len(readOnlyText)/page - 2) * page / 1024; before-after < min {
		t.Errorf("resident memory of the mapping %d KiB before and %d after, want at least %d less", before, after, min)
	}
	if readOnlyText != want {
		t.Fatal("the read-only data changed")
	}
}

func addr(s string) uintptr { return uintptr(unsafe.Pointer(unsafe.StringData(s))) }

// residentKiB is the resident memory of the mapping of a, from /proc/self/smaps.
func residentKiB(t *testing.T, a uintptr) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		var lo, hi uintptr
		if n, _ := fmt.Sscanf(line, "%x-%x ", &lo, &hi); n == 2 {
			in = a >= lo && a < hi
			continue
		}
		var kib int
		if n, _ := fmt.Sscanf(line, "Rss: %d kB", &kib); n == 1 && in {
			return kib
		}
	}
	t.Fatalf("no mapping holds %#x", a)
	return 0
}
