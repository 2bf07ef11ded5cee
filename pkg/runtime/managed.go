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
	"syscall"
	"time"

	"github.com/go-logr/logr"
)

// Managed is a private containerd daemon started by the reconciler (the
// embedded default when no containerd socket is reachable) or by the tests. It
// has its own root, state, socket and config file under one directory, so it
// never touches a system containerd.
//
// The daemon is stopped by Stop. Containers survive that: their shims keep
// running, and the next daemon started on the same directory reconnects to them.
type Managed struct {
	Dir string // everything lives under here
	log logr.Logger
	cmd *exec.Cmd // nil when an already-running daemon was adopted
	pid int
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
	m := &Managed{Dir: dir, log: log}
	if socketServes(p.Socket) {
		pid, _ := readPid(p.PidFile)
		m.pid = pid
		log.Info("adopted running managed containerd", "socket", p.Socket, "pid", pid)
		return m, nil
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, fmt.Errorf("start containerd: %w (install it, e.g. apt-get install -y containerd runc)", err)
	}
	if _, err := exec.LookPath("runc"); err != nil {
		return nil, fmt.Errorf("start containerd: %w (install it, e.g. apt-get install -y runc)", err)
	}
	for _, d := range []string{p.Root, p.State} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, fmt.Errorf("start containerd: %w", err)
		}
	}
	if err := os.WriteFile(p.Config, []byte(configTOML(p)), 0o600); err != nil {
		return nil, fmt.Errorf("start containerd: write config: %w", err)
	}
	_ = os.Remove(p.Socket) // stale: nobody serves it
	logf, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("start containerd: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(path, "--config", p.Config)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own session: a Ctrl-C on the reconciler's terminal must not reach the
	// daemon before the reconciler has finished with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start containerd: %w", err)
	}
	m.cmd, m.pid = cmd, cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	_ = os.WriteFile(p.PidFile, []byte(strconv.Itoa(m.pid)), 0o600)

	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !socketServes(p.Socket) {
		select {
		case err := <-exited:
			m.cmd = nil
			return nil, fmt.Errorf("start containerd: exited before serving (%v); last log lines:\n%s", err, tail(p.Log, 20))
		case <-deadline.C:
			_ = m.Stop(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("start containerd: not serving on %s after 30s; last log lines:\n%s", p.Socket, tail(p.Log, 20))
		case <-ctx.Done():
			_ = m.Stop(context.WithoutCancel(ctx))
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
	log.Info("started managed containerd", "socket", p.Socket, "pid", m.pid, "log", p.Log)
	return m, nil
}

// Address is the daemon's gRPC socket.
func (m *Managed) Address() string { return PathsFor(m.Dir).Socket }

// Pid is the daemon's process ID (0 if unknown).
func (m *Managed) Pid() int { return m.pid }

// Stop terminates the daemon: SIGTERM, then SIGKILL after 10 s.
func (m *Managed) Stop(ctx context.Context) error {
	if m.pid <= 0 {
		return nil
	}
	proc, err := os.FindProcess(m.pid)
	if err != nil {
		return nil
	}
	if err := proc.Signal(syscall.SIGTERM); err != nil {
		return nil // already gone
	}
	deadline := time.Now().Add(10 * time.Second)
	for processAlive(m.pid) {
		if time.Now().After(deadline) || ctx.Err() != nil {
			_ = proc.Signal(syscall.SIGKILL)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if m.cmd == nil {
		// Adopted: not our child, nothing to reap; wait for it to vanish.
		for i := 0; i < 100 && processAlive(m.pid); i++ {
			time.Sleep(20 * time.Millisecond)
		}
	}
	_ = os.Remove(PathsFor(m.Dir).PidFile)
	m.log.Info("stopped managed containerd", "pid", m.pid)
	m.pid = 0
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
