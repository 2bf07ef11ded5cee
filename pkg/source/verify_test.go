package source

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-logr/logr"
	"github.com/hiddeco/sshsig"
	"golang.org/x/crypto/ssh"
)

// pgpKey is an OpenPGP key made by the test.
type pgpKey struct {
	ent *openpgp.Entity
	id  string // 0x and the signing key's ID
}

func newPGPKey(t *testing.T, name, email string) pgpKey {
	t.Helper()
	e, err := openpgp.NewEntity(name, "", email, &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	return pgpKey{ent: e, id: fmt.Sprintf("0x%016X", e.PrimaryKey.KeyId)}
}

// armoredPublic is the armored public keyring of keys.
func armoredPublic(t *testing.T, keys ...pgpKey) string {
	t.Helper()
	var b bytes.Buffer
	w, err := armor.Encode(&b, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if err := k.ent.Serialize(w); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	return b.String() + "\n"
}

// sshKey is an SSH ed25519 key made by the test; as a go-git Signer it
// signs as git does (ssh-keygen -Y sign -n NAMESPACE, SHA-512).
type sshKey struct {
	signer    ssh.Signer
	namespace string
}

func newSSHKey(t *testing.T) sshKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return sshKey{signer: s, namespace: sshNamespace}
}

func (k sshKey) Sign(message io.Reader) ([]byte, error) {
	sig, err := sshsig.Sign(message, k.signer, sshsig.HashSHA512, k.namespace)
	if err != nil {
		return nil, err
	}
	return sshsig.Armor(sig), nil
}

func (k sshKey) fingerprint() string { return ssh.FingerprintSHA256(k.signer.PublicKey()) }

// allowed is an allowed-signers line for k.
func (k sshKey) allowed(principals, options string) string {
	key := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k.signer.PublicKey())))
	if options != "" {
		return principals + " " + options + " " + key + " comment\n"
	}
	return principals + " " + key + "\n"
}

// commitSigned is r.commit with a signature: by an OpenPGP entity, a
// go-git Signer, or none.
func (r *repo) commitSigned(files map[string]string, pgp *openpgp.Entity, signer git.Signer) string {
	r.t.Helper()
	w, err := r.r.Worktree()
	if err != nil {
		r.t.Fatal(err)
	}
	for p, c := range files {
		full := filepath.Join(r.dir, p)
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
	h, err := w.Commit("signed test", &git.CommitOptions{
		Author:  &object.Signature{Name: "t", Email: "t@example.com", When: time.Now()},
		SignKey: pgp, Signer: signer, AllowEmptyCommits: true,
	})
	if err != nil {
		r.t.Fatal(err)
	}
	return h.String()
}

// tamper stores a copy of commit h whose message differs but whose
// signature is h's: a signature of other content.
func (r *repo) tamper(h string) plumbing.Hash {
	r.t.Helper()
	c, err := r.r.CommitObject(plumbing.NewHash(h))
	if err != nil {
		r.t.Fatal(err)
	}
	forged := *c
	forged.Message = "run the miner\n"
	o := r.r.Storer.NewEncodedObject()
	if err := forged.Encode(o); err != nil {
		r.t.Fatal(err)
	}
	nh, err := r.r.Storer.SetEncodedObject(o)
	if err != nil {
		r.t.Fatal(err)
	}
	return nh
}

// sshTag stores an annotated tag of target signed with k (go-git signs
// tags with OpenPGP only), as `git tag -s` with gpg.format=ssh does.
func (r *repo) sshTag(name string, target plumbing.Hash, k sshKey) plumbing.Hash {
	r.t.Helper()
	tag := &object.Tag{Name: name, Tagger: object.Signature{Name: "t", Email: "t@example.com", When: time.Now()},
		Message: "release\n", TargetType: plumbing.CommitObject, Target: target}
	payload, err := encodeWithoutSignature(tag.EncodeWithoutSignature)
	if err != nil {
		r.t.Fatal(err)
	}
	sig, err := k.Sign(bytes.NewReader(payload))
	if err != nil {
		r.t.Fatal(err)
	}
	tag.PGPSignature = string(sig)
	o := r.r.Storer.NewEncodedObject()
	if err := tag.Encode(o); err != nil {
		r.t.Fatal(err)
	}
	h, err := r.r.Storer.SetEncodedObject(o)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := r.r.Storer.SetReference(plumbing.NewHashReference(plumbing.NewTagReferenceName(name), h)); err != nil {
		r.t.Fatal(err)
	}
	return h
}

func writeKeyFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := writeFileString(p, content); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestVerify: what a keyring of one OpenPGP keyring file and one
// allowed-signers file accepts and refuses, for commits and tags.
func TestVerify(t *testing.T) {
	alice, mallory := newPGPKey(t, "Alice", "alice@example.com"), newPGPKey(t, "Mallory", "mallory@example.com")
	bob, eve := newSSHKey(t), newSSHKey(t)
	fileNS := bob
	fileNS.namespace = "file"
	keys, err := readKeyring([]string{
		writeKeyFile(t, "keyring.asc", armoredPublic(t, alice)),
		writeKeyFile(t, "allowed_signers", "# the fleet's signers\n\n"+bob.allowed("bob@example.com,robert@example.com", "")),
	})
	if err != nil {
		t.Fatal(err)
	}

	r := newRepo(t)
	commit := func(pgp *openpgp.Entity, signer git.Signer) plumbing.Hash {
		return plumbing.NewHash(r.commitSigned(map[string]string{"web.yaml": fmt.Sprint(time.Now().UnixNano())}, pgp, signer))
	}
	unsigned := commit(nil, nil)
	byAlice := commit(alice.ent, nil)
	byMallory := commit(mallory.ent, nil)
	byBob := commit(nil, bob)
	byEve := commit(nil, eve)
	bobOtherNS := commit(nil, fileNS)
	tamperedPGP := r.tamper(byAlice.String())
	tamperedSSH := r.tamper(byBob.String())
	pgpTag, err := r.r.CreateTag("v1", unsigned, &git.CreateTagOptions{Message: "v1", SignKey: alice.ent,
		Tagger: &object.Signature{Name: "t", Email: "t@example.com", When: time.Now()}})
	if err != nil {
		t.Fatal(err)
	}
	unsignedTag, err := r.r.CreateTag("v2", byAlice, &git.CreateTagOptions{Message: "v2",
		Tagger: &object.Signature{Name: "t", Email: "t@example.com", When: time.Now()}})
	if err != nil {
		t.Fatal(err)
	}
	sshTag := r.sshTag("v3", unsigned, bob)

	for _, tc := range []struct {
		name string
		tip  plumbing.Hash
		kind error  // nil: accepted
		want string // in the signer, or in the error
	}{
		{"unsigned", unsigned, errUnsigned, "commit " + unsigned.String()[:12] + " is not signed"},
		{"OpenPGP, allowed", byAlice, nil, "openpgp:Alice <alice@example.com> " + alice.id},
		{"OpenPGP, not in the ring", byMallory, errUnknownKey, "(OpenPGP key ID " + mallory.id + ")"},
		{"SSH, allowed", byBob, nil, "ssh:bob@example.com,robert@example.com " + bob.fingerprint()},
		{"SSH, not allowed", byEve, errUnknownKey, "(SSH " + eve.fingerprint() + ")"},
		{"SSH, namespace file", bobOtherNS, errBadSignature, `namespace "file", want "git"`},
		{"OpenPGP, tampered", tamperedPGP, errBadSignature, "has a bad signature (OpenPGP key ID " + alice.id},
		{"SSH, tampered", tamperedSSH, errBadSignature, "has a bad signature (SSH " + bob.fingerprint()},
		{"annotated tag signed with OpenPGP, of an unsigned commit", pgpTag.Hash(), nil, "openpgp:Alice <alice@example.com> " + alice.id},
		{"annotated tag signed with SSH, of an unsigned commit", sshTag, nil, "ssh:bob@example.com,robert@example.com"},
		{"unsigned annotated tag of a signed commit", unsignedTag.Hash(), errUnsigned, "tag v2 (" + unsignedTag.Hash().String()[:12] + ") is not signed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := commitOf(r.r, tc.tip)
			if err != nil {
				t.Fatal(err)
			}
			signer, err := keys.verifyTip(r.r, tc.tip, c)
			switch {
			case tc.kind == nil && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.kind == nil && !strings.HasPrefix(signer, tc.want):
				t.Fatalf("signer %q, want %q", signer, tc.want)
			case tc.kind != nil && (!errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want %q (%v)", err, tc.want, tc.kind)
			}
			t.Logf("%s: %q, %v", tc.name, signer, err)
		})
	}

	// No --git-verify: nothing is checked.
	var none *keyring
	if signer, err := none.verifyTip(r.r, unsigned, nil); signer != "" || err != nil {
		t.Fatalf("without a keyring: %q, %v", signer, err)
	}
}

// TestAllowedSignersOptions: namespaces, valid-after and valid-before of
// an allowed-signers line, checked against the commit's time.
func TestAllowedSignersOptions(t *testing.T) {
	bob := newSSHKey(t)
	r := newRepo(t)
	c, err := r.r.CommitObject(plumbing.NewHash(r.commitSigned(map[string]string{"web.yaml": "a"}, nil, bob)))
	if err != nil {
		t.Fatal(err)
	}
	past, future := time.Now().Add(-48*time.Hour).UTC().Format("20060102")+"Z", time.Now().Add(48*time.Hour).UTC().Format("200601021504")+"Z"
	for _, tc := range []struct {
		options string
		kind    error
		want    string
	}{
		{`namespaces="git"`, nil, "ssh:bob@example.com"},
		{`namespaces="file,g*"`, nil, "ssh:bob@example.com"},
		{`namespaces="file"`, errUnknownKey, `is allowed for namespaces "file", not "git"`},
		{`namespaces="*,!git"`, errUnknownKey, `is allowed for namespaces "*,!git"`},
		{`valid-after="` + past + `"`, nil, "ssh:bob@example.com"},
		{`valid-after="` + future + `",namespaces="git"`, errUnknownKey, "is valid after"},
		{`valid-before="` + past + `"`, errUnknownKey, "is valid before"},
		{`valid-before="` + future + `"`, nil, "ssh:bob@example.com"},
	} {
		k := &keyring{}
		if err := k.add("allowed_signers", []byte(bob.allowed("bob@example.com", tc.options))); err != nil {
			t.Fatalf("%s: %v", tc.options, err)
		}
		signer, err := k.verifyCommit(c)
		if (tc.kind == nil && (err != nil || !strings.HasPrefix(signer, tc.want))) ||
			(tc.kind != nil && (!errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.want))) {
			t.Errorf("%s: %q, %v; want %q", tc.options, signer, err, tc.want)
		}
	}
}

// TestKeyringFiles: files that do not parse are errors that name the file
// and the line; one file may hold several OpenPGP key blocks.
func TestKeyringFiles(t *testing.T) {
	alice, carol := newPGPKey(t, "Alice", "alice@example.com"), newPGPKey(t, "Carol", "carol@example.com")
	bob := newSSHKey(t)
	var private bytes.Buffer
	w, _ := armor.Encode(&private, openpgp.PrivateKeyType, nil)
	if err := alice.ent.SerializePrivate(w, nil); err != nil {
		t.Fatal(err)
	}
	w.Close()
	for _, tc := range []struct {
		name, content, want string
		pgp, ssh            int
	}{
		{"two key blocks", armoredPublic(t, alice) + armoredPublic(t, carol), "", 2, 0},
		{"one block, two keys", armoredPublic(t, alice, carol), "", 2, 0},
		{"allowed signers", "# c\n" + bob.allowed(`"bob b@example.com"`, `namespaces="git"`), "", 0, 1},
		{"empty", "\n\n", "F: no key", 0, 0},
		{"comments only", "# nobody\n", "F: no key", 0, 0},
		{"a bad key line", "# c\n" + bob.allowed("bob@example.com", "") + "carol@example.com ssh-ed25519 AAAAnotbase64\n", "F:3: allowed signers: not a public key", 0, 0},
		{"principals only", "bob@example.com\n", "F:1: allowed signers: want principals", 0, 0},
		{"cert-authority", bob.allowed("*@example.com", "cert-authority"), "F:1: allowed signers: cert-authority is not supported", 0, 0},
		{"an unknown option", bob.allowed("bob@example.com", `no-touch-required`), `F:1: allowed signers: unsupported option "no-touch-required"`, 0, 0},
		{"a bad time", bob.allowed("bob@example.com", `valid-after="yesterday"`), "F:1: allowed signers: option valid-after", 0, 0},
		{"a broken key block", "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nbm9wZQ==\n-----END PGP PUBLIC KEY BLOCK-----\n", "F:1: OpenPGP public key block", 0, 0},
		{"a second block broken", armoredPublic(t, alice) + "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nbm9wZQ==\n-----END PGP PUBLIC KEY BLOCK-----\n", "OpenPGP public key block", 0, 0},
		{"a private key", private.String(), "F: an OpenPGP private key", 0, 0},
	} {
		k := &keyring{}
		err := k.add("F", []byte(tc.content))
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
			continue
		}
		if err == nil && (len(k.pgp) != tc.pgp || len(k.ssh) != tc.ssh) {
			t.Errorf("%s: %d OpenPGP keys and %d SSH signers, want %d and %d", tc.name, len(k.pgp), len(k.ssh), tc.pgp, tc.ssh)
		}
	}
	if _, err := readKeyring([]string{filepath.Join(t.TempDir(), "missing")}); err == nil || !strings.Contains(err.Error(), "--git-verify: open") {
		t.Fatalf("a missing file: %v", err)
	}
}

// TestSyncVerifies: through the helper process, commits that fail
// verification are refused with the last good tree kept; the keyring is
// read again at each sync; a signed commit is applied with its signer on
// the status; a tree applied before --git-verify was set is verified
// again.
func TestSyncVerifies(t *testing.T) {
	bob, eve := newSSHKey(t), newSSHKey(t)
	r := newRepo(t)
	state := t.TempDir()
	url := "file://" + r.dir

	// Applied without --git-verify: unsigned, not verified.
	first := r.commit(map[string]string{"web.yaml": "a"})
	s := newSource(t, url, state)
	if err := s.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := s.Status(); st.Commit != first || st.Signer != "" || st.Verified {
		t.Fatalf("without --git-verify: status %+v", st)
	}

	// --git-verify set: the same tip is verified again, and refused.
	signers := writeKeyFile(t, "allowed_signers", bob.allowed("bob@example.com", `namespaces="git"`))
	verifying := func() *Source {
		cfg := Config{URL: url, Dir: filepath.Join(state, "git"), Helper: helper, Verify: []string{signers}}
		if err := cfg.Check(); err != nil {
			t.Fatal(err)
		}
		s := New(cfg, logr.Discard(), nil, nil)
		if err := s.Open(); err != nil {
			t.Fatal(err)
		}
		return s
	}
	s = verifying()
	target, _ := os.Readlink(s.cfg.Link())
	refused := func(want string) {
		t.Helper()
		err := s.Sync(t.Context())
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("error %v, want %q", err, want)
		}
		if now, _ := os.Readlink(s.cfg.Link()); now != target {
			t.Fatalf("the tree changed on a refused commit: %s, was %s", now, target)
		}
		if st := s.Status(); st.Commit != first || st.LastError != err.Error() {
			t.Fatalf("status %+v", st)
		}
		if got := linkFiles(t, s); !slices.Equal(got, []string{".source.json", "web.yaml"}) {
			t.Fatalf("tree %q", got)
		}
	}
	refused("commit " + first[:12] + " is not signed")

	// Unsigned, then signed by a key not allowed: refused.
	r.commit(map[string]string{"api.yaml": "b"})
	refused(" is not signed")
	byEve := r.commitSigned(map[string]string{"api.yaml": "c"}, nil, eve)
	refused("commit " + byEve[:12] + " is signed by an unknown key (SSH " + eve.fingerprint() + ")")

	// A keyring that does not parse: an error of the sync, nothing applied.
	if err := writeFileString(signers, "bob@example.com ssh-ed25519\n"); err != nil {
		t.Fatal(err)
	}
	refused(signers + ":1: allowed signers")

	// Eve allowed in the file, read again: her commit is applied.
	if err := writeFileString(signers, bob.allowed("bob@example.com", "")+eve.allowed("eve@example.com", "")); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := s.Status(); st.Commit != byEve || st.Signer != "ssh:eve@example.com "+eve.fingerprint() || !st.Verified || st.LastError != "" {
		t.Fatalf("status %+v", st)
	}
	if got := linkFiles(t, s); !slices.Equal(got, []string{".source.json", "api.yaml", "web.yaml"}) {
		t.Fatalf("tree %q", got)
	}

	// Signed by Bob: applied; the signer survives a restart.
	byBob := r.commitSigned(map[string]string{"db.yaml": "d"}, nil, bob)
	if err := s.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	s = verifying()
	if st := s.Status(); st.Commit != byBob || st.Signer != "ssh:bob@example.com "+bob.fingerprint() || !st.Verified {
		t.Fatalf("after a restart: status %+v", st)
	}
}
