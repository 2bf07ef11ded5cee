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
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-logr/logr"
)

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
	cfg := Config{URL: url, Paths: paths, Dir: filepath.Join(stateDir, "git")}
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
	err := s.Sync(ctx)
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
	for url, want := range map[string]string{
		"ssh://git@example.com/r.git":   "SSH is not supported yet",
		"git@example.com:r.git":         "SSH (scp-like)",
		"https://u:p@example.com/r.git": "not in the URL",
		"ftp://example.com/r":           "not supported",
		"https://example.com/r.git":     "",
	} {
		c := Config{URL: url, Dir: "/x"}
		err := c.Check()
		if (want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("%s: error %v, want %q", url, err, want)
		}
		if err != nil && strings.Contains(err.Error(), ":p@") {
			t.Errorf("%s: the password shows: %v", url, err)
		}
	}
}

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
		cfg := Config{URL: url, Dir: filepath.Join(t.TempDir(), "git"), Timeout: time.Second}
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
