package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/warren/reconciler/e2e/testenv"
)

// verifyStatus is the part of the source status that --git-verify adds.
type verifyStatus struct {
	Commit    string `json:"commit"`
	Signer    string `json:"signer"`
	Verified  bool   `json:"verified"`
	LastError string `json:"lastError"`
	Failures  int    `json:"failures"`
}

func verifiedStatus(t *testing.T, ns string) verifyStatus {
	t.Helper()
	out, err := exec.Command(env.bin, "status", "-o", "json", "--state-dir", stateDir(ns)).Output()
	if err != nil {
		return verifyStatus{}
	}
	var st struct {
		Source *verifyStatus `json:"source"`
	}
	if err := json.Unmarshal(out, &st); err != nil || st.Source == nil {
		return verifyStatus{}
	}
	return *st.Source
}

// sshKeygen makes an ed25519 key pair with ssh-keygen; it returns the
// private key's path and the public key's line.
func sshKeygen(t *testing.T, dir, name string) (string, string) {
	t.Helper()
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		if testenv.CI() {
			t.Fatal("ssh-keygen is missing (make deps installs it)")
		}
		t.Skip("ssh-keygen is missing and CI is not true (make deps installs it)")
	}
	key := filepath.Join(dir, name)
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	return key, strings.TrimSpace(string(pub))
}

// gitRaw runs git in dir with stdin, returning its stdout untrimmed.
func (r *gitRepo) gitRaw(dir string, stdin []byte, args ...string) []byte {
	r.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+r.work)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// forge pushes a commit that carries signed's signature (header and
// all) over the tree of the work tree's HEAD: a signature of other
// content. It returns the forged commit.
func (r *gitRepo) forge(signed string) string {
	r.t.Helper()
	raw := r.gitRaw(r.work, nil, "cat-file", "commit", signed)
	tree := r.git(r.work, "rev-parse", "HEAD^{tree}")
	line, _, _ := bytes.Cut(raw, []byte("\n"))
	if !bytes.HasPrefix(line, []byte("tree ")) {
		r.t.Fatalf("commit %s starts with %q", signed, line)
	}
	forged := append([]byte("tree "+tree), raw[len(line):]...)
	h := strings.TrimSpace(string(r.gitRaw(r.work, forged, "hash-object", "-t", "commit", "-w", "--stdin")))
	r.git(r.work, "push", "-q", "-f", "origin", h+":refs/heads/main")
	return h
}

// pushPGP commits files in the work tree signed with the OpenPGP key e
// (go-git signs: no gpg needed) and pushes with git.
func (r *gitRepo) pushPGP(files map[string]string, e *openpgp.Entity) string {
	r.t.Helper()
	repo, err := git.PlainOpen(r.work)
	if err != nil {
		r.t.Fatal(err)
	}
	w, err := repo.Worktree()
	if err != nil {
		r.t.Fatal(err)
	}
	for p, c := range files {
		if err := os.WriteFile(filepath.Join(r.work, p), []byte(c), 0o644); err != nil {
			r.t.Fatal(err)
		}
		if _, err := w.Add(p); err != nil {
			r.t.Fatal(err)
		}
	}
	h, err := w.Commit("e2e openpgp", &git.CommitOptions{SignKey: e,
		Author: &object.Signature{Name: "e2e", Email: "e2e@example.com", When: time.Now()}})
	if err != nil {
		r.t.Fatal(err)
	}
	r.git(r.work, "push", "-q", "-f", "origin", "HEAD:main")
	return h.String()
}

// TestGitVerify runs the reconciler with --git-verify (an SSH
// allowed-signers file and an OpenPGP keyring) on a repository served by
// `git daemon`: commits signed with `git commit -S` (gpg.format=ssh) by an
// allowed key are applied; an unsigned one, one signed by a key not
// allowed and one whose signature is of other content are refused with
// the last good tree left running; a commit signed with an allowed
// OpenPGP key (made and signed in Go) is applied.
func TestGitVerify(t *testing.T) {
	n := newNode(t, "e2e-gitverify")
	repo := newGitRepo(t)
	keys := t.TempDir()
	alice, alicePub := sshKeygen(t, keys, "alice")
	mallory, _ := sshKeygen(t, keys, "mallory")
	signers := filepath.Join(keys, "allowed_signers")
	if err := os.WriteFile(signers, []byte("# who may change the fleet\nalice@example.com namespaces=\"git\" "+alicePub+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	carol, err := openpgp.NewEntity("Carol", "", "carol@example.com", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	var ring bytes.Buffer
	aw, err := armor.Encode(&ring, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := carol.Serialize(aw); err != nil {
		t.Fatal(err)
	}
	aw.Close()
	keyring := filepath.Join(keys, "keyring.asc")
	if err := os.WriteFile(keyring, ring.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	// Commits are signed as a user would: git commit -S with an SSH key.
	repo.git(repo.work, "config", "gpg.format", "ssh")
	repo.git(repo.work, "config", "user.signingkey", alice)
	repo.git(repo.work, "config", "commit.gpgsign", "true")
	first := repo.push(map[string]string{"web.yaml": testenv.Manifest("web")})
	srv := startGitDaemon(t, repo.base)
	startGitReconciler(t, n.ns, srv.url(), "--git-verify", signers, "--git-verify", keyring)

	n.waitRunning("web")
	testenv.WaitFor(t, converge, "the signed commit applied", func() bool {
		st := verifiedStatus(t, n.ns)
		return st.Commit == first && st.Verified && strings.HasPrefix(st.Signer, "ssh:alice@example.com SHA256:")
	})
	web, _ := n.running("web")

	// refused waits for commit to be refused with want on the status, over
	// a few syncs, while the last good tree keeps running.
	refused := func(commit, want string) {
		t.Helper()
		var st verifyStatus
		seen := -1 // the failures when the error was first seen
		testenv.WaitFor(t, converge, "commit "+commit[:12]+" refused", func() bool {
			st = verifiedStatus(t, n.ns)
			if !strings.Contains(st.LastError, want) {
				return false
			}
			if seen < 0 {
				seen = st.Failures
			}
			return st.Failures >= seen+2
		})
		if st.Commit != first || !st.Verified {
			t.Fatalf("status after a refused commit: %+v", st)
		}
		if now, ok := n.running("web"); !ok || now.ID != web.ID || now.Pid != web.Pid {
			t.Fatalf("web changed on a refused commit: %+v, was %+v", now, web)
		}
		if cs := n.containers("api"); len(cs) != 0 {
			t.Fatalf("api of a refused commit runs: %+v", cs)
		}
		t.Logf("refused: %s", st.LastError)
	}

	repo.git(repo.work, "config", "commit.gpgsign", "false")
	unsigned := repo.push(map[string]string{"api.yaml": testenv.Manifest("api")})
	refused(unsigned, "commit "+unsigned[:12]+" is not signed")

	repo.git(repo.work, "config", "commit.gpgsign", "true")
	repo.git(repo.work, "config", "user.signingkey", mallory)
	byMallory := repo.push(map[string]string{"api.yaml": testenv.Manifest("api") + "# mallory\n"})
	refused(byMallory, "commit "+byMallory[:12]+" is signed by an unknown key (SSH SHA256:")

	forged := repo.forge(first)
	refused(forged, "commit "+forged[:12]+" has a bad signature (SSH SHA256:")

	// `reconciler status` says why, under the source line.
	out, _ := exec.Command(env.bin, "status", "--state-dir", stateDir(n.ns)).CombinedOutput()
	if !strings.Contains(string(out), "signed by: ssh:alice@example.com SHA256:") || !strings.Contains(string(out), "has a bad signature") {
		t.Fatalf("reconciler status:\n%s", out)
	}

	// Signed by Alice again: applied, with the tree of Mallory's commit
	// under it (only the tip is verified).
	repo.git(repo.work, "config", "user.signingkey", alice)
	byAlice := repo.push(map[string]string{"db.yaml": testenv.Manifest("db")})
	n.waitRunning("db")
	n.waitRunning("api")
	testenv.WaitFor(t, converge, "Alice's commit on the status", func() bool {
		st := verifiedStatus(t, n.ns)
		return st.Commit == byAlice && st.LastError == "" && strings.HasPrefix(st.Signer, "ssh:alice@example.com ")
	})

	// Signed with an allowed OpenPGP key: applied.
	byCarol := repo.pushPGP(map[string]string{"cache.yaml": testenv.Manifest("cache")}, carol)
	n.waitRunning("cache")
	testenv.WaitFor(t, converge, "Carol's commit on the status", func() bool {
		st := verifiedStatus(t, n.ns)
		return st.Commit == byCarol && st.LastError == "" && strings.HasPrefix(st.Signer, "openpgp:Carol <carol@example.com> 0x")
	})
	if now, ok := n.running("web"); !ok || now.ID != web.ID {
		t.Fatalf("web replaced by commits that did not change it: %+v, was %+v", now, web)
	}
}
