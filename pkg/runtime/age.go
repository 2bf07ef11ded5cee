package runtime

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/age"
	"filippo.io/age/armor"

	"github.com/warren/reconciler/pkg/desired"
)

// MaxAgeSecretSize bounds the clear text of one age-encrypted secret: 1 MiB.
// A file that decrypts to more is refused before anything is written, so a
// hostile file in a repository cannot fill the node's disk (a secret is a
// key, a password, a certificate: kilobytes).
const MaxAgeSecretSize = 1 << 20

// maxIdentityFile bounds what is read of the --age-identity file.
const maxIdentityFile = 1 << 20

// secretFiles says where the files of the tasks' secrets are read from and
// how: a file name of the manifests directory (desired.Secret's
// InManifestsDir) is resolved in manifestsDir, and a "*.age" file is
// decrypted with the identities of the file ageIdentity, read again at each
// staging (a rotated key needs no restart).
type secretFiles struct {
	manifestsDir string // "" : secrets may name host paths only
	ageIdentity  string // "" : no age-encrypted secret can be staged
}

// WithManifestsDir sets the manifests directory that the loader reads (the
// --manifests directory, or the link to the git source's generated tree):
// a secret whose file is a plain name ("db.age") names a file of it. It is
// resolved when the secret is staged, so the link the git source swaps is
// followed to the tree of the moment.
func WithManifestsDir(dir string) Option { return func(r *Runtime) { r.secrets.manifestsDir = dir } }

// WithAgeIdentity sets the file of age identities (X25519
// "AGE-SECRET-KEY-1..." lines, as age-keygen writes them; "#" comments and
// empty lines ignored) that decrypt the "*.age" secret files. It is read
// at each staging, never logged.
func WithAgeIdentity(file string) Option { return func(r *Runtime) { r.secrets.ageIdentity = file } }

// CheckAgeIdentity reads the age identities of file as staging will, so
// that the daemon can refuse a bad --age-identity at start. The file is
// read again at each staging all the same.
func CheckAgeIdentity(file string) error {
	_, err := secretFiles{ageIdentity: file}.identities()
	return err
}

// identities reads the age identities of the --age-identity file.
func (f secretFiles) identities() ([]age.Identity, error) {
	in, err := os.Open(f.ageIdentity)
	if err != nil {
		return nil, fmt.Errorf("read the age identities of --age-identity: %w", err)
	}
	defer in.Close()
	// age's parse errors name the line, never the key material.
	ids, err := age.ParseIdentities(io.LimitReader(in, maxIdentityFile))
	if err != nil {
		return nil, fmt.Errorf("read the age identities of --age-identity %s: %w", f.ageIdentity, err)
	}
	return ids, nil
}

// decrypt returns the clear text of the age-encrypted file (binary, or
// armored as `age -a` writes it) at path, read whole, at most
// MaxAgeSecretSize bytes. ids holds the identities of this staging: read
// at the first encrypted secret, kept for the others. Its errors say what
// went wrong without any of the clear text; field is the secret's.
func (f secretFiles) decrypt(field, name, path string, ids *[]age.Identity) ([]byte, error) {
	if f.ageIdentity == "" {
		return nil, &FieldError{Field: field, Reason: fmt.Sprintf("%s is age-encrypted and the reconciler was started without --age-identity: start it with --age-identity FILE (a file of the node's age identities) to decrypt it", name)}
	}
	if *ids == nil {
		read, err := f.identities()
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", field, name, err)
		}
		*ids = read
	}
	in, err := openSecret(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	defer in.Close()
	clearText, err := decryptAge(in, *ids, MaxAgeSecretSize)
	if err != nil {
		var nomatch *age.NoIdentityMatchError
		if errors.As(err, &nomatch) {
			return nil, fmt.Errorf("%s: %s: no identity of --age-identity %s can decrypt it (it is encrypted to other keys, of types %s): %w",
				field, name, f.ageIdentity, strings.Join(nomatch.StanzaTypes, ", "), err)
		}
		return nil, fmt.Errorf("%s: %s: %w", field, name, err)
	}
	return clearText, nil
}

// errAgeTooLarge is the error of a file whose clear text is over the limit.
var errAgeTooLarge = fmt.Errorf("decrypts to more than %d bytes (1 MiB), the limit of an age-encrypted secret", MaxAgeSecretSize)

// decryptAge decrypts the age file src with ids, reading at most max bytes
// of clear text. A file that is not age (nor armored age), is corrupt or
// truncated, or matches none of ids (an *age.NoIdentityMatchError) is an
// error, and nothing of its clear text is returned.
func decryptAge(src io.Reader, ids []age.Identity, max int64) ([]byte, error) {
	br := bufio.NewReader(src)
	var r io.Reader = br
	if start, _ := br.Peek(len(armor.Header)); string(start) == armor.Header {
		r = armor.NewReader(br)
	}
	d, err := age.Decrypt(r, ids...)
	if err != nil {
		var nomatch *age.NoIdentityMatchError
		if errors.As(err, &nomatch) {
			return nil, err
		}
		return nil, fmt.Errorf("not a valid age file: %w", err)
	}
	var out bytes.Buffer
	n, err := out.ReadFrom(io.LimitReader(d, max+1))
	switch {
	case err != nil:
		clear(out.Bytes())
		return nil, fmt.Errorf("not a valid age file (corrupt or truncated): %w", err)
	case n > max:
		clear(out.Bytes())
		return nil, errAgeTooLarge
	}
	return out.Bytes(), nil
}

// path returns the host path of secrets[i]'s file: the path as written, or,
// for a name of the manifests directory, that file, with the directory's
// link (the git source's) resolved once, so that the secret comes from one
// tree. A name that resolves out of the directory (a symbolic link in a
// local directory) is refused: only the directory itself is an allowed
// source of such names.
func (f secretFiles) path(i int, sec desired.Secret) (string, error) {
	field := fmt.Sprintf("spec.secrets[%d].file", i)
	if !sec.InManifestsDir() {
		return sec.File, nil
	}
	if !desired.SecretFileName(sec.File) {
		return "", &FieldError{Field: field, Reason: fmt.Sprintf("%q is neither an absolute path nor the name of a file of the manifests directory", sec.File)}
	}
	if f.manifestsDir == "" {
		return "", &FieldError{Field: field, Reason: fmt.Sprintf("%s names a file of the manifests directory, which the runtime was not given", sec.File)}
	}
	dir, err := filepath.EvalSymlinks(f.manifestsDir)
	if err != nil {
		return "", fmt.Errorf("%s: %s: manifests directory: %w", field, sec.File, err)
	}
	p, err := filepath.EvalSymlinks(filepath.Join(dir, sec.File))
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("%s: no file %s in the manifests directory %s (the git source brings only *.age files along)", field, sec.File, f.manifestsDir)
	}
	if err != nil {
		return "", fmt.Errorf("%s: read secret file: %w", field, err)
	}
	if !pathUnder(p, dir) {
		return "", fmt.Errorf("%s: %s is a link out of the manifests directory %s: a secret named by its file name must be a file of the directory", field, sec.File, f.manifestsDir)
	}
	return p, nil
}

// content returns the clear content of secrets[i]: its file, or the
// decryption of an age-encrypted one (see decrypt). The caller closes it;
// closing a decrypted content wipes its bytes.
func (f secretFiles) content(i int, sec desired.Secret, ids *[]age.Identity) (io.ReadCloser, error) {
	p, err := f.path(i, sec)
	if err != nil {
		return nil, err
	}
	if !sec.Encrypted() {
		in, err := openSecret(p)
		if err != nil {
			return nil, fmt.Errorf("spec.secrets[%d]: %w", i, err)
		}
		return in, nil
	}
	b, err := f.decrypt(fmt.Sprintf("spec.secrets[%d].file", i), sec.File, p, ids)
	if err != nil {
		return nil, err
	}
	return &wipeOnClose{Reader: bytes.NewReader(b), b: b}, nil
}

// check reads every secret's content as staging would (an encrypted one is
// decrypted and dropped), for Prepare: a spec whose secrets cannot be
// staged stops nothing.
func (f secretFiles) check(secrets []desired.Secret) error {
	var ids []age.Identity
	for i, sec := range secrets {
		c, err := f.content(i, sec, &ids)
		if err != nil {
			return err
		}
		c.Close()
	}
	return nil
}

// wipeOnClose is clear text in memory, zeroed when closed.
type wipeOnClose struct {
	*bytes.Reader
	b []byte
}

func (w *wipeOnClose) Close() error {
	clear(w.b)
	return nil
}
