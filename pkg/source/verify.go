package source

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/hiddeco/sshsig"
	"golang.org/x/crypto/ssh"
)

// sshNamespace is the namespace git signs commits and tags in
// (ssh-keygen -Y sign -n git).
const sshNamespace = "git"

// The kinds of a refused signature, wrapped in the error of the sync.
var (
	errUnsigned     = errors.New("is not signed")
	errUnknownKey   = errors.New("is signed by an unknown key")
	errBadSignature = errors.New("has a bad signature")
)

// keyring is what --git-verify allows: the OpenPGP keys and the SSH
// allowed signers of all its files, read again at each sync.
type keyring struct {
	pgp openpgp.EntityList
	ssh []allowedSigner
}

// allowedSigner is one line of an SSH allowed-signers file (ssh-keygen(1),
// ALLOWED SIGNERS).
type allowedSigner struct {
	principals string // as written: one or more, comma-separated
	key        ssh.PublicKey
	namespaces string    // a pattern list; "" is any namespace
	after      time.Time // valid-after; zero is unbounded
	before     time.Time // valid-before; zero is unbounded
	where      string    // FILE:LINE, for errors
}

// readKeyring reads the --git-verify files; each is an OpenPGP public
// keyring (armored or binary) or an SSH allowed-signers file, told apart
// by content. nil files is no verification (a nil keyring).
func readKeyring(files []string) (*keyring, error) {
	if len(files) == 0 {
		return nil, nil
	}
	k := &keyring{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("--git-verify: %w", err)
		}
		if err := k.add(f, b); err != nil {
			return nil, fmt.Errorf("--git-verify %w", err)
		}
	}
	return k, nil
}

// add parses one file's content into k; its errors name the file (and
// the line).
func (k *keyring) add(file string, b []byte) error {
	text := strings.TrimSpace(string(b))
	switch {
	case text == "":
		return fmt.Errorf("%s: no key (want an OpenPGP public keyring or an SSH allowed-signers file)", file)
	case strings.HasPrefix(text, "-----BEGIN PGP PRIVATE KEY BLOCK-----"):
		return fmt.Errorf("%s: an OpenPGP private key; give the public keys (gpg --export --armor)", file)
	case strings.HasPrefix(text, "-----BEGIN PGP"):
		return k.addArmoredPGP(file, text)
	case b[0]&0x80 != 0: // an OpenPGP packet tag: a binary keyring (gpg --export)
		ents, err := openpgp.ReadKeyRing(bytes.NewReader(b))
		if err != nil {
			return fmt.Errorf("%s: OpenPGP keyring: %w", file, err)
		}
		k.pgp = append(k.pgp, ents...)
		return nil
	}
	return k.addAllowedSigners(file, b)
}

// addArmoredPGP reads each armored public key block of text (a file may
// hold several, one after the other).
func (k *keyring) addArmoredPGP(file, text string) error {
	const begin = "-----BEGIN PGP PUBLIC KEY BLOCK-----"
	line := 1
	for len(text) > 0 {
		start := strings.Index(text, begin)
		if start < 0 {
			if strings.TrimSpace(text) != "" {
				return fmt.Errorf("%s:%d: not an OpenPGP public key block", file, line)
			}
			break
		}
		if strings.TrimSpace(text[:start]) != "" {
			return fmt.Errorf("%s:%d: not an OpenPGP public key block", file, line)
		}
		line += strings.Count(text[:start], "\n")
		next := strings.Index(text[start+len(begin):], begin)
		block := text[start:]
		if next >= 0 {
			block = text[start : start+len(begin)+next]
		}
		ents, err := openpgp.ReadArmoredKeyRing(strings.NewReader(block))
		if err != nil {
			return fmt.Errorf("%s:%d: OpenPGP public key block: %w", file, line, err)
		}
		k.pgp = append(k.pgp, ents...)
		line += strings.Count(block, "\n")
		text = text[start+len(block):]
	}
	return nil
}

// addAllowedSigners reads an allowed-signers file as ssh-keygen -Y verify
// does: "principals [options] keytype base64key [comment]" per line,
// blank lines and # comments skipped. Options: namespaces="..." (a
// pattern list), valid-after="..." and valid-before="..." (checked against
// the time of the commit or tag, as git does). cert-authority is refused:
// certificates are not supported.
func (k *keyring) addAllowedSigners(file string, b []byte) error {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	n, added := 0, 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		where := fmt.Sprintf("%s:%d", file, n)
		s, err := parseAllowedSigner(line)
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		s.where = where
		k.ssh = append(k.ssh, s)
		added++
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s:%d: %w", file, n+1, err)
	}
	if added == 0 {
		return fmt.Errorf("%s: no key (want an OpenPGP public keyring or an SSH allowed-signers file)", file)
	}
	return nil
}

func parseAllowedSigner(line string) (allowedSigner, error) {
	var s allowedSigner
	// The principals: one word, or a quoted string.
	var rest string
	if line[0] == '"' {
		end := strings.IndexByte(line[1:], '"')
		if end < 0 {
			return s, errors.New("allowed signers: unterminated quote in the principals")
		}
		s.principals, rest = line[1:1+end], line[2+end:]
	} else {
		i := strings.IndexAny(line, " \t")
		if i < 0 {
			return s, errors.New("allowed signers: want principals [options] keytype base64-key")
		}
		s.principals, rest = line[:i], line[i:]
	}
	rest = strings.TrimSpace(rest)
	if s.principals == "" || rest == "" {
		return s, errors.New("allowed signers: want principals [options] keytype base64-key")
	}
	key, _, options, _, err := ssh.ParseAuthorizedKey([]byte(rest))
	if err != nil {
		return s, fmt.Errorf("allowed signers: not a public key after the principals %q: %w", s.principals, err)
	}
	if _, ok := key.(*ssh.Certificate); ok {
		return s, errors.New("allowed signers: a certificate as a key; list the signing key itself")
	}
	s.key = key
	for _, o := range options {
		name, value, hasValue := strings.Cut(o, "=")
		if hasValue {
			if len(value) < 2 || value[0] != '"' || value[len(value)-1] != '"' {
				return s, fmt.Errorf("allowed signers: option %s: the value must be quoted", name)
			}
			value = value[1 : len(value)-1]
		}
		switch strings.ToLower(name) {
		case "cert-authority":
			return s, errors.New("allowed signers: cert-authority is not supported (list the signing keys themselves)")
		case "namespaces":
			s.namespaces = value
		case "valid-after", "valid-before":
			t, err := parseSignerTime(value)
			if err != nil {
				return s, fmt.Errorf("allowed signers: option %s: %w", name, err)
			}
			if strings.ToLower(name) == "valid-after" {
				s.after = t
			} else {
				s.before = t
			}
		default:
			return s, fmt.Errorf("allowed signers: unsupported option %q", name)
		}
	}
	return s, nil
}

// parseSignerTime reads a time of valid-after and valid-before:
// YYYYMMDD, YYYYMMDDHHMM or YYYYMMDDHHMMSS, in UTC with a trailing Z, else
// in the local time zone (ssh-keygen(1)).
func parseSignerTime(v string) (time.Time, error) {
	loc := time.Local
	if strings.HasSuffix(v, "Z") || strings.HasSuffix(v, "z") {
		loc, v = time.UTC, v[:len(v)-1]
	}
	for _, layout := range []string{"20060102", "200601021504", "20060102150405"} {
		if len(v) == len(layout) {
			if t, err := time.ParseInLocation(layout, v, loc); err == nil {
				return t, nil
			}
		}
	}
	return time.Time{}, fmt.Errorf("%q is not YYYYMMDD[Z], YYYYMMDDHHMM[Z] or YYYYMMDDHHMMSS[Z]", v)
}

// verifyTip checks the signature of what the ref names: the annotated tag
// tip when the ref is one, else commit. It returns the signer, "" when
// k is nil (no --git-verify).
func (k *keyring) verifyTip(repo *git.Repository, tip plumbing.Hash, commit *object.Commit) (string, error) {
	if k == nil {
		return "", nil
	}
	if tag, err := repo.TagObject(tip); err == nil {
		return k.verifyTag(tag)
	}
	return k.verifyCommit(commit)
}

func (k *keyring) verifyCommit(c *object.Commit) (string, error) {
	payload, err := encodeWithoutSignature(c.EncodeWithoutSignature)
	if err != nil {
		return "", fmt.Errorf("commit %s: %w", c.Hash.String()[:12], err)
	}
	return k.verify("commit "+c.Hash.String()[:12], c.PGPSignature, payload, c.Committer.When)
}

func (k *keyring) verifyTag(t *object.Tag) (string, error) {
	payload, err := encodeWithoutSignature(t.EncodeWithoutSignature)
	if err != nil {
		return "", fmt.Errorf("tag %s: %w", t.Name, err)
	}
	return k.verify(fmt.Sprintf("tag %s (%s)", t.Name, t.Hash.String()[:12]), t.PGPSignature, payload, t.Tagger.When)
}

// encodeWithoutSignature is the signed payload of a commit or tag: the
// object as stored, without its signature.
func encodeWithoutSignature(encode func(plumbing.EncodedObject) error) ([]byte, error) {
	o := &plumbing.MemoryObject{}
	if err := encode(o); err != nil {
		return nil, err
	}
	r, err := o.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// verify checks signature (an armored OpenPGP or SSH signature) of
// payload, the object what made at when, against k.
func (k *keyring) verify(what, signature string, payload []byte, when time.Time) (string, error) {
	sig := strings.TrimSpace(signature)
	if sig == "" {
		return "", fmt.Errorf("%s %w", what, errUnsigned)
	}
	if n := strings.Count("\n"+sig, "\n-----BEGIN "); n > 1 {
		return "", fmt.Errorf("%s %w (%d signatures; one is verified)", what, errBadSignature, n)
	}
	switch {
	case strings.HasPrefix(sig, "-----BEGIN SSH SIGNATURE-----"):
		return k.verifySSH(what, sig, payload, when)
	case strings.HasPrefix(sig, "-----BEGIN PGP SIGNATURE-----"):
		return k.verifyPGP(what, sig, payload)
	}
	kind, _, _ := strings.Cut(strings.TrimPrefix(sig, "-----BEGIN "), "-----")
	return "", fmt.Errorf("%s %w (a %q signature: only OpenPGP and SSH signatures are verified)", what, errBadSignature, kind)
}

func (k *keyring) verifySSH(what, armored string, payload []byte, when time.Time) (string, error) {
	sig, err := sshsig.Unarmor([]byte(armored))
	if err != nil {
		return "", fmt.Errorf("%s %w (SSH signature: %v)", what, errBadSignature, err)
	}
	fp := ssh.FingerprintSHA256(sig.PublicKey)
	if sig.Namespace != sshNamespace {
		return "", fmt.Errorf("%s %w (SSH %s: namespace %q, want %q)", what, errBadSignature, fp, sig.Namespace, sshNamespace)
	}
	// The first allowed line of the key decides; a key listed only for
	// other namespaces or times is refused with why.
	var refused error
	for _, s := range k.ssh {
		if !bytes.Equal(s.key.Marshal(), sig.PublicKey.Marshal()) {
			continue
		}
		switch {
		case s.namespaces != "" && !matchPatternList(sshNamespace, s.namespaces):
			refused = fmt.Errorf("%s %w (SSH %s of %s is allowed for namespaces %q, not %q: %s)", what, errUnknownKey, fp, s.principals, s.namespaces, sshNamespace, s.where)
			continue
		case !s.after.IsZero() && when.Before(s.after):
			refused = fmt.Errorf("%s %w (SSH %s of %s is valid after %s, the object is of %s: %s)", what, errUnknownKey, fp, s.principals, s.after.Format(time.RFC3339), when.Format(time.RFC3339), s.where)
			continue
		case !s.before.IsZero() && !when.Before(s.before):
			refused = fmt.Errorf("%s %w (SSH %s of %s is valid before %s, the object is of %s: %s)", what, errUnknownKey, fp, s.principals, s.before.Format(time.RFC3339), when.Format(time.RFC3339), s.where)
			continue
		}
		if err := sshsig.Verify(bytes.NewReader(payload), sig, s.key, sig.HashAlgorithm, sshNamespace); err != nil {
			return "", fmt.Errorf("%s %w (SSH %s of %s: %v)", what, errBadSignature, fp, s.principals, err)
		}
		return fmt.Sprintf("ssh:%s %s", s.principals, fp), nil
	}
	if refused != nil {
		return "", refused
	}
	return "", fmt.Errorf("%s %w (SSH %s)", what, errUnknownKey, fp)
}

func (k *keyring) verifyPGP(what, armored string, payload []byte) (string, error) {
	block, err := armor.Decode(strings.NewReader(armored))
	if err != nil {
		return "", fmt.Errorf("%s %w (OpenPGP signature: %v)", what, errBadSignature, err)
	}
	body, err := io.ReadAll(block.Body)
	if err != nil {
		return "", fmt.Errorf("%s %w (OpenPGP signature: %v)", what, errBadSignature, err)
	}
	var sigs []*packet.Signature
	for pr := packet.NewReader(bytes.NewReader(body)); ; {
		p, err := pr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", fmt.Errorf("%s %w (OpenPGP signature: %v)", what, errBadSignature, err)
		}
		sig, ok := p.(*packet.Signature)
		if !ok {
			return "", fmt.Errorf("%s %w (OpenPGP: not a signature packet)", what, errBadSignature)
		}
		sigs = append(sigs, sig)
	}
	if len(sigs) != 1 || sigs[0].IssuerKeyId == nil {
		return "", fmt.Errorf("%s %w (OpenPGP: want one signature that names its key, got %d)", what, errBadSignature, len(sigs))
	}
	keyID := fmt.Sprintf("0x%016X", *sigs[0].IssuerKeyId)
	ent, err := openpgp.CheckDetachedSignature(k.pgp, bytes.NewReader(payload), bytes.NewReader(body), nil)
	switch {
	case errors.Is(err, pgperrors.ErrUnknownIssuer):
		return "", fmt.Errorf("%s %w (OpenPGP key ID %s)", what, errUnknownKey, keyID)
	case err != nil:
		return "", fmt.Errorf("%s %w (OpenPGP key ID %s: %v)", what, errBadSignature, keyID, err)
	}
	name := ""
	if id := ent.PrimaryIdentity(); id != nil {
		name = id.Name + " "
	}
	return fmt.Sprintf("openpgp:%s%s", name, keyID), nil
}

// matchPatternList reports whether s matches the comma-separated patterns
// (* and ? wildcards; a !pattern that matches refuses), as OpenSSH's
// match_pattern_list.
func matchPatternList(s, list string) bool {
	got := false
	for _, p := range strings.Split(list, ",") {
		p = strings.TrimSpace(p)
		neg := strings.HasPrefix(p, "!")
		if neg {
			p = p[1:]
		}
		if matchPattern(s, p) {
			if neg {
				return false
			}
			got = true
		}
	}
	return got
}

func matchPattern(s, p string) bool {
	for len(p) > 0 {
		switch p[0] {
		case '*':
			for i := 0; i <= len(s); i++ {
				if matchPattern(s[i:], p[1:]) {
					return true
				}
			}
			return false
		case '?':
			if s == "" {
				return false
			}
		default:
			if s == "" || s[0] != p[0] {
				return false
			}
		}
		s, p = s[1:], p[1:]
	}
	return s == ""
}
