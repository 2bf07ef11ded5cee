package testenv

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// SSHDBinary is Debian's OpenSSH server (`make deps` installs it).
const SSHDBinary = "/usr/sbin/sshd"

// SSHD is an OpenSSH server on 127.0.0.1 that a test runs as root with a
// configuration, a host key and one authorized client key of its own: a
// git server over SSH for the user root (PermitRootLogin
// prohibit-password), serving any repository of the file system by its
// absolute path. It stops when the test ends.
type SSHD struct {
	Addr      string // 127.0.0.1:PORT
	Port      int
	ClientKey string // the private key (ed25519, no passphrase) that root accepts
	// HostKey is the server's host key; KnownHostsLine its line for a
	// known_hosts file ([127.0.0.1]:PORT TYPE BASE64), Fingerprint its
	// SHA256 fingerprint as ssh-keygen -l shows it.
	HostKey        ssh.PublicKey
	KnownHostsLine string
	Fingerprint    string

	dir string
	cmd *exec.Cmd
	out *syncBuffer
}

// StartSSHD starts sshd for t. A machine where it cannot run (not root,
// sshd or ssh-keygen missing) skips t, and fails it under CI=true.
func StartSSHD(t testing.TB) *SSHD {
	t.Helper()
	why := ""
	switch {
	case os.Geteuid() != 0:
		why = "not running as root (sshd serves root's logins)"
	case !executable(SSHDBinary):
		why = SSHDBinary + " is missing (apt-get install -y openssh-server; make deps installs it)"
	default:
		if _, err := exec.LookPath("ssh-keygen"); err != nil {
			why = "ssh-keygen is missing (apt-get install -y openssh-client; make deps installs it)"
		}
	}
	Require(t, "the sshd test", why)

	dir := t.TempDir()
	keygen(t, filepath.Join(dir, "host_ed25519"), "e2e-sshd-host")
	keygen(t, filepath.Join(dir, "client_ed25519"), "e2e-sshd-client")
	pub, err := os.ReadFile(filepath.Join(dir, "client_ed25519.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600); err != nil {
		t.Fatal(err)
	}
	hostPub, err := os.ReadFile(filepath.Join(dir, "host_ed25519.pub"))
	if err != nil {
		t.Fatal(err)
	}
	hostKey, _, _, _, err := ssh.ParseAuthorizedKey(hostPub)
	if err != nil {
		t.Fatal(err)
	}
	// The privilege separation directory, which Debian's package makes
	// at boot (tmpfiles.d) and a container lacks.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatalf("sshd: %v", err)
	}
	port := freePort(t)
	s := &SSHD{
		Addr: fmt.Sprintf("127.0.0.1:%d", port), Port: port,
		ClientKey: filepath.Join(dir, "client_ed25519"),
		HostKey:   hostKey, Fingerprint: ssh.FingerprintSHA256(hostKey),
		KnownHostsLine: fmt.Sprintf("[127.0.0.1]:%d %s", port, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(hostKey)))),
		dir:            dir, out: &syncBuffer{},
	}
	config := strings.Join([]string{
		"ListenAddress 127.0.0.1",
		"HostKey " + filepath.Join(dir, "host_ed25519"),
		"PidFile " + filepath.Join(dir, "sshd.pid"),
		"AuthorizedKeysFile " + filepath.Join(dir, "authorized_keys"),
		"PermitRootLogin prohibit-password",
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"StrictModes no",
		"UsePAM no",
		"UseDNS no",
		"LogLevel VERBOSE",
		"",
	}, "\n")
	if err := os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	s.start(t)
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("sshd's log:\n%s", s.Output())
		}
	})
	return s
}

// URL is the ssh:// URL of the repository at the absolute path repo, for
// the user root.
func (s *SSHD) URL(repo string) string { return "ssh://root@" + s.Addr + repo }

// Output is what sshd logged (-e: to its stderr).
func (s *SSHD) Output() string { return s.out.String() }

func (s *SSHD) start(t testing.TB) {
	t.Helper()
	s.cmd = exec.Command(SSHDBinary, "-D", "-e", "-f", filepath.Join(s.dir, "sshd_config"), "-p", fmt.Sprint(s.Port))
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	// sshd forks a process per connection: a group of their own, killed
	// whole.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start sshd: %v", err)
	}
	exited := make(chan error, 1) // buffered: the process is reaped whenever it ends
	go func() { exited <- s.cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(s.out.String(), "Server listening on 127.0.0.1") {
		select {
		case err := <-exited:
			s.cmd = nil
			t.Fatalf("sshd exited at start (%v):\n%s", err, s.out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			t.Fatalf("sshd not listening after 10s:\n%s", s.out.String())
		}
	}
}

func (s *SSHD) stop() {
	if s.cmd == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	s.cmd = nil
}

func keygen(t testing.TB, file, comment string) {
	t.Helper()
	out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", file).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
}

func executable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// syncBuffer is a bytes.Buffer safe for a writer and readers at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
