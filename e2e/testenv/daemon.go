package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Lines the daemon logs that the suites wait for.
const (
	// InitialSync is logged once the first full sync is done.
	InitialSync = "initial sync done"
	// Resynced is logged, by a daemon run with -v 1, each time a resync
	// has listed the node.
	Resynced = "resync listed the node"
)

// Run is the command line of `reconciler run`. Empty fields are left out
// (the daemon's defaults apply).
type Run struct {
	Address    string        // --address: the containerd socket
	Containerd string        // --containerd: "external" for a containerd the caller started
	RuncRoot   string        // --runc-root
	Namespace  string        // --namespace
	Manifests  string        // --manifests
	Images     string        // --images
	StateDir   string        // --state-dir
	Resync     time.Duration // --resync
	Flags      []string      // more flags, last
}

// Args is the command line after the program's name.
func (r Run) Args() []string {
	args := []string{"run"}
	for _, f := range []struct{ flag, value string }{
		{"--address", r.Address}, {"--containerd", r.Containerd}, {"--runc-root", r.RuncRoot},
		{"--namespace", r.Namespace}, {"--manifests", r.Manifests}, {"--images", r.Images},
		{"--state-dir", r.StateDir},
	} {
		if f.value != "" {
			args = append(args, f.flag, f.value)
		}
	}
	if r.Resync != 0 {
		args = append(args, "--resync", r.Resync.String())
	}
	return append(args, r.Flags...)
}

// Options are how Start runs the daemon.
type Options struct {
	Env []string // added to its environment
	// Lines, if set, is called with each line the daemon writes (stdout
	// and stderr, without the newline), in order, from one goroutine.
	Lines func(line string)
	// Grace is how long Stop waits after SIGTERM before it sends SIGKILL
	// (30 s if 0).
	Grace time.Duration
}

// Daemon is a running reconciler process (usually `reconciler run`): its
// output kept and waited on, stopped or killed. Its methods return errors:
// see TestDaemon for the form whose waits fail a test.
type Daemon struct {
	cmd   *exec.Cmd
	lines func(string)
	grace time.Duration
	done  chan struct{} // closed once the process has exited and its output is read

	mu      sync.Mutex
	out     bytes.Buffer
	partial []byte        // the end of the output after its last newline, for lines
	grew    chan struct{} // closed, and replaced, at each write of output
}

// Start starts bin with args and returns at once (see AwaitLog and
// InitialSync to wait for its first sync).
func Start(bin string, args []string, o Options) (*Daemon, error) {
	d := &Daemon{cmd: exec.Command(bin, args...), lines: o.Lines, grace: o.Grace,
		done: make(chan struct{}), grew: make(chan struct{})}
	if d.grace == 0 {
		d.grace = 30 * time.Second
	}
	if len(o.Env) > 0 {
		d.cmd.Env = append(os.Environ(), o.Env...)
	}
	// One writer for both streams: one pipe, the lines keep their order.
	w := &output{d}
	d.cmd.Stdout, d.cmd.Stderr = w, w
	// A process it started that outlives it (and holds the pipe) delays
	// Wait by this much at most.
	d.cmd.WaitDelay = 2 * time.Second
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start reconciler: %w", err)
	}
	go func() {
		_ = d.cmd.Wait()
		d.mu.Lock()
		if len(d.partial) > 0 && d.lines != nil {
			d.lines(string(d.partial))
		}
		d.mu.Unlock()
		close(d.done)
	}()
	return d, nil
}

// output is where the daemon writes.
type output struct{ d *Daemon }

func (o *output) Write(p []byte) (int, error) {
	d := o.d
	d.mu.Lock()
	defer d.mu.Unlock()
	d.out.Write(p)
	if d.lines != nil {
		d.partial = append(d.partial, p...)
		for {
			i := bytes.IndexByte(d.partial, '\n')
			if i < 0 {
				break
			}
			d.lines(string(d.partial[:i]))
			d.partial = d.partial[i+1:]
		}
	}
	close(d.grew)
	d.grew = make(chan struct{})
	return len(p), nil
}

// Args is the command line, the program first.
func (d *Daemon) Args() []string { return d.cmd.Args }

// Pid is the process's ID.
func (d *Daemon) Pid() int { return d.cmd.Process.Pid }

// Output is everything the daemon has written so far, stdout and stderr.
func (d *Daemon) Output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.String()
}

// Tail is the last n lines of Output (all of it if n <= 0).
func (d *Daemon) Tail(n int) string {
	s := d.Output()
	if n <= 0 {
		return s
	}
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Alive reports whether the process is still running.
func (d *Daemon) Alive() bool {
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// ErrExited is what the waits return when the daemon exits first.
var ErrExited = errors.New("reconciler exited")

// Await waits until cond holds, checking it now and each time the daemon
// writes: cond must depend on the output only (Output, or what
// Options.Lines kept). It returns an error wrapping ErrExited if the
// daemon exits first, or one naming what once timeout passes or ctx ends.
func (d *Daemon) Await(ctx context.Context, timeout time.Duration, what string, cond func() bool) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		d.mu.Lock()
		grew := d.grew
		d.mu.Unlock()
		if cond() {
			return nil
		}
		select {
		case <-grew:
		case <-d.done:
			if cond() {
				return nil
			}
			return fmt.Errorf("%w while waiting for %s", ErrExited, what)
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-timer.C:
			return fmt.Errorf("timed out after %s waiting for %s", timeout, what)
		}
	}
}

// AwaitLog waits until the output holds s (see Await).
func (d *Daemon) AwaitLog(ctx context.Context, s string, timeout time.Duration) error {
	return d.Await(ctx, timeout, fmt.Sprintf("%q in its log", s), func() bool {
		return strings.Contains(d.Output(), s)
	})
}

// Kill sends SIGKILL (no cleanup of any kind runs) and waits.
func (d *Daemon) Kill() {
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
}

// Stop sends SIGTERM and waits, and sends SIGKILL after Options.Grace. It
// does nothing once the daemon has exited.
func (d *Daemon) Stop() {
	if !d.Alive() {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(d.grace):
		d.Kill()
	}
}

// Memory is a process's resident memory in bytes, from /proc/PID/status.
type Memory struct {
	Peak int64 // VmHWM: since start or the last reset (clear_refs 5)
	RSS  int64 // VmRSS, now
	Anon int64 // RssAnon: the private part (heap, stacks); the rest is mostly the binary's own pages
}

// Memory reads the daemon's resident memory.
func (d *Daemon) Memory() (Memory, error) {
	var m Memory
	pid := d.Pid()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		var dst *int64
		switch k {
		case "VmHWM":
			dst = &m.Peak
		case "VmRSS":
			dst = &m.RSS
		case "RssAnon":
			dst = &m.Anon
		default:
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return m, fmt.Errorf("parse /proc/%d/status %s: %w", pid, k, err)
		}
		*dst = kb << 10
	}
	return m, nil
}
