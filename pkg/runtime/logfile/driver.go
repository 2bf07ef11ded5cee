package logfile

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// DriverMarker is the first flag of a log-driver invocation by a containerd
// shim. The shim passes the query of the binary:// URI as "key value"
// arguments in random order, so the reconciler recognises the mode by this
// marker anywhere among its arguments rather than by a subcommand name.
const DriverMarker = "--reconciler-log-driver"

// DriverArgs are the arguments (the binary:// URI's query) that make the
// reconciler binary run as the log driver writing to dir.
func DriverArgs(dir string, maxSize int64, maxFiles int) map[string]string {
	return map[string]string{
		DriverMarker:  "v1",
		"--dir":       dir,
		"--max-size":  strconv.FormatInt(maxSize, 10),
		"--max-files": strconv.Itoa(maxFiles),
	}
}

// drainAfterTerm is how long the driver keeps reading after the shim's
// SIGTERM: the shim closes its ends of the pipes first, so the rest of the
// output is already there.
const drainAfterTerm = 2 * time.Second

// RunDriver is the shim log driver, following containerd's binary logging
// protocol (core/runtime/v2/logging): the container's stdout is fd 3, its
// stderr fd 4, and closing fd 5 tells the shim the driver is ready; the
// container's ID is in $CONTAINER_ID. It returns when both streams end, or
// shortly after SIGTERM.
func RunDriver(dir string, maxSize int64, maxFiles int) error {
	id := os.Getenv("CONTAINER_ID")
	if id == "" {
		return errors.New("log driver: CONTAINER_ID is not set (this mode is started by the containerd shim)")
	}
	stdout, stderr, ready := os.NewFile(3, "stdout"), os.NewFile(4, "stderr"), os.NewFile(5, "ready")
	if stdout == nil || stderr == nil || ready == nil {
		return errors.New("log driver: file descriptors 3, 4 and 5 are not open (this mode is started by the containerd shim)")
	}
	w, err := Open(dir, id, maxSize, maxFiles)
	if err != nil {
		ready.Close()
		return fmt.Errorf("log driver: %w", err)
	}
	defer w.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		select {
		case <-term:
			time.Sleep(drainAfterTerm)
			cancel()
		case <-ctx.Done():
		}
	}()

	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, s := range []struct {
		name string
		f    *os.File
	}{{"stdout", stdout}, {"stderr", stderr}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = w.Copy(s.name, s.f, time.Now)
		}()
	}
	if err := ready.Close(); err != nil {
		return fmt.Errorf("log driver: signal ready: %w", err)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return errors.Join(errs...)
	case <-ctx.Done():
		return nil
	}
}
