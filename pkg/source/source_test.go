package source

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-logr/logr"
)

// TestMain makes the test binary its own fetch helper, as the daemon's
// binary is: a child started with helperEnv set runs [HelperMain].
func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Exit(HelperMain(os.Stdin, os.Stdout, os.Stderr))
	}
	os.Setenv(helperEnv, "1") // for the children only
	os.Exit(m.Run())
}

const helperEnv = "SOURCE_TEST_FETCH_HELPER"

// helper is the command that runs a fetch in a helper process.
var helper = []string{os.Args[0]}

func writeFileString(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }

// repo is a repository made by the test, served as file://.
type repo struct {
	t   *testing.T
	dir string
	r   *git.Repository
}

func newRepo(t *testing.T) *repo {
	dir := t.TempDir()
	r, err := git.PlainInit(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	return &repo{t: t, dir: dir, r: r}
}

// commit writes files (path -> content; "" removes it) and commits them.
func (r *repo) commit(files map[string]string) string {
	r.t.Helper()
	w, err := r.r.Worktree()
	if err != nil {
		r.t.Fatal(err)
	}
	for p, c := range files {
		full := filepath.Join(r.dir, p)
		if c == "" {
			if _, err := w.Remove(p); err != nil {
				r.t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := writeFileString(full, c); err != nil {
			r.t.Fatal(err)
		}
		if _, err := w.Add(p); err != nil {
			r.t.Fatal(err)
		}
	}
	h, err := w.Commit("test", &git.CommitOptions{Author: &object.Signature{Name: "t", Email: "t@example.com", When: time.Now()}})
	if err != nil {
		r.t.Fatal(err)
	}
	return h.String()
}

func newSource(t *testing.T, url, stateDir string, paths ...string) *Source {
	t.Helper()
	cfg := Config{URL: url, Paths: paths, Dir: filepath.Join(stateDir, "git"), Helper: helper}
	if err := cfg.Check(); err != nil {
		t.Fatal(err)
	}
	s := New(cfg, logr.Discard(), nil, nil)
	if err := s.Open(); err != nil {
		t.Fatal(err)
	}
	return s
}

func linkFiles(t *testing.T, s *Source) []string {
	t.Helper()
	entries, err := os.ReadDir(s.cfg.Link())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func TestSyncAppliesKeepsLastGoodAndSurvivesRestart(t *testing.T) {
	r := newRepo(t)
	first := r.commit(map[string]string{"common/web.yaml": "a", "nodes/n1/db.yaml": "b", "nodes/n2/x.yaml": "c", "README.md": "r"})
	state := t.TempDir()
	url := "file://" + r.dir
	s := newSource(t, url, state, "common", "nodes/n1")
	ctx := t.Context()
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := linkFiles(t, s); !slices.Equal(got, []string{".source.json", "db.yaml", "web.yaml"}) {
		t.Fatalf("tree %q", got)
	}
	if st := s.Status(); st.Commit != first || st.RefName != "refs/heads/master" || st.LastError != "" || st.AppliedAt.IsZero() {
		t.Fatalf("status %+v", st)
	}
	c, err := r.r.CommitObject(plumbing.NewHash(first))
	if err != nil {
		t.Fatal(err)
	}
	if st := s.Status(); !st.CommittedAt.Equal(c.Committer.When) {
		t.Errorf("committedAt %s, want the commit's time %s", st.CommittedAt, c.Committer.When)
	}
	// The same tip again: nothing fetched, the tree stays.
	target, _ := os.Readlink(s.cfg.Link())
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.Readlink(s.cfg.Link()); again != target {
		t.Fatalf("tree swapped for an unchanged tip: %s, then %s", target, again)
	}

	// A duplicate name: an error, the last good tree in place.
	r.commit(map[string]string{"nodes/n1/web.yaml": "dup"})
	err = s.Sync(ctx)
	if err == nil || !strings.Contains(err.Error(), "two manifests named web.yaml") {
		t.Fatalf("error %v", err)
	}
	if st := s.Status(); st.Commit != first || st.LastError == "" || st.Failures != 1 {
		t.Fatalf("status %+v", st)
	}
	if again, _ := os.Readlink(s.cfg.Link()); again != target {
		t.Fatal("the last good tree was replaced by a failed sync")
	}

	// Fixed: applied, the old tree and the fetch removed.
	third := r.commit(map[string]string{"nodes/n1/web.yaml": ""})
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if st := s.Status(); st.Commit != third || st.LastError != "" {
		t.Fatalf("status %+v", st)
	}
	trees, _ := os.ReadDir(filepath.Join(s.cfg.Dir, "trees"))
	fetches, _ := os.ReadDir(filepath.Join(s.cfg.Dir, "fetch"))
	if len(trees) != 1 || len(fetches) != 0 {
		t.Fatalf("%d trees and %d fetch directories left", len(trees), len(fetches))
	}

	// A restart with the remote gone: the applied tree and commit are known.
	s2 := newSource(t, "file://"+filepath.Join(t.TempDir(), "gone"), state, "common", "nodes/n1")
	if st := s2.Status(); st.Commit != third {
		t.Fatalf("after a restart: status %+v", st)
	}
	if err := s2.Sync(ctx); err == nil {
		t.Fatal("a missing remote must fail")
	}
	if got := linkFiles(t, s2); !slices.Equal(got, []string{".source.json", "db.yaml", "web.yaml"}) {
		t.Fatalf("tree %q after a failed sync", got)
	}
}

func TestSyncMissingPathAndSizeLimit(t *testing.T) {
	r := newRepo(t)
	r.commit(map[string]string{"common/web.yaml": strings.Repeat("x", 4096)})
	s := newSource(t, "file://"+r.dir, t.TempDir(), "common", "nodes/{{hostname}}")
	if err := s.Sync(t.Context()); err == nil || !strings.Contains(err.Error(), "no such directory") {
		t.Fatalf("error %v", err)
	}
	if _, err := os.Lstat(s.cfg.Link()); !os.IsNotExist(err) {
		t.Fatalf("a link after a failed first sync: %v", err)
	}
	s = newSource(t, "file://"+r.dir, t.TempDir())
	s.cfg.MaxSize = 100
	if err := s.Sync(t.Context()); err == nil || !strings.Contains(err.Error(), "size limit") {
		t.Fatalf("error %v", err)
	}
}

func TestConfigCheck(t *testing.T) {
	for _, tc := range []struct {
		name   string
		url    string
		change func(*Config)
		want   string // in the error; "" is no error
	}{
		{name: "https", url: "https://example.com/r.git"},
		{name: "https with credentials", url: "https://example.com/r.git", change: func(c *Config) { c.Credentials = "/etc/creds" }},
		{name: "password in an https URL", url: "https://u:p@example.com/r.git", want: "not in the URL"},
		{name: "unknown scheme", url: "ftp://example.com/r", want: `scheme "ftp" not supported`},
		{name: "a path, no URL", url: "/srv/git/r.git", want: "not a URL with a scheme"},
		{name: "credentials for git://", url: "git://example.com/r.git", change: func(c *Config) { c.Credentials = "/etc/creds" }, want: "--git-credentials: only http(s)"},

		{name: "ssh://", url: "ssh://git@example.com:2222/srv/r.git", change: withKey},
		{name: "ssh:// without user", url: "ssh://example.com/r.git", change: withKey},
		{name: "scp-like", url: "git@example.com:fleet/r.git", change: withKey},
		{name: "scp-like without user", url: "example.com:r.git", change: withKey},
		{name: "ssh:// without a key", url: "ssh://git@example.com/r.git", want: "needs --git-ssh-key FILE"},
		{name: "scp-like without a key", url: "git@example.com:r.git", want: "needs --git-ssh-key FILE"},
		{name: "ssh:// without a path", url: "ssh://git@example.com", change: withKey, want: "not an SSH URL"},
		{name: "password in an ssh URL", url: "ssh://u:p@example.com/r.git", change: withKey, want: "not a password in the URL"},
		{name: "password in an scp-like URL", url: "u:p@example.com:r.git", change: withKey, want: "not a password in the URL"},
		{name: "credentials for SSH", url: "ssh://git@example.com/r.git", change: func(c *Config) { withKey(c); c.Credentials = "/etc/creds" }, want: "--git-credentials: only http(s) URLs"},
		{name: "empty known_hosts name", url: "git@example.com:r.git", change: func(c *Config) { withKey(c); c.KnownHosts = []string{""} }, want: "--git-known-hosts: an empty file name"},
		{name: "key for https", url: "https://example.com/r.git", change: withKey, want: "--git-ssh-key: only SSH URLs take a key, not https://"},
		{name: "known_hosts for git://", url: "git://example.com/r.git", change: func(c *Config) { c.KnownHosts = []string{"/k"} }, want: "--git-known-hosts and --git-accept-new-host-key: only for SSH URLs"},
		{name: "accept-new for file://", url: "file:///srv/r.git", change: func(c *Config) { c.AcceptNewHostKey = true }, want: "only for SSH URLs, not file://"},
	} {
		c := Config{URL: tc.url, Dir: "/x"}
		if tc.change != nil {
			tc.change(&c)
		}
		err := c.Check()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), ":p@") {
			t.Errorf("%s: the password shows: %v", tc.name, err)
		}
		if err == nil && isSSHURL(tc.url) && !slices.Equal(c.KnownHosts, DefaultKnownHosts()) {
			t.Errorf("%s: known_hosts %q, want the default %q", tc.name, c.KnownHosts, DefaultKnownHosts())
		}
	}
}

func withKey(c *Config) { c.SSHKey = "/etc/reconciler/id_ed25519" }

// TestSyncTimeoutEndsAStuckServer: a server that accepts and never answers
// (git:// and HTTP) fails the sync at --git-timeout.
func TestSyncTimeoutEndsAStuckServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c) // held open, never answered
		}
	}()
	for _, url := range []string{"git://" + l.Addr().String() + "/r.git", "http://" + l.Addr().String() + "/r.git"} {
		cfg := Config{URL: url, Dir: filepath.Join(t.TempDir(), "git"), Timeout: time.Second, Helper: helper}
		if err := cfg.Check(); err != nil {
			t.Fatal(err)
		}
		s := New(cfg, logr.Discard(), nil, nil)
		if err := s.Open(); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		err := s.Sync(t.Context())
		if err == nil || time.Since(start) > 10*time.Second {
			t.Fatalf("%s: %v after %s", url, err, time.Since(start))
		}
		t.Logf("%s: %v after %s", url, err, time.Since(start).Round(time.Millisecond))
	}
}

// TestSyncTimeoutKillsTheHelper: whatever the fetch waits on, the helper
// process ends at --git-timeout, and what it left is removed.
func TestSyncTimeoutKillsTheHelper(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "git")
	cfg := Config{URL: "git://127.0.0.1:1/r.git", Dir: dir, Timeout: 500 * time.Millisecond,
		Helper: []string{"sh", "-c", "mkdir -p " + dir + "/fetch/repo-x " + dir + "/trees/half; exec sleep 60"}}
	if err := cfg.Check(); err != nil {
		t.Fatal(err)
	}
	s := New(cfg, logr.Discard(), nil, nil)
	if err := s.Open(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := s.Sync(t.Context())
	if took := time.Since(start); err == nil || !strings.Contains(err.Error(), "timed out after 500ms") || took > 5*time.Second {
		t.Fatalf("got %v after %s, want a timeout after 500ms", err, took)
	}
	for _, left := range []string{"fetch", "trees/half"} {
		if _, err := os.Stat(filepath.Join(dir, left)); !os.IsNotExist(err) {
			t.Errorf("%s left behind after the helper was killed (%v)", left, err)
		}
	}
}

// TestHelperErrors: a helper that fails, or answers garbage, fails the
// sync with what it said; nothing is applied.
func TestHelperErrors(t *testing.T) {
	for _, tc := range []struct{ script, want string }{
		{"echo boom >&2; exit 3", "git fetch helper: boom"},
		{"exit 3", "git fetch helper: exit status 3"},
		{"echo not-json", "git fetch helper: bad answer"},
		{`echo '{"error":"ls-remote x: refused"}'`, "ls-remote x: refused"},
	} {
		cfg := Config{URL: "git://127.0.0.1:1/r.git", Dir: filepath.Join(t.TempDir(), "git"), Helper: []string{"sh", "-c", "cat >/dev/null; " + tc.script}}
		if err := cfg.Check(); err != nil {
			t.Fatal(err)
		}
		s := New(cfg, logr.Discard(), nil, nil)
		if err := s.Open(); err != nil {
			t.Fatal(err)
		}
		err := s.Sync(t.Context())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.script, err, tc.want)
		}
		if st := s.Status(); st.Commit != "" || st.Failures != 1 {
			t.Errorf("%s: status %+v", tc.script, st)
		}
	}
}
