package testenv

import (
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// GitServer is a bare repository, NAME.git under a base directory, served
// by `git daemon` (Debian's git, installed by `make deps`) on 127.0.0.1,
// and a work tree that commits are made in. Commits reach the bare
// repository through the file system, never through the daemon: they can
// be pushed while the daemon is stopped, and are served once it is back.
// The daemon can be stopped (SIGKILL of it and of the processes serving
// its connections: the port refuses) and started again on the same port.
type GitServer struct {
	Base string // the daemon's --base-path; the repository is Base/NAME.git
	Work string // the work tree, whose origin is the bare repository on disk
	Port int
	Name string // the repository's name, without .git

	t    testing.TB
	home string // HOME of the git commands (no user configuration read)
	log  string // the daemon's stderr

	mu     sync.Mutex
	cmd    *exec.Cmd     // nil while stopped
	exited chan struct{} // closed once cmd has exited
}

// StartGitServer makes the bare repository name.git (default branch main)
// and its work tree under dir, and serves it with `git daemon` on a free
// port of 127.0.0.1 until the test ends. The repository is empty: the
// first Commit creates main.
func StartGitServer(t testing.TB, dir, name string) *GitServer {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatalf("git is missing (make deps installs it): %v", err)
	}
	g := &GitServer{Base: filepath.Join(dir, "base"), Work: filepath.Join(dir, "work"), Name: name,
		t: t, home: filepath.Join(dir, "home"), log: filepath.Join(dir, "git-daemon.log")}
	for _, d := range []string{g.Base, g.Work, g.home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	g.MustGit(g.Base, "init", "-q", "--bare", "-b", "main", name+".git")
	g.MustGit(g.Work, "init", "-q", "-b", "main")
	g.MustGit(g.Work, "config", "user.email", "chaos@example.com")
	g.MustGit(g.Work, "config", "user.name", "chaos")
	g.MustGit(g.Work, "config", "commit.gpgsign", "false")
	g.MustGit(g.Work, "remote", "add", "origin", g.Repo())
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g.Port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	g.Start()
	t.Cleanup(g.Stop)
	return g
}

// Repo is the bare repository's path.
func (g *GitServer) Repo() string { return filepath.Join(g.Base, g.Name+".git") }

// URL is the repository's git:// URL.
func (g *GitServer) URL() string {
	return fmt.Sprintf("git://127.0.0.1:%d/%s.git", g.Port, g.Name)
}

// Git runs git in dir with the server's environment (no system or user
// configuration) and returns its output, trimmed.
func (g *GitServer) Git(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+g.home, "GIT_TERMINAL_PROMPT=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("git %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// MustGit is Git that fails the test on an error.
func (g *GitServer) MustGit(dir string, args ...string) string {
	g.t.Helper()
	out, err := g.Git(dir, args...)
	if err != nil {
		g.t.Fatal(err)
	}
	return out
}

// CommitOptions say how Commit commits.
type CommitOptions struct {
	Message string
	// Config are `git -c` settings of the commit, such as
	// "gpg.format=ssh" and "user.signingkey=KEY".
	Config []string
	// Sign adds -S: the commit is signed (with the key of Config).
	Sign bool
}

// Commit makes the work tree hold exactly files (a path in the repository
// -> its content; every other file is removed), commits it, even when
// nothing changed, and pushes it to main (forced: main may have been
// moved back). It returns the commit's hash.
func (g *GitServer) Commit(files map[string]string, o CommitOptions) string {
	g.t.Helper()
	entries, err := os.ReadDir(g.Work)
	if err != nil {
		g.t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != ".git" {
			if err := os.RemoveAll(filepath.Join(g.Work, e.Name())); err != nil {
				g.t.Fatal(err)
			}
		}
	}
	for _, p := range slices.Sorted(maps.Keys(files)) {
		full := filepath.Join(g.Work, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			g.t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(files[p]), 0o644); err != nil {
			g.t.Fatal(err)
		}
	}
	g.MustGit(g.Work, "add", "-A")
	msg := o.Message
	if msg == "" {
		msg = "chaos"
	}
	var args []string
	for _, c := range o.Config {
		args = append(args, "-c", c)
	}
	args = append(args, "commit", "-q", "--allow-empty", "-m", msg)
	if o.Sign {
		args = append(args, "-S")
	}
	g.MustGit(g.Work, args...)
	g.push()
	return g.Head()
}

// Head is the commit of the work tree.
func (g *GitServer) Head() string {
	g.t.Helper()
	return g.MustGit(g.Work, "rev-parse", "HEAD")
}

// Tip is the commit main points at in the bare repository.
func (g *GitServer) Tip() string {
	g.t.Helper()
	return g.MustGit(g.Repo(), "rev-parse", "refs/heads/main")
}

// ForcePush moves main back (or anywhere) to commit, as `git push
// --force` of an older commit does; the work tree follows.
func (g *GitServer) ForcePush(commit string) {
	g.t.Helper()
	g.MustGit(g.Work, "reset", "-q", "--hard", commit)
	g.push()
}

// Tamper force-pushes to main a copy of commit whose tree is replaced by
// tree: same parents, author, committer, message and signature, which
// then signs other content and no longer verifies. It returns the copy.
func (g *GitServer) Tamper(commit, tree string) string {
	g.t.Helper()
	raw := g.MustGit(g.Work, "cat-file", "commit", commit)
	head, rest, ok := strings.Cut(raw, "\n")
	if !ok || !strings.HasPrefix(head, "tree ") {
		g.t.Fatalf("commit %s does not start with its tree:\n%s", commit, raw)
	}
	cmd := exec.Command("git", "hash-object", "-t", "commit", "-w", "--stdin")
	cmd.Dir = g.Work
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+g.home)
	// cat-file's output was trimmed: the message's last newline is back.
	cmd.Stdin = strings.NewReader("tree " + tree + "\n" + rest + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		g.t.Fatalf("git hash-object: %v\n%s", err, out)
	}
	forged := strings.TrimSpace(string(out))
	g.MustGit(g.Work, "reset", "-q", "--hard", forged)
	g.push()
	return forged
}

func (g *GitServer) push() {
	g.t.Helper()
	g.MustGit(g.Work, "push", "-q", "-f", "origin", "HEAD:main")
}

// Start starts the daemon (if it is not running) and waits until it
// accepts connections.
func (g *GitServer) Start() {
	g.t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cmd != nil {
		return
	}
	logf, err := os.OpenFile(g.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		g.t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command("git", "daemon", "--export-all", "--enable=receive-pack", "--reuseaddr",
		"--informative-errors", "--listen=127.0.0.1", "--port="+strconv.Itoa(g.Port),
		"--base-path="+g.Base, g.Base)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+g.home)
	cmd.Stdout, cmd.Stderr = logf, logf
	// `git daemon` serves each connection from a child: a process group
	// of their own, killed whole.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		g.t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	g.cmd, g.exited = cmd, exited
	err = Poll(10*time.Second, 20*time.Millisecond, "git daemon listening", func() bool {
		select {
		case <-exited:
			return true
		default:
		}
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", g.Port), time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	select {
	case <-exited:
		g.cmd = nil
		log, _ := os.ReadFile(g.log)
		g.t.Fatalf("git daemon on port %d exited:\n%s", g.Port, log)
	default:
	}
	if err != nil {
		g.t.Fatal(err)
	}
}

// Stop kills the daemon and what serves its connections (SIGKILL): the
// port refuses until Start.
func (g *GitServer) Stop() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cmd == nil {
		return
	}
	_ = syscall.Kill(-g.cmd.Process.Pid, syscall.SIGKILL)
	<-g.exited
	g.cmd = nil
}

// Running reports whether the daemon runs (between Start and Stop).
func (g *GitServer) Running() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cmd != nil
}
