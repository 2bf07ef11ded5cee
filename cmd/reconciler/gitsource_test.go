package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/warren/reconciler/pkg/source"
)

func TestRunGitFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--git", "https://example.com/r.git", "--manifests", "/srv/m"}, "--git and --manifests exclude each other"},
		{[]string{"--git-ref", "main"}, "need --git"},
		{[]string{"--git", "ssh://git@example.com/r.git"}, "needs --git-ssh-key FILE"},
		{[]string{"--git-ssh-key", "/k", "--git-accept-new-host-key"}, "--git-ssh-key, --git-known-hosts and --git-accept-new-host-key need --git"},
		{[]string{"--git", "https://example.com/r.git", "--git-ssh-key", "/k"}, "only SSH URLs take a key"},
		{[]string{"--git", "https://example.com/r.git", "--git-path", "nodes/{{zone}}"}, "unknown placeholder"},
		{[]string{"--git", "https://example.com/r.git", "--git-interval", "-1s"}, "--git-interval must be positive"},
		{[]string{"--git", "https://example.com/r.git", "--git-max-size", "lots"}, "--git-max-size"},
	} {
		var stdout, stderr bytes.Buffer
		code := runMain(append([]string{"run", "--state-dir", t.TempDir()}, tc.args...), &stdout, &stderr)
		if code != exitUsage || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("run %q: exit %d, %q; want %d and %q", tc.args, code, stderr.String(), exitUsage, tc.want)
		}
	}
}

func TestPrintSource(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	var b bytes.Buffer
	printSource(&b, &source.Status{
		URL: "https://example.com/r.git", Paths: []string{"common", "nodes/n1"},
		Commit: "3f2a", RefName: "refs/heads/main", AppliedAt: now.Add(-2 * time.Minute),
		LastFetch: now.Add(-5 * time.Second), LastError: "ls-remote: down", Failures: 3,
	}, now)
	want := `
git: https://example.com/r.git HEAD, paths common,nodes/n1
  applied: 3f2a (refs/heads/main), 2m0s ago
  last fetch: 5s ago, failed (3 in a row; the applied tree stays): ls-remote: down
`
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
}
