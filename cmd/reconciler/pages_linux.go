package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// dropPages takes the whole pages of s out of the process's resident
// memory: the kernel maps them again from the binary if s is read later.
// It does nothing unless s lies in a read-only mapping of a file (the
// binary's read-only data, where go:embed puts it), where that is safe; on
// anything writable it would zero the memory.
func dropPages(s string) {
	if len(s) == 0 {
		return
	}
	start := uintptr(unsafe.Pointer(unsafe.StringData(s)))
	end := start + uintptr(len(s))
	if !readOnlyFileMapping(start, end) {
		return
	}
	page := uintptr(os.Getpagesize())
	first := (start + page - 1) &^ (page - 1)
	last := end &^ (page - 1)
	if last <= first {
		return
	}
	b := unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(unsafe.StringData(s)), first-start)), last-first)
	_ = unix.Madvise(b, unix.MADV_DONTNEED)
}

// readOnlyFileMapping reports whether [start, end) lies in one mapping of
// the process that is backed by a file and cannot be written.
func readOnlyFileMapping(start, end uintptr) bool {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "55d0c0a00000-55d0c0b00000 r--p 00000000 fd:01 1234 /path"
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 {
			continue
		}
		var lo, hi uintptr
		if _, err := fmt.Sscanf(fields[0], "%x-%x", &lo, &hi); err != nil {
			continue
		}
		if start >= lo && end <= hi {
			return !strings.Contains(fields[1], "w") && strings.HasPrefix(fields[5], "/")
		}
	}
	return false
}
