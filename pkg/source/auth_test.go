package source

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"
)

// sshServer is a tiny SSH git server made with x/crypto/ssh: it accepts
// the user "git" with one key and runs the git command a client asks for
// (git-upload-pack PATH) on this machine.
type sshServer struct {
	t    *testing.T
	addr string // 127.0.0.1:PORT

	mu         sync.Mutex
	hostKeys   []ssh.Signer
	authorized ssh.PublicKey
}

func startSSHServer(t *testing.T, authorized ssh.PublicKey, hostKeys ...ssh.Signer) *sshServer {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is missing (make deps installs it)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &sshServer{t: t, addr: l.Addr().String(), hostKeys: hostKeys, authorized: authorized}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { s.serve(c) })
		}
	})
	return s
}

// setHostKeys changes the keys the server shows from the next connection.
func (s *sshServer) setHostKeys(keys ...ssh.Signer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hostKeys = keys
}

func (s *sshServer) port() string { _, p, _ := net.SplitHostPort(s.addr); return p }

func (s *sshServer) serve(c net.Conn) {
	defer c.Close()
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(m ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
		if m.User() == DefaultSSHUser && bytes.Equal(key.Marshal(), s.authorized.Marshal()) {
			return nil, nil
		}
		return nil, errors.New("not authorized")
	}}
	s.mu.Lock()
	for _, k := range s.hostKeys {
		cfg.AddHostKey(k)
	}
	s.mu.Unlock()
	conn, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	defer conn.Close()
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "sessions only")
			continue
		}
		ch, reqs, err := nc.Accept()
		if err != nil {
			return
		}
		go session(ch, reqs)
	}
}

// session runs the command of the first exec request of a session.
func session(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	for req := range reqs {
		var exe struct{ Command string }
		if req.Type != "exec" || ssh.Unmarshal(req.Payload, &exe) != nil || !strings.HasPrefix(exe.Command, "git-upload-pack ") {
			_ = req.Reply(false, nil)
			continue
		}
		_ = req.Reply(true, nil)
		cmd := exec.Command("sh", "-c", exe.Command)
		cmd.Stdout, cmd.Stderr = ch, ch.Stderr()
		stdin, err := cmd.StdinPipe()
		if err == nil {
			go func() { _, _ = io.Copy(stdin, ch); stdin.Close() }()
			err = cmd.Run()
		}
		status := uint32(0)
		if err != nil {
			status = 1
		}
		_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{status}))
		return
	}
}

func newSigner(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newRSASigner(t *testing.T) ssh.Signer {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// clientKey writes a new ed25519 key in OpenSSH format (encrypted with
// passphrase if not "") and returns its file and public key.
func clientKey(t *testing.T, passphrase string) (string, ssh.PublicKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var block *pem.Block
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(priv, "test")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "test", []byte(passphrase))
	}
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return file, sp
}

// logLines is a logger that keeps its lines.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.lines = append(l.lines, args)
	}, funcr.Options{})
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func newSSHSource(t *testing.T, cfg Config, log logr.Logger) *Source {
	t.Helper()
	cfg.Dir, cfg.Helper = filepath.Join(t.TempDir(), "git"), helper
	if err := cfg.Check(); err != nil {
		t.Fatal(err)
	}
	s := New(cfg, log, nil, nil)
	if err := s.Open(); err != nil {
		t.Fatal(err)
	}
	return s
}

func readLines(t *testing.T, file string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// TestSSHKnownHosts syncs over SSH from an in-test server: an unknown
// host is refused with its fingerprint and the command that adds it;
// --git-accept-new-host-key adds its key once and logs it; a known host
// syncs; a changed key is refused, with or without accept-new.
func TestSSHKnownHosts(t *testing.T) {
	r := newRepo(t)
	first := r.commit(map[string]string{"web.yaml": "kind: x\n"})
	key, pub := clientKey(t, "")
	hostKey := newSigner(t)
	srv := startSSHServer(t, pub, hostKey)
	url := "ssh://" + srv.addr + r.dir
	knownHosts := filepath.Join(t.TempDir(), "ssh", "known_hosts") // its directory does not exist yet
	fp := ssh.FingerprintSHA256(hostKey.PublicKey())

	// Unknown: refused, nothing applied, nothing written.
	s := newSSHSource(t, Config{URL: url, SSHKey: key, KnownHosts: []string{knownHosts}}, logr.Discard())
	err := s.Sync(t.Context())
	for _, want := range []string{"host key of [127.0.0.1]:" + srv.port() + " unknown", "ssh-ed25519 " + fp, "ssh-keyscan -p " + srv.port() + " 127.0.0.1 >> " + knownHosts, "--git-accept-new-host-key"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("unknown host: error %v, want %q", err, want)
		}
	}
	if _, err := os.Lstat(s.cfg.Link()); !os.IsNotExist(err) {
		t.Fatalf("a tree was applied from an unknown host (%v)", err)
	}
	if _, err := os.Stat(knownHosts); !os.IsNotExist(err) {
		t.Fatalf("known_hosts written without --git-accept-new-host-key (%v)", err)
	}

	// Accept-new: added once (ls-remote and fetch are two connections),
	// logged with its fingerprint, applied.
	var log logLines
	s = newSSHSource(t, Config{URL: url, SSHKey: key, KnownHosts: []string{knownHosts}, AcceptNewHostKey: true}, log.logger())
	if err := s.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := s.Status(); st.Commit != first {
		t.Fatalf("status %+v, want commit %s", st, first)
	}
	want := knownhosts.Line([]string{srv.addr}, hostKey.PublicKey())
	if got := readLines(t, knownHosts); len(got) != 1 || got[0] != want {
		t.Fatalf("known_hosts %q, want the one line %q", got, want)
	}
	if !strings.Contains(log.String(), fp) || !strings.Contains(log.String(), knownHosts) {
		t.Fatalf("the added key is not logged with its fingerprint and file:\n%s", log.String())
	}

	// Known: a new commit syncs without accept-new.
	s = newSSHSource(t, Config{URL: url, SSHKey: key, KnownHosts: []string{knownHosts}}, logr.Discard())
	if err := s.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	second := r.commit(map[string]string{"api.yaml": "kind: x\n"})
	if err := s.Sync(t.Context()); err != nil || s.Status().Commit != second {
		t.Fatalf("sync from a known host: %v, status %+v", err, s.Status())
	}

	// Changed: refused, even with accept-new; the file and the applied
	// commit stay.
	other := newSigner(t)
	srv.setHostKeys(other)
	r.commit(map[string]string{"db.yaml": "kind: x\n"})
	for _, acceptNew := range []bool{false, true} {
		s.cfg.AcceptNewHostKey = acceptNew
		err := s.Sync(t.Context())
		for _, want := range []string{"host key of [127.0.0.1]:" + srv.port() + " changed", "ssh-ed25519 " + ssh.FingerprintSHA256(other.PublicKey()), fp, knownHosts + ":1", "ssh-keygen -R"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("changed key (accept-new %v): error %v, want %q", acceptNew, err, want)
			}
		}
		if st := s.Status(); st.Commit != second {
			t.Fatalf("changed key: status %+v, want the last good commit %s", st, second)
		}
		if got := readLines(t, knownHosts); len(got) != 1 || got[0] != want {
			t.Fatalf("known_hosts %q after a changed key, want it unchanged", got)
		}
	}
}

// TestSSHHostWithSeveralKeys: a server with an RSA and an ed25519 host
// key syncs whichever of the two known_hosts holds (the client asks for
// the known key type first).
func TestSSHHostWithSeveralKeys(t *testing.T) {
	r := newRepo(t)
	first := r.commit(map[string]string{"web.yaml": "kind: x\n"})
	key, pub := clientKey(t, "")
	ed, rsaKey := newSigner(t), newRSASigner(t)
	srv := startSSHServer(t, pub, rsaKey, ed)
	for _, known := range []ssh.Signer{ed, rsaKey} {
		knownHosts := filepath.Join(t.TempDir(), "known_hosts")
		if err := writeFileString(knownHosts, knownhosts.Line([]string{srv.addr}, known.PublicKey())+"\n"); err != nil {
			t.Fatal(err)
		}
		s := newSSHSource(t, Config{URL: "ssh://git@" + srv.addr + r.dir, SSHKey: key, KnownHosts: []string{knownHosts}}, logr.Discard())
		if err := s.Sync(t.Context()); err != nil || s.Status().Commit != first {
			t.Fatalf("known %s: %v, status %+v", known.PublicKey().Type(), err, s.Status())
		}
	}
}

// TestSSHKeyErrors: a key the server refuses, an encrypted key, a file
// that is no key, a missing file, each a clear error.
func TestSSHKeyErrors(t *testing.T) {
	r := newRepo(t)
	r.commit(map[string]string{"web.yaml": "kind: x\n"})
	key, pub := clientKey(t, "")
	hostKey := newSigner(t)
	srv := startSSHServer(t, pub, hostKey)
	knownHosts := filepath.Join(t.TempDir(), "known_hosts")
	if err := writeFileString(knownHosts, knownhosts.Line([]string{srv.addr}, hostKey.PublicKey())+"\n"); err != nil {
		t.Fatal(err)
	}
	refused, refusedPub := clientKey(t, "")
	encrypted, _ := clientKey(t, "secret")
	notAKey := filepath.Join(t.TempDir(), "id")
	if err := writeFileString(notAKey, "hello\n"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, url, key, want string }{
		{"refused", "ssh://" + srv.addr + r.dir, refused, fmt.Sprintf("the server refused the key of --git-ssh-key %s (ssh-ed25519 %s) for the user \"git\"", refused, ssh.FingerprintSHA256(refusedPub))},
		{"refused, scp-like", "git@127.0.0.1:" + srv.port() + ":" + r.dir, refused, "the server refused the key"},
		{"encrypted", "ssh://" + srv.addr + r.dir, encrypted, "encrypted with a passphrase"},
		{"not a key", "ssh://" + srv.addr + r.dir, notAKey, "not a private key (OpenSSH or PEM)"},
		{"missing", "ssh://" + srv.addr + r.dir, notAKey + ".missing", "read --git-ssh-key"},
		// The key accepted, then another error: not blamed on the key.
		{"no repository", "ssh://" + srv.addr + r.dir + "/nothing", key, "repository not found"},
	} {
		s := newSSHSource(t, Config{URL: tc.url, SSHKey: tc.key, KnownHosts: []string{knownHosts}}, logr.Discard())
		err := s.Sync(t.Context())
		if err == nil || !strings.Contains(err.Error(), tc.want) || (tc.key == key && strings.Contains(err.Error(), "refused")) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestRedactSSH(t *testing.T) {
	for in, want := range map[string]string{
		"ssh://git@example.com/r.git":   "ssh://git@example.com/r.git",
		"git@example.com:r.git":         "git@example.com:r.git",
		"ssh://u:p@example.com/r.git":   "ssh://REDACTED@example.com/r.git",
		"u:p@example.com:r.git":         "REDACTED@example.com:r.git",
		"https://tok@example.com/r.git": "https://REDACTED@example.com/r.git",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}
