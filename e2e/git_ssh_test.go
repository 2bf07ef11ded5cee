package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warren/reconciler/e2e/testenv"
)

// TestGitSSH follows a repository served over SSH by Debian's sshd on
// 127.0.0.1 (ssh://root@127.0.0.1:PORT/abs/path/fleet.git, a key of the
// test's own): with the server's key in --git-known-hosts a pushed task
// runs; with an empty known_hosts the sync fails with the host's
// fingerprint on the status and nothing runs, until the key is added to
// the file; with --git-accept-new-host-key the tree is applied and the
// file gains the key.
func TestGitSSH(t *testing.T) {
	requireEnv(t)
	requireGit(t)
	sshd := testenv.StartSSHD(t)
	repo := newGitRepo(t)
	first := repo.push(map[string]string{"web.yaml": testenv.Manifest("web")})
	url := sshd.URL(filepath.Join(repo.base, "fleet.git"))
	sshFlags := func(knownHosts string) []string {
		return []string{"--git-ssh-key", sshd.ClientKey, "--git-known-hosts", knownHosts}
	}

	t.Run("known host", func(t *testing.T) {
		n := newNode(t, "e2e-gitssh-known")
		knownHosts := filepath.Join(t.TempDir(), "known_hosts")
		if err := os.WriteFile(knownHosts, []byte(sshd.KnownHostsLine+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		startGitReconciler(t, n.ns, url, sshFlags(knownHosts)...)
		n.waitRunning("web")
		if st, _ := sourceStatus(t, n.ns); st.Commit != first {
			t.Fatalf("source status %+v, want commit %s", st, first)
		}
		second := repo.push(map[string]string{"api.yaml": testenv.Manifest("api")})
		n.waitRunning("api")
		testenv.WaitFor(t, converge, "the pushed commit on the status", func() bool {
			st, _ := sourceStatus(t, n.ns)
			return st.Commit == second && st.LastError == ""
		})
		repo.push(map[string]string{"api.yaml": ""})
		n.waitGone("api")
	})

	t.Run("unknown host", func(t *testing.T) {
		n := newNode(t, "e2e-gitssh-unknown")
		knownHosts := filepath.Join(t.TempDir(), "known_hosts")
		if err := os.WriteFile(knownHosts, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		startGitReconciler(t, n.ns, url, sshFlags(knownHosts)...)
		var st gitSourceStatus
		testenv.WaitFor(t, converge, "the unknown host key on the status, retried", func() bool {
			st, _ = sourceStatus(t, n.ns)
			return st.Failures >= 2
		})
		for _, want := range []string{"host key of [127.0.0.1]:" + strings.TrimPrefix(sshd.Addr, "127.0.0.1:") + " unknown", "ssh-ed25519 " + sshd.Fingerprint, "ssh-keyscan -p"} {
			if !strings.Contains(st.LastError, want) {
				t.Fatalf("status error %q, want %q", st.LastError, want)
			}
		}
		t.Logf("status error: %s", st.LastError)
		if st.Commit != "" || len(n.containers("")) != 0 {
			t.Fatalf("something applied from an unknown host: commit %q, containers %v", st.Commit, n.containers(""))
		}
		if b, err := os.ReadFile(knownHosts); err != nil || len(b) != 0 {
			t.Fatalf("known_hosts written without --git-accept-new-host-key: %q %v", b, err)
		}

		// The key added as the error says: the file is read again at
		// the next sync.
		if err := os.WriteFile(knownHosts, []byte(sshd.KnownHostsLine+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		n.waitRunning("web")
	})

	t.Run("accept new host key", func(t *testing.T) {
		n := newNode(t, "e2e-gitssh-new")
		knownHosts := filepath.Join(t.TempDir(), "ssh", "known_hosts") // not there yet
		d := startGitReconciler(t, n.ns, url, append(sshFlags(knownHosts), "--git-accept-new-host-key")...)
		n.waitRunning("web")
		testenv.WaitFor(t, converge, "the commit on the status", func() bool {
			st, _ := sourceStatus(t, n.ns)
			return st.Commit != "" && st.LastError == ""
		})
		b, err := os.ReadFile(knownHosts)
		if err != nil || strings.TrimSpace(string(b)) != sshd.KnownHostsLine {
			t.Fatalf("known_hosts %q (%v), want the one line %q", b, err, sshd.KnownHostsLine)
		}
		d.WaitLog(sshd.Fingerprint, converge) // the added key is logged with its fingerprint
	})
}
