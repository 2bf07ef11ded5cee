package e2e

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/warren/reconciler/e2e/testenv"
)

// ageFixture is an identity written to a file as age-keygen does, and a
// task that reads its secret db, age-encrypted to that identity.
type ageFixture struct {
	id       *age.X25519Identity
	identity string // the --age-identity file
}

func newAgeFixture(t *testing.T) ageFixture {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	f := ageFixture{id: id, identity: filepath.Join(t.TempDir(), "age.key")}
	key := "# public key: " + id.Recipient().String() + "\n" + id.String() + "\n"
	if err := os.WriteFile(f.identity, []byte(key), 0o400); err != nil {
		t.Fatal(err)
	}
	return f
}

// encrypt returns clear encrypted to the fixture's identity.
func (f ageFixture) encrypt(t *testing.T, clear string) string {
	t.Helper()
	var out bytes.Buffer
	w, err := age.Encrypt(&out, f.id.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(clear)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// ageTask is the manifest of a task whose secret db is the file db.age of
// the manifests directory, and that prints it at start.
func ageTask(name string) string {
	return testenv.Manifest(name, `user: "1234:2345"`, "secrets: [{name: db, file: db.age}]",
		testenv.EnvSpec("INSPECT", "/run/secrets/db"))
}

// secretThroughContainerd reads what task's running container has at
// /run/secrets/NAME: the source of the read-only bind mount that
// containerd's spec of the container has there.
func (n *node) secretThroughContainerd(task, name string) (content string, mode os.FileMode) {
	n.t.Helper()
	c, ok := n.running(task)
	if !ok {
		n.t.Fatalf("%s is not running", task)
	}
	ctx := context.Background()
	ctr, err := n.client.LoadContainer(ctx, c.ID)
	if err != nil {
		n.t.Fatal(err)
	}
	spec, err := ctr.Spec(ctx)
	if err != nil {
		n.t.Fatal(err)
	}
	for _, m := range spec.Mounts {
		if m.Destination != "/run/secrets/"+name {
			continue
		}
		if !slices.Contains(m.Options, "ro") {
			n.t.Errorf("secret %s mounted with %v, not read-only", name, m.Options)
		}
		fi, err := os.Stat(m.Source)
		if err != nil {
			n.t.Fatal(err)
		}
		b, err := os.ReadFile(m.Source)
		if err != nil {
			n.t.Fatal(err)
		}
		return string(b), fi.Mode().Perm()
	}
	n.t.Fatalf("the spec of %s mounts no /run/secrets/%s: %+v", c.ID, name, spec.Mounts)
	return "", 0
}

// TestAgeSecretFromGit: an age-encrypted secret committed beside a
// manifest reaches the task in clear (the task's process reads it from
// /run/secrets/db, mode 0400, its user's), decrypted with --age-identity;
// the generated tree holds only the ciphertext, and the clear text is in
// no label, no log of the daemon and no status. A commit that only moves
// the tree (another manifest) leaves the task's container as it is.
func TestAgeSecretFromGit(t *testing.T) {
	const clear = "age-e2e-db-password-4f1c"
	n := newNode(t, "e2e-age")
	f := newAgeFixture(t)
	ciphertext := f.encrypt(t, clear)
	repo := newGitRepo(t)
	repo.push(map[string]string{
		"common/app.yaml": ageTask("app"),
		"common/db.age":   ciphertext,
		"common/notes.md": "not copied\n",
	})
	srv := startGitDaemon(t, repo.base)
	d := startGitReconciler(t, n.ns, srv.url(), "--git-path", "common", "--age-identity", f.identity)

	n.waitRunning("app")
	content, mode := n.secretThroughContainerd("app", "db")
	if content != clear || mode != 0o400 {
		t.Fatalf("/run/secrets/db through containerd: %q mode %v, want %q mode 0400", content, mode, clear)
	}
	testenv.WaitFor(t, converge, "the task printing its secret", func() bool {
		out := reconcilerLogs(t, "app", "--state-dir", stateDir(n.ns))
		return strings.Contains(out, `inspect /run/secrets/db: mode=0400 uid=1234 gid=2345 content="`+clear+`"`)
	})

	// The generated tree: the manifest and the ciphertext, nothing else.
	tree := filepath.Join(stateDir(n.ns), "git", "current")
	if b, err := os.ReadFile(filepath.Join(tree, "db.age")); err != nil || string(b) != ciphertext {
		t.Fatalf("the tree's db.age: %v (equal to the ciphertext: %v)", err, string(b) == ciphertext)
	}
	if _, err := os.Stat(filepath.Join(tree, "notes.md")); !os.IsNotExist(err) {
		t.Errorf("notes.md in the generated tree: %v", err)
	}
	noClearText(t, filepath.Join(stateDir(n.ns), "git"), clear)
	c, _ := n.running("app")
	if strings.Contains(strings.Join(mapValues(c.Labels), " "), clear) {
		t.Error("the clear text is on a label")
	}

	// A new commit moves the tree to a new directory: the task's spec hash
	// is that of the name db.age, so its container stays.
	repo.push(map[string]string{"common/web.yaml": testenv.Manifest("web")})
	n.waitRunning("web")
	if now, ok := n.running("app"); !ok || now.ID != c.ID || now.Pid != c.Pid {
		t.Fatalf("app replaced by a commit that did not change it: %+v, was %+v", now, c)
	}
	d.Stop()
	if strings.Contains(d.Output(), clear) {
		t.Error("the clear text is in the daemon's log")
	}
}

// TestAgeSecretErrors: without --age-identity, or with an identity the
// file is not encrypted to, the task does not run and its status says
// why, naming the field; a local --manifests directory works like the
// git tree.
func TestAgeSecretErrors(t *testing.T) {
	const clear = "age-e2e-local-secret-9b2e"
	f := newAgeFixture(t)
	other := newAgeFixture(t)

	for _, tc := range []struct {
		name  string
		flags []string
		want  string
	}{
		{name: "no-identity", want: "spec.secrets[0].file: db.age is age-encrypted and the reconciler was started without --age-identity"},
		{name: "wrong-identity", flags: []string{"--age-identity", other.identity}, want: "spec.secrets[0].file: db.age: no identity of --age-identity " + other.identity + " can decrypt it"},
		{name: "local", flags: []string{"--age-identity", f.identity}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t, "e2e-age-"+tc.name)
			dir := t.TempDir()
			testenv.WriteFileMode(t, dir, "db.age", f.encrypt(t, clear), 0o644)
			testenv.WriteFile(t, dir, "app.yaml", ageTask("app"))
			d := startReconciler(t, n.ns, dir, tc.flags...)
			if tc.want == "" {
				n.waitRunning("app")
				if content, _ := n.secretThroughContainerd("app", "db"); content != clear {
					t.Fatalf("/run/secrets/db through containerd: %q, want %q", content, clear)
				}
				if b, _ := os.ReadFile(filepath.Join(dir, "db.age")); strings.Contains(string(b), clear) {
					t.Error("the manifests directory holds the clear text")
				}
				return
			}
			var st testenv.TaskStatus
			testenv.WaitFor(t, converge, "the error on the status", func() bool {
				var err error
				st, err = testenv.ReadTaskStatus(env.bin, stateDir(n.ns), "app")
				return err == nil && strings.Contains(st.Message, tc.want)
			})
			t.Logf("status: %s: %s", st.Phase, st.Message)
			if cs := n.containers("app"); len(cs) != 0 && cs[0].Status == "running" {
				t.Fatalf("app runs without its secret: %+v", cs)
			}
			d.Stop()
			if strings.Contains(d.Output(), clear) {
				t.Error("the clear text is in the daemon's log")
			}
		})
	}
}

// noClearText fails if a file under dir holds clear.
func noClearText(t *testing.T, dir, clear string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(clear)) {
			t.Errorf("%s holds the clear text", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func mapValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
