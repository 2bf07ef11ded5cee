package runtime

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/go-logr/logr"
)

// Managed is a private containerd daemon started by the reconciler (the
// embedded default when no containerd socket is reachable) or by the tests. It
// has its own root, state, socket and config file under one directory, so it
// never touches a system containerd.
//
// The daemon is stopped by Stop. Containers survive that: their shims keep
// running, and the next daemon started on the same directory reconnects to them.
// Supervise restarts the daemon, with backoff, when it dies on its own.
type Managed struct {
	Dir  string // everything lives under here
	bin  string
	log  logr.Logger
	mu   sync.Mutex
	pid  int
	done chan struct{} // closed when the daemon process is gone (nil: adopted, poll the pid)
	stop bool          // Stop was called: do not restart
}

// ManagedPaths are the files of a managed daemon under dir.
type ManagedPaths struct {
	Root, State, Socket, Config, Log, PidFile string
	RuncRoot                                  string // runc state of this daemon's containers (see WithRuncRoot)
}

// PathsFor returns where a managed containerd keeps its files under dir.
func PathsFor(dir string) ManagedPaths {
	return ManagedPaths{
		Root:     filepath.Join(dir, "root"),
		State:    filepath.Join(dir, "state"),
		Socket:   filepath.Join(dir, "containerd.sock"),
		Config:   filepath.Join(dir, "config.toml"),
		Log:      filepath.Join(dir, "containerd.log"),
		PidFile:  filepath.Join(dir, "containerd.pid"),
		RuncRoot: filepath.Join(dir, "state", "runc"),
	}
}

// maxSocketPath is the limit of a unix socket path on Linux (sun_path less the NUL).
const maxSocketPath = 107

// StartManaged starts containerd (the binary named by bin, looked up on PATH)
// with everything under dir, and waits until it serves. If a daemon already
// serves on dir's socket (a previous reconciler was killed and left it), it is
// adopted instead of started twice.
func StartManaged(ctx context.Context, dir, bin string, log logr.Logger) (*Managed, error) {
	if bin == "" {
		bin = "containerd"
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	p := PathsFor(dir)
	if len(p.Socket)+len(".ttrpc") > maxSocketPath {
		return nil, fmt.Errorf("start containerd: socket path %s is longer than %d bytes; use a shorter state directory", p.Socket, maxSocketPath-len(".ttrpc"))
	}
	m := &Managed{Dir: dir, bin: bin, log: log}
	if socketServes(p.Socket) {
		pid, _ := readPid(p.PidFile)
		m.pid = pid
		log.Info("adopted running managed containerd", "socket", p.Socket, "pid", pid)
		return m, nil
	}
	if err := m.start(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

// start runs the daemon process and waits until it serves.
func (m *Managed) start(ctx context.Context) error {
	p := PathsFor(m.Dir)
	path, err := exec.LookPath(m.bin)
	if err != nil {
		return fmt.Errorf("start containerd: %w (install it, e.g. apt-get install -y containerd runc)", err)
	}
	if _, err := exec.LookPath("runc"); err != nil {
		return fmt.Errorf("start containerd: %w (install it, e.g. apt-get install -y runc)", err)
	}
	for _, d := range []string{p.Root, p.State} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return fmt.Errorf("start containerd: %w", err)
		}
	}
	if err := os.WriteFile(p.Config, []byte(configTOML(p)), 0o600); err != nil {
		return fmt.Errorf("start containerd: write config: %w", err)
	}
	_ = os.Remove(p.Socket) // stale: nobody serves it
	logf, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("start containerd: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(path, "--config", p.Config)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own session: a Ctrl-C on the reconciler's terminal must not reach the
	// daemon before the reconciler has finished with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start containerd: %w", err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(done) }()
	m.mu.Lock()
	m.pid, m.done = cmd.Process.Pid, done
	m.mu.Unlock()
	_ = os.WriteFile(p.PidFile, []byte(strconv.Itoa(cmd.Process.Pid)), 0o600)

	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !socketServes(p.Socket) {
		select {
		case <-done:
			return fmt.Errorf("start containerd: exited before serving (%v); last log lines:\n%s", waitErr, tail(p.Log, 20))
		case <-deadline.C:
			_ = m.kill(context.WithoutCancel(ctx))
			return fmt.Errorf("start containerd: not serving on %s after 30s; last log lines:\n%s", p.Socket, tail(p.Log, 20))
		case <-ctx.Done():
			_ = m.kill(context.WithoutCancel(ctx))
			return ctx.Err()
		case <-tick.C:
		}
	}
	m.log.Info("started managed containerd", "socket", p.Socket, "pid", cmd.Process.Pid, "log", p.Log)
	return nil
}

// Address is the daemon's gRPC socket.
func (m *Managed) Address() string { return PathsFor(m.Dir).Socket }

// Pid is the daemon's process ID (0 if unknown).
func (m *Managed) Pid() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pid
}

// Supervise restarts the daemon when it dies (not when Stop ends it), with
// exponential backoff from 1s to 30s, until ctx is done. Workloads keep
// running meanwhile: their shims do not need the daemon.
func (m *Managed) Supervise(ctx context.Context) {
	b := backoff.NewExponentialBackOff(backoff.WithInitialInterval(time.Second),
		backoff.WithMaxInterval(30*time.Second), backoff.WithMaxElapsedTime(0))
	for {
		if !m.waitExit(ctx) {
			return
		}
		m.log.Error(nil, "managed containerd died; restarting it", "log", PathsFor(m.Dir).Log)
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(b.NextBackOff()):
			}
			m.mu.Lock()
			stopped := m.stop
			m.mu.Unlock()
			if stopped {
				return
			}
			err := m.start(ctx)
			if err == nil {
				b.Reset()
				break
			}
			m.log.Error(err, "restart managed containerd")
		}
	}
}

// waitExit blocks until the daemon process is gone (true) or ctx is done or
// Stop was called (false).
func (m *Managed) waitExit(ctx context.Context) bool {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		m.mu.Lock()
		pid, done, stopped := m.pid, m.done, m.stop
		m.mu.Unlock()
		if stopped {
			return false
		}
		if done != nil {
			select {
			case <-done:
				m.mu.Lock()
				stopped = m.stop
				m.mu.Unlock()
				return !stopped
			case <-ctx.Done():
				return false
			case <-tick.C: // Stop may have been called
				continue
			}
		}
		if pid > 0 && !processAlive(pid) && !socketServes(m.Address()) {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
}

// Stop terminates the daemon for good: SIGTERM, then SIGKILL after 10 s.
func (m *Managed) Stop(ctx context.Context) error {
	m.mu.Lock()
	m.stop = true
	m.mu.Unlock()
	return m.kill(ctx)
}

// kill terminates the current daemon process: SIGTERM, then SIGKILL after 10 s.
func (m *Managed) kill(ctx context.Context) error {
	m.mu.Lock()
	pid := m.pid
	m.mu.Unlock()
	if pid <= 0 {
		return nil
	}
	proc, err := os.FindProcess(pid)
	if err != nil {
		return nil
	}
	if err := proc.Signal(syscall.SIGTERM); err != nil {
		return nil // already gone
	}
	deadline := time.Now().Add(10 * time.Second)
	for processAlive(pid) {
		if time.Now().After(deadline) || ctx.Err() != nil {
			_ = proc.Signal(syscall.SIGKILL)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := 0; i < 100 && processAlive(pid); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	_ = os.Remove(PathsFor(m.Dir).PidFile)
	m.log.Info("stopped managed containerd", "pid", pid)
	m.mu.Lock()
	m.pid = 0
	m.mu.Unlock()
	return nil
}

func processAlive(pid int) bool {
	// A reaped or never-existing pid fails; a zombie child of ours is reaped
	// by the goroutine waiting on it.
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// Field 3 is the state; Z is a zombie.
	if i := strings.LastIndexByte(string(b), ')'); i > 0 && i+2 < len(b) && b[i+2] == 'Z' {
		return false
	}
	return true
}

func readPid(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// socketServes reports whether something accepts connections on the unix socket.
func socketServes(path string) bool {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// configTOML is the daemon's configuration: a version 2 config that containerd
// 1.6 and later read, with the CRI plugin off (this daemon serves only the
// reconciler) and every path under the managed directory.
func configTOML(p ManagedPaths) string {
	return fmt.Sprintf(`# written by reconciler; overwritten at each start
version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = %q

[ttrpc]
  address = %q

[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, p.Root, p.State, p.Socket, p.Socket+".ttrpc", filepath.Join(p.Root, "opt"))
}

// ErrNoContainerd is returned by New when nothing accepts connections on the
// socket.
var ErrNoContainerd = errors.New("no containerd reachable")
