package runtime

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"filippo.io/age"
	"filippo.io/age/armor"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/warren/reconciler/pkg/desired"
)

// newIdentity returns a fresh X25519 identity and writes it, as
// age-keygen does (a comment, then the key), to dir/name.
func newIdentity(t *testing.T, dir, name string) (*age.X25519Identity, string) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, name)
	content := "# created: by the test\n# public key: " + id.Recipient().String() + "\n" + id.String() + "\n"
	if err := os.WriteFile(file, []byte(content), 0o400); err != nil {
		t.Fatal(err)
	}
	return id, file
}

// encrypt returns clear encrypted to the recipients, armored if asked.
func encrypt(t *testing.T, clear []byte, armored bool, to ...age.Recipient) []byte {
	t.Helper()
	var out bytes.Buffer
	var dst io.Writer = &out
	var aw io.WriteCloser
	if armored {
		aw = armor.NewWriter(&out)
		dst = aw
	}
	w, err := age.Encrypt(dst, to...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(clear); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if aw != nil {
		if err := aw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return out.Bytes()
}

func TestDecryptAge(t *testing.T) {
	const secret = "p4ssw0rd-in-clear"
	id, _ := newIdentity(t, t.TempDir(), "key")
	other, _ := newIdentity(t, t.TempDir(), "other")
	binary := encrypt(t, []byte(secret), false, id.Recipient())
	pq, err := age.GenerateHybridIdentity() // AGE-SECRET-KEY-PQ-1...
	if err != nil {
		t.Fatal(err)
	}
	pqIDs, err := age.ParseIdentities(strings.NewReader(pq.String() + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	big := encrypt(t, bytes.Repeat([]byte("x"), 100), false, id.Recipient())
	for _, tc := range []struct {
		name string
		file []byte
		ids  []age.Identity
		max  int64
		want string // the clear text, or a part of the error
	}{
		{name: "binary", file: binary, ids: []age.Identity{id}, want: secret},
		{name: "armored", file: encrypt(t, []byte(secret), true, id.Recipient()), ids: []age.Identity{id}, want: secret},
		{name: "second identity matches", file: binary, ids: []age.Identity{other, id}, want: secret},
		{name: "post-quantum identity", file: encrypt(t, []byte(secret), false, pq.Recipient()), ids: pqIDs, want: secret},
		{name: "two recipients", file: encrypt(t, []byte(secret), false, other.Recipient(), id.Recipient()), ids: []age.Identity{id}, want: secret},
		{name: "empty clear text", file: encrypt(t, nil, false, id.Recipient()), ids: []age.Identity{id}, want: ""},
		{name: "at the limit", file: big, ids: []age.Identity{id}, max: 100, want: strings.Repeat("x", 100)},
		{name: "over the limit", file: big, ids: []age.Identity{id}, max: 99, want: "error: decrypts to more than 1048576 bytes (1 MiB)"},
		{name: "wrong identity", file: binary, ids: []age.Identity{other}, want: "error: did not match any of the recipients"},
		{name: "not age", file: []byte("db-password\n"), ids: []age.Identity{id}, want: "error: not a valid age file"},
		{name: "empty file", file: nil, ids: []age.Identity{id}, want: "error: not a valid age file"},
		{name: "truncated", file: binary[:len(binary)-5], ids: []age.Identity{id}, want: "error: not a valid age file (corrupt or truncated)"},
		{name: "payload flipped", file: flip(binary, len(binary)-3), ids: []age.Identity{id}, want: "error: not a valid age file (corrupt or truncated)"},
		{name: "header flipped", file: flip(binary, 40), ids: []age.Identity{id}, want: "error: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			max := tc.max
			if max == 0 {
				max = MaxAgeSecretSize
			}
			got, err := decryptAge(bytes.NewReader(tc.file), tc.ids, max)
			if want, ok := strings.CutPrefix(tc.want, "error: "); ok {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("error %v, want %q", err, want)
				}
				if got != nil || strings.Contains(err.Error(), secret) {
					t.Fatalf("clear text returned or in the error: %q, %v", got, err)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x01
	return c
}

// ageNode is a node with a manifests directory that is a link to a tree
// (as the git source's STATE_DIR/git/current), an identity file, and a
// secretFiles that reads there.
type ageNode struct {
	tree, link, identity, staged string
	id                           *age.X25519Identity
	files                        secretFiles
}

func newAgeNode(t *testing.T) *ageNode {
	t.Helper()
	base := t.TempDir()
	n := &ageNode{tree: filepath.Join(base, "trees", "c0ffee-1"), link: filepath.Join(base, "current"), staged: filepath.Join(base, "secrets", "web-1")}
	if err := os.MkdirAll(n.tree, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("trees", "c0ffee-1"), n.link); err != nil {
		t.Fatal(err)
	}
	n.id, n.identity = newIdentity(t, base, "age.key")
	n.files = secretFiles{manifestsDir: n.link, ageIdentity: n.identity}
	return n
}

func (n *ageNode) write(t *testing.T, name string, b []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(n.tree, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// stage runs withSecrets for secrets as the process user uid:gid.
func (n *ageNode) stage(t *testing.T, secrets []desired.Secret, files secretFiles) (*oci.Spec, error) {
	t.Helper()
	s := &oci.Spec{Process: &specs.Process{User: specs.User{UID: 1234, GID: 2345}}}
	return s, withSecrets(n.staged, secrets, files)(t.Context(), nil, nil, s)
}

// TestStageAgeSecret: an age-encrypted file of the manifests directory is
// staged decrypted, mode 0400, owned by the process's user, and bind
// mounted; the tree keeps only the ciphertext. The identity file is read
// at each staging: a rotated key needs no restart.
func TestStageAgeSecret(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("staging chowns the file to the task's user: needs root")
	}
	const secret = "db-password-clear"
	n := newAgeNode(t)
	ciphertext := encrypt(t, []byte(secret), false, n.id.Recipient())
	n.write(t, "db.age", ciphertext)
	n.write(t, "plain-token", []byte("token-clear"))
	secrets := []desired.Secret{{Name: "db", File: "db.age"}, {Name: "token", File: "plain-token"}}
	s, err := n.stage(t, secrets, n.files)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"db": secret, "token": "token-clear"} {
		p := filepath.Join(n.staged, name)
		b, err := os.ReadFile(p)
		if err != nil || string(b) != want {
			t.Fatalf("staged %s: %q, %v; want %q", name, b, err, want)
		}
		fi, _ := os.Stat(p)
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm() != 0o400 || st.Uid != 1234 || st.Gid != 2345 {
			t.Errorf("staged %s: mode %v owner %d:%d, want 0400 1234:2345", name, fi.Mode().Perm(), st.Uid, st.Gid)
		}
	}
	if len(s.Mounts) != 2 || s.Mounts[0].Destination != "/run/secrets/db" || s.Mounts[0].Source != filepath.Join(n.staged, "db") {
		t.Errorf("mounts %+v", s.Mounts)
	}
	if b, _ := os.ReadFile(filepath.Join(n.tree, "db.age")); !bytes.Equal(b, ciphertext) {
		t.Error("the tree's file changed")
	}
	entries, _ := os.ReadDir(n.tree)
	if len(entries) != 2 {
		t.Errorf("the tree holds %d files, want the 2 written (nothing decrypted into it)", len(entries))
	}

	// The key rotated: the file is encrypted to the new one, the identity
	// file replaced; the next staging reads it.
	rotated, _ := newIdentity(t, t.TempDir(), "new.key")
	n.write(t, "db.age", encrypt(t, []byte("rotated-clear"), false, rotated.Recipient()))
	if _, err := n.stage(t, secrets[:1], n.files); err == nil || !strings.Contains(err.Error(), "no identity of --age-identity") {
		t.Fatalf("with the old key: %v", err)
	}
	if err := os.Remove(n.identity); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n.identity, []byte(rotated.String()+"\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	if _, err := n.stage(t, secrets[:1], n.files); err != nil {
		t.Fatalf("with the rotated key: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(n.staged, "db")); string(b) != "rotated-clear" {
		t.Errorf("staged after the rotation: %q", b)
	}
}

// TestStageAgeSecretErrors: each way an encrypted secret cannot be staged
// is a clear error naming the secret's field, never showing the clear
// text, and leaves nothing staged.
func TestStageAgeSecretErrors(t *testing.T) {
	const secret = "db-password-clear"
	n := newAgeNode(t)
	other, _ := newIdentity(t, t.TempDir(), "other.key")
	n.write(t, "db.age", encrypt(t, []byte(secret), false, n.id.Recipient()))
	n.write(t, "other.age", encrypt(t, []byte(secret), false, other.Recipient()))
	n.write(t, "corrupt.age", []byte("age-encryption.org/v1\n-> X25519 garbage\n"))
	n.write(t, "big.age", encrypt(t, make([]byte, MaxAgeSecretSize+1), false, n.id.Recipient()))
	if err := os.Symlink("/etc/hostname", filepath.Join(n.tree, "escape.age")); err != nil {
		t.Fatal(err)
	}
	badKey := filepath.Join(t.TempDir(), "bad.key")
	if err := os.WriteFile(badKey, []byte("AGE-SECRET-KEY-1NOTAKEY\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		file      string
		files     secretFiles
		want      string
		permanent bool
	}{
		{name: "no --age-identity", file: "db.age", files: secretFiles{manifestsDir: n.link},
			want: "spec.secrets[0].file: db.age is age-encrypted and the reconciler was started without --age-identity: start it with --age-identity FILE", permanent: true},
		{name: "wrong identity", file: "other.age", files: n.files,
			want: "spec.secrets[0].file: other.age: no identity of --age-identity " + n.identity + " can decrypt it (it is encrypted to other keys, of types X25519)"},
		{name: "corrupt file", file: "corrupt.age", files: n.files, want: "spec.secrets[0].file: corrupt.age: not a valid age file"},
		{name: "over the size limit", file: "big.age", files: n.files, want: "spec.secrets[0].file: big.age: decrypts to more than 1048576 bytes (1 MiB)"},
		{name: "identity file missing", file: "db.age", files: secretFiles{manifestsDir: n.link, ageIdentity: "/nonexistent/age.key"},
			want: "spec.secrets[0].file: db.age: read the age identities of --age-identity: open /nonexistent/age.key"},
		{name: "identity file malformed", file: "db.age", files: secretFiles{manifestsDir: n.link, ageIdentity: badKey},
			want: "spec.secrets[0].file: db.age: read the age identities of --age-identity " + badKey + ": error at line 1"},
		{name: "missing in the directory", file: "gone.age", files: n.files,
			want: "spec.secrets[0].file: no file gone.age in the manifests directory " + n.link},
		{name: "a link out of the directory", file: "escape.age", files: n.files,
			want: "spec.secrets[0].file: escape.age is a link out of the manifests directory"},
		{name: "no manifests directory", file: "db.age", files: secretFiles{ageIdentity: n.identity},
			want: "spec.secrets[0].file: db.age names a file of the manifests directory, which the runtime was not given", permanent: true},
		{name: "not a plain name", file: "../db.age", files: n.files,
			want: `spec.secrets[0].file: "../db.age" is neither an absolute path nor the name of a file of the manifests directory`, permanent: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := n.stage(t, []desired.Secret{{Name: "db", File: tc.file}}, tc.files)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "AGE-SECRET-KEY") {
				t.Fatalf("the error shows a secret: %v", err)
			}
			var p interface{ Permanent() bool }
			if permanent := errors.As(err, &p) && p.Permanent(); permanent != tc.permanent {
				t.Errorf("permanent %v, want %v (a file or key fixed later must be retried)", permanent, tc.permanent)
			}
			if _, err := os.Stat(filepath.Join(n.staged, "db")); !os.IsNotExist(err) {
				t.Errorf("something staged: %v", err)
			}
			// Prepare says the same before anything is stopped.
			if err := tc.files.check([]desired.Secret{{Name: "db", File: tc.file}}); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("check: %v, want %q", err, tc.want)
			}
		})
	}
}
