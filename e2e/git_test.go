package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warren/reconciler/e2e/testenv"
)

// gitInterval is the --git-interval of these tests.
const gitInterval = 500 * time.Millisecond

// gitRepo is a bare repository fleet.git under a base directory that the
// test's git servers export, and a work tree the test commits in and
// force-pushes from (through the file system, not the servers).
type gitRepo struct {
	t    *testing.T
	base string // the servers' base path
	work string
}

func requireGit(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		if testenv.CI() {
			t.Fatal("git is missing (make deps installs it)")
		}
		t.Skip("git is missing and CI is not true (make deps installs it)")
	}
}

func newGitRepo(t *testing.T) *gitRepo {
	t.Helper()
	requireGit(t)
	r := &gitRepo{t: t, base: t.TempDir(), work: t.TempDir()}
	r.git(r.base, "init", "-q", "--bare", "-b", "main", "fleet.git")
	r.git(r.work, "init", "-q", "-b", "main")
	r.git(r.work, "config", "user.email", "e2e@example.com")
	r.git(r.work, "config", "user.name", "e2e")
	r.git(r.work, "remote", "add", "origin", filepath.Join(r.base, "fleet.git"))
	return r
}

func (r *gitRepo) git(dir string, args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+r.work)
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// push writes files (path -> content; "" deletes the file), commits and
// pushes; it returns the commit.
func (r *gitRepo) push(files map[string]string) string {
	r.t.Helper()
	for p, c := range files {
		full := filepath.Join(r.work, p)
		if c == "" {
			r.git(r.work, "rm", "-q", p)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			r.t.Fatal(err)
		}
		r.git(r.work, "add", p)
	}
	r.git(r.work, "commit", "-q", "-m", "e2e")
	r.git(r.work, "push", "-q", "-f", "origin", "HEAD:main")
	return r.git(r.work, "rev-parse", "HEAD")
}

// forcePush moves main back to commit, as `git push --force` does.
func (r *gitRepo) forcePush(commit string) {
	r.t.Helper()
	r.git(r.work, "reset", "-q", "--hard", commit)
	r.git(r.work, "push", "-q", "-f", "origin", "HEAD:main")
}

// gitDaemon is `git daemon` serving the repository's base on 127.0.0.1.
type gitDaemon struct {
	t    *testing.T
	base string
	port int
	cmd  *exec.Cmd
}

func startGitDaemon(t *testing.T, base string) *gitDaemon {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	d := &gitDaemon{t: t, base: base, port: port}
	d.start()
	t.Cleanup(d.stop)
	return d
}

func (d *gitDaemon) url() string { return fmt.Sprintf("git://127.0.0.1:%d/fleet.git", d.port) }

func (d *gitDaemon) start() {
	d.t.Helper()
	d.cmd = exec.Command("git", "daemon", "--export-all", "--reuseaddr", "--listen=127.0.0.1",
		"--base-path="+d.base, "--port="+strconv.Itoa(d.port), d.base)
	// `git daemon` runs git-daemon as its child: a group of their own,
	// killed whole.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	testenv.WaitFor(d.t, 10*time.Second, "git daemon listening", func() bool {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", d.port), time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

func (d *gitDaemon) stop() {
	if d.cmd == nil {
		return
	}
	_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
	_ = d.cmd.Wait()
	d.cmd = nil
}

// startGitHTTP serves the base through `git http-backend` (smart HTTP)
// behind basic auth user:pass, until the test ends; it returns the URL of
// the repository.
func startGitHTTP(t *testing.T, base, user, pass string) string {
	t.Helper()
	backend, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Fatal(err)
	}
	h := &cgi.Handler{
		Path: filepath.Join(strings.TrimSpace(string(backend)), "git-http-backend"),
		Env:  []string{"GIT_PROJECT_ROOT=" + base, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1"},
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })
	return "http://" + l.Addr().String() + "/fleet.git"
}

// gitSourceStatus is the source object of `reconciler status -o json`.
type gitSourceStatus struct {
	Commit    string `json:"commit"`
	LastError string `json:"lastError"`
	Failures  int    `json:"failures"`
}

func sourceStatus(t *testing.T, ns string) (gitSourceStatus, bool) {
	t.Helper()
	out, err := exec.Command(env.bin, "status", "-o", "json", "--state-dir", stateDir(ns)).Output()
	if err != nil {
		return gitSourceStatus{}, false
	}
	var st struct {
		Source *gitSourceStatus `json:"source"`
	}
	if err := json.Unmarshal(out, &st); err != nil || st.Source == nil {
		return gitSourceStatus{}, false
	}
	return *st.Source, true
}

// startGitReconciler runs `reconciler run --git URL` with a short interval
// and the extra flags, in namespace ns.
func startGitReconciler(t *testing.T, ns, url string, extra ...string) *testenv.TestDaemon {
	t.Helper()
	run := testenv.Run{Address: env.address, Containerd: "external", RuncRoot: env.runcRoot,
		Namespace: ns, Images: env.images, StateDir: stateDir(ns), Resync: time.Second,
		Flags: append([]string{"--git", url, "--git-interval", gitInterval.String()}, extra...)}
	d := testenv.StartTest(t, env.bin, run.Args(), testenv.TestOptions{Options: testenv.Options{Grace: 20 * time.Second}})
	d.WaitLog(testenv.InitialSync, 30*time.Second)
	return d
}

func (n *node) waitGone(task string) {
	n.t.Helper()
	testenv.WaitFor(n.t, converge, task+" removed", func() bool { return len(n.containers(task)) == 0 })
}

func (n *node) waitRunning(task string) {
	n.t.Helper()
	testenv.WaitFor(n.t, converge, task+" running", func() bool { _, ok := n.running(task); return ok })
}

// TestGitDaemonSync follows a repository served by `git daemon`: the
// node's paths select its files, a pushed commit and a pushed deletion are
// applied, a force-push to an older commit too; with the server down
// nothing changes, also across a restart of the reconciler, and the next
// commit is applied once it is back.
func TestGitDaemonSync(t *testing.T) {
	n := newNode(t, "e2e-git")
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	repo := newGitRepo(t)
	first := repo.push(map[string]string{
		"common/web.yaml":            testenv.Manifest("web"),
		"nodes/" + host + "/db.yaml": testenv.Manifest("db"),
		"nodes/elsewhere/cache.yaml": testenv.Manifest("cache"),
		"README.md":                  "the fleet\n",
	})
	srv := startGitDaemon(t, repo.base)
	d := startGitReconciler(t, n.ns, srv.url(), "--git-path", "common,nodes/{{hostname}}")

	n.waitRunning("web")
	n.waitRunning("db")
	if cs := n.containers("cache"); len(cs) != 0 {
		t.Fatalf("another node's task runs: %v", cs)
	}
	if st, _ := sourceStatus(t, n.ns); st.Commit != first {
		t.Fatalf("source status %+v, want commit %s", st, first)
	}

	// A pushed commit is applied within an interval or so.
	pushed := time.Now()
	apiCommit := repo.push(map[string]string{"common/api.yaml": testenv.Manifest("api")})
	n.waitRunning("api")
	t.Logf("push to running: %s", time.Since(pushed).Round(time.Millisecond))
	// Each task names the commit its spec was read from: web's file did
	// not change, and it is read from the new commit too.
	testenv.WaitFor(t, converge, "the tasks name the commit", func() bool {
		return taskStatus(t, n.ns, "api").Revision == apiCommit && taskStatus(t, n.ns, "web").Revision == apiCommit
	})

	// A pushed deletion removes its task.
	repo.push(map[string]string{"common/api.yaml": ""})
	n.waitGone("api")

	// A force-push to an older commit is applied.
	repo.push(map[string]string{"common/old.yaml": testenv.Manifest("old")})
	n.waitRunning("old")
	repo.forcePush(first)
	n.waitGone("old")
	testenv.WaitFor(t, converge, "the older commit applied", func() bool { st, _ := sourceStatus(t, n.ns); return st.Commit == first })

	// The server stops: nothing changes, the error is on the status.
	srv.stop()
	next := repo.push(map[string]string{"common/late.yaml": testenv.Manifest("late")})
	testenv.WaitFor(t, converge, "the fetch error on the status", func() bool {
		st, _ := sourceStatus(t, n.ns)
		return st.LastError != "" && st.Commit == first
	})
	web, _ := n.running("web")

	// Restarted while the server is down: the last good tree runs.
	d.Stop()
	startGitReconciler(t, n.ns, srv.url(), "--git-path", "common,nodes/{{hostname}}")
	time.Sleep(3 * gitInterval) // a few failed syncs; nothing may change meanwhile
	if st, _ := sourceStatus(t, n.ns); st.Commit != first || st.LastError == "" {
		t.Fatalf("after a restart with the server down: source status %+v", st)
	}
	if now, ok := n.running("web"); !ok || now.ID != web.ID || now.Pid != web.Pid {
		t.Fatalf("web changed while the server was down: %+v, was %+v", now, web)
	}
	n.waitRunning("db")
	if len(n.containers("late")) != 0 {
		t.Fatal("late runs, from a commit never fetched")
	}

	// The server back: the next commit is applied (after the backoff).
	srv.start()
	n.waitRunning("late")
	testenv.WaitFor(t, converge, "the next commit on the status", func() bool {
		st, _ := sourceStatus(t, n.ns)
		return st.Commit == next && st.LastError == ""
	})
}

// TestGitHTTPCredentials follows a repository served over smart HTTP with
// basic auth: wrong credentials are a clear error on the status, retried;
// the file is read again at each sync, so fixing it is enough; `reconciler
// sync` syncs at once.
func TestGitHTTPCredentials(t *testing.T) {
	n := newNode(t, "e2e-githttp")
	repo := newGitRepo(t)
	first := repo.push(map[string]string{"web.yaml": testenv.Manifest("web")})
	url := startGitHTTP(t, repo.base, "alice", "wonderland")
	creds := filepath.Join(t.TempDir(), "git-credentials")
	if err := os.WriteFile(creds, []byte("alice:wrong\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	startGitReconciler(t, n.ns, url, "--git-credentials", creds)

	testenv.WaitFor(t, converge, "an auth error, retried", func() bool {
		st, _ := sourceStatus(t, n.ns)
		return strings.Contains(st.LastError, "refused the credentials") && st.Failures >= 2
	})
	if st, _ := sourceStatus(t, n.ns); st.Commit != "" || strings.Contains(st.LastError, "wrong") {
		t.Fatalf("source status %+v: no commit applied, no password shown", st)
	}
	if len(n.containers("web")) != 0 {
		t.Fatal("web runs although nothing was fetched")
	}
	out, err := exec.Command(env.bin, "sync", "--state-dir", stateDir(n.ns)).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "refused the credentials") {
		t.Fatalf("reconciler sync with wrong credentials: %v\n%s", err, out)
	}

	// The file fixed: read again at the next sync.
	if err := os.WriteFile(creds, []byte("alice:wonderland\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n.waitRunning("web")
	testenv.WaitFor(t, converge, "the commit on the status", func() bool {
		st, _ := sourceStatus(t, n.ns)
		return st.Commit == first && st.LastError == ""
	})

	// `reconciler sync` applies a pushed commit at once and says so.
	second := repo.push(map[string]string{"api.yaml": testenv.Manifest("api")})
	out, err = exec.Command(env.bin, "sync", "--state-dir", stateDir(n.ns)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), second) {
		t.Fatalf("reconciler sync: %v\n%s", err, out)
	}
	n.waitRunning("api")
}

// TestGitSIGHUPSyncsNow: with an interval of an hour, SIGHUP makes the
// daemon fetch a pushed commit at once.
func TestGitSIGHUPSyncsNow(t *testing.T) {
	n := newNode(t, "e2e-githup")
	repo := newGitRepo(t)
	repo.push(map[string]string{"web.yaml": testenv.Manifest("web")})
	srv := startGitDaemon(t, repo.base)
	d := startGitReconciler(t, n.ns, srv.url(), "--git-interval", "1h") // the later flag wins
	n.waitRunning("web")
	second := repo.push(map[string]string{"api.yaml": testenv.Manifest("api")})
	if err := syscall.Kill(d.Pid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	n.waitRunning("api")
	if st, _ := sourceStatus(t, n.ns); st.Commit != second {
		t.Fatalf("source status %+v, want commit %s", st, second)
	}
}
