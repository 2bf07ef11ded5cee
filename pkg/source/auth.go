package source

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"
	xknownhosts "golang.org/x/crypto/ssh/knownhosts"
)

// DefaultSSHUser is the user of an SSH URL that names none (the user of
// GitHub, GitLab, Gitea and most git hosts).
const DefaultSSHUser = "git"

// DefaultKnownHosts are the known_hosts files of an SSH URL when
// [Config.KnownHosts] is empty: ~/.ssh/known_hosts of the daemon's user
// (root's: /root/.ssh/known_hosts), where --git-accept-new-host-key
// writes, then the system-wide /etc/ssh/ssh_known_hosts, as OpenSSH reads
// them.
func DefaultKnownHosts() []string {
	home := ""
	if u, err := user.Current(); err == nil {
		home = u.HomeDir
	}
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	if home == "" {
		home = "/root"
	}
	return []string{filepath.Join(home, ".ssh", "known_hosts"), "/etc/ssh/ssh_known_hosts"}
}

// isSSHURL reports whether raw is an SSH URL: ssh://[USER@]HOST[:PORT]/PATH
// or scp-like [USER@]HOST:PATH (git's rule: no "/" before the first ":").
func isSSHURL(raw string) bool {
	if u, err := url.Parse(raw); err == nil && strings.Contains(raw, "://") {
		return u.Scheme == "ssh"
	}
	if strings.Contains(raw, "://") {
		return false
	}
	before, _, ok := strings.Cut(raw, ":")
	if !ok || before == "" || strings.ContainsAny(before, "/ \t") {
		return false
	}
	switch strings.ToLower(before) {
	case "https", "http", "git", "file", "ssh": // a scheme with its slashes missing
		return false
	}
	return true
}

// checkSSH checks the SSH part of c, whose URL is an SSH one, and fills in
// the default known_hosts files.
func (c *Config) checkSSH() error {
	ep, err := transport.NewEndpoint(c.URL)
	if err != nil || ep.Protocol != "ssh" || ep.Host == "" || strings.Trim(ep.Path, "/") == "" {
		return fmt.Errorf("--git %s: not an SSH URL (ssh://[USER@]HOST[:PORT]/PATH or [USER@]HOST:PATH)", Redact(c.URL))
	}
	if ep.Password != "" || strings.Contains(ep.User, ":") {
		return fmt.Errorf("--git %s: SSH authenticates with a key (--git-ssh-key FILE), not a password in the URL", Redact(c.URL))
	}
	if c.Credentials != "" {
		return errors.New("--git-credentials: only http(s) URLs take credentials; an SSH URL takes --git-ssh-key FILE")
	}
	if c.SSHKey == "" {
		return fmt.Errorf("--git %s: an SSH URL needs --git-ssh-key FILE, a private key without a passphrase (the daemon uses no ssh-agent)", Redact(c.URL))
	}
	if len(c.KnownHosts) == 0 {
		c.KnownHosts = DefaultKnownHosts()
	}
	for _, f := range c.KnownHosts {
		if f == "" {
			return errors.New("--git-known-hosts: an empty file name")
		}
	}
	return nil
}

// newAuth returns the auth of one sync, read from the files of cfg now
// (rotating them needs no restart): HTTP basic auth from
// Config.Credentials, an SSH key from Config.SSHKey, or nil.
func newAuth(cfg Config) (transport.AuthMethod, error) {
	if cfg.SSHKey == "" {
		return readCredentials(cfg.Credentials)
	}
	ep, err := transport.NewEndpoint(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("--git %s: %w", Redact(cfg.URL), err)
	}
	b, err := os.ReadFile(cfg.SSHKey)
	if err != nil {
		return nil, fmt.Errorf("read --git-ssh-key: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(b)
	var encrypted *ssh.PassphraseMissingError
	switch {
	case errors.As(err, &encrypted):
		return nil, fmt.Errorf("--git-ssh-key %s: the key is encrypted with a passphrase, which the daemon cannot type; give it a key without one (a deploy key made with ssh-keygen -N '')", cfg.SSHKey)
	case err != nil:
		return nil, fmt.Errorf("--git-ssh-key %s: not a private key (OpenSSH or PEM): %w", cfg.SSHKey, err)
	}
	port := ep.Port
	if port <= 0 {
		port = gitssh.DefaultPort
	}
	a := &sshAuth{
		user: ep.User, keyFile: cfg.SSHKey, signer: signer, timeout: cfg.Timeout,
		hostPort: net.JoinHostPort(strings.Trim(ep.Host, "[]"), strconv.Itoa(port)),
		files:    cfg.KnownHosts, acceptNew: cfg.AcceptNewHostKey,
	}
	if a.user == "" {
		a.user = DefaultSSHUser
	}
	return a, nil
}

// sshAuth is go-git's SSH auth for one sync: a key, and the host key
// checked against known_hosts files read again at each connection (so
// that a key added by the first connection of a sync is known to the
// next). It remembers how the last connection went, for [fetcher.explain].
type sshAuth struct {
	user      string
	keyFile   string
	signer    ssh.Signer
	timeout   time.Duration
	hostPort  string // as go-git dials it: HOST:PORT
	files     []string
	acceptNew bool

	db      *knownhosts.HostKeyDB
	hostErr error // the host key refused, or why it could not be checked
	hostOK  bool  // the host key was accepted
	offered bool  // the key was offered to the server
	signed  bool  // the server accepted the key: it was asked to sign
	added   []addedHostKey
}

var _ gitssh.AuthMethod = (*sshAuth)(nil)

func (a *sshAuth) Name() string { return gitssh.PublicKeysName }

func (a *sshAuth) String() string { return fmt.Sprintf("user: %s, key: %s", a.user, a.keyFile) }

// ClientConfig is called by go-git at each connection.
func (a *sshAuth) ClientConfig() (*ssh.ClientConfig, error) {
	a.hostErr, a.hostOK, a.offered, a.signed = nil, false, false, false
	db, err := loadKnownHosts(a.files)
	if err != nil {
		return nil, err
	}
	a.db = db
	signer := a.signer
	if as, ok := signer.(ssh.AlgorithmSigner); ok {
		signer = watchedSigner{AlgorithmSigner: as, signed: &a.signed}
	}
	return &ssh.ClientConfig{
		User: a.user,
		Auth: []ssh.AuthMethod{ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
			a.offered = true
			return []ssh.Signer{signer}, nil
		})},
		HostKeyCallback: a.checkHostKey,
		// The key types known for the host first (skeema/knownhosts), so
		// that a host with several keys shows the one in known_hosts;
		// nil (every type) for a host that is not known.
		HostKeyAlgorithms: db.HostKeyAlgorithms(a.hostPort),
		Timeout:           a.timeout,
	}, nil
}

// loadKnownHosts reads the known_hosts files that exist; none is an empty
// list, in which every host is unknown.
func loadKnownHosts(files []string) (*knownhosts.HostKeyDB, error) {
	var exist []string
	for _, f := range files {
		_, err := os.Stat(f)
		switch {
		case err == nil:
			exist = append(exist, f)
		case !errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("read known_hosts: %w", err)
		}
	}
	db, err := knownhosts.NewDB(exist...)
	if err != nil {
		return nil, fmt.Errorf("read known_hosts: %w", err)
	}
	return db, nil
}

// checkHostKey is the HostKeyCallback: the key must be the one of the
// known_hosts files for the host; with acceptNew, the key of a host they
// do not name is added to the first file and accepted.
func (a *sshAuth) checkHostKey(hostname string, remote net.Addr, key ssh.PublicKey) error {
	err := a.db.HostKeyCallback()(hostname, remote, key)
	var keyErr *xknownhosts.KeyError
	var revoked *xknownhosts.RevokedError
	switch {
	case err == nil:
		a.hostOK = true
		return nil
	case errors.As(err, &keyErr) && len(keyErr.Want) == 0 && a.acceptNew:
		added, err := appendKnownHost(a.files[0], hostname, key)
		if err != nil {
			a.hostErr = err
			return err
		}
		a.added = append(a.added, added)
		a.hostOK = true
		return nil
	case errors.As(err, &keyErr):
		a.hostErr = &hostKeyError{host: knownhosts.Normalize(hostname), key: key, files: a.files, want: keyErr.Want}
	case errors.As(err, &revoked):
		a.hostErr = &hostKeyError{host: knownhosts.Normalize(hostname), key: key, files: a.files, revoked: &revoked.Revoked}
	default:
		a.hostErr = fmt.Errorf("check the host key of %s: %w", knownhosts.Normalize(hostname), err)
	}
	return a.hostErr
}

// appendKnownHost adds the line of host and key to file (made, with its
// directory, if missing).
func appendKnownHost(file, hostname string, key ssh.PublicKey) (addedHostKey, error) {
	added := addedHostKey{Host: knownhosts.Normalize(hostname), Type: key.Type(), Fingerprint: ssh.FingerprintSHA256(key), File: file}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return added, fmt.Errorf("add the host key of %s: %w", added.Host, err)
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return added, fmt.Errorf("add the host key of %s: %w", added.Host, err)
	}
	_, err = io.WriteString(f, knownhosts.Line([]string{hostname}, key)+"\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return added, fmt.Errorf("add the host key of %s to %s: %w", added.Host, file, err)
	}
	return added, nil
}

// addedHostKey is a host key that --git-accept-new-host-key added to a
// known_hosts file; the helper process reports it to the daemon, which
// logs it.
type addedHostKey struct {
	Host        string `json:"host"` // as in known_hosts: HOST or [HOST]:PORT
	Type        string `json:"type"`
	Fingerprint string `json:"fingerprint"`
	File        string `json:"file"`
}

// hostKeysAdded returns what auth added to known_hosts during a sync.
func hostKeysAdded(auth transport.AuthMethod) []addedHostKey {
	if a, ok := auth.(*sshAuth); ok {
		return a.added
	}
	return nil
}

// logHostKeysAdded logs the host keys that a sync added to known_hosts.
func (s *Source) logHostKeysAdded(added []addedHostKey) {
	for _, k := range added {
		s.log.Info("git source: new SSH host key accepted and added to known_hosts (--git-accept-new-host-key)",
			"host", k.Host, "type", k.Type, "fingerprint", k.Fingerprint, "file", k.File)
	}
}

// hostKeyError is a host key that the known_hosts files refuse: unknown
// (want and revoked nil), another one than theirs (want), or revoked.
type hostKeyError struct {
	host    string // as in known_hosts: HOST or [HOST]:PORT
	key     ssh.PublicKey
	files   []string
	want    []xknownhosts.KnownKey
	revoked *xknownhosts.KnownKey
}

func (e *hostKeyError) Error() string {
	offered := e.key.Type() + " " + ssh.FingerprintSHA256(e.key)
	switch {
	case e.revoked != nil:
		return fmt.Sprintf("host key of %s refused: %s is marked @revoked in %s:%d", e.host, offered, e.revoked.Filename, e.revoked.Line)
	case len(e.want) > 0:
		var known []string
		for _, k := range e.want {
			known = append(known, fmt.Sprintf("%s %s (%s:%d)", k.Key.Type(), ssh.FingerprintSHA256(k.Key), k.Filename, k.Line))
		}
		return fmt.Sprintf("host key of %s changed: the server shows %s, known_hosts has %s; "+
			"this may be someone in the middle, nothing was fetched; if the server's key did change, remove the old line "+
			"(ssh-keygen -R '%s' -f %s), then add the new one: %s, and check that its fingerprint is %s",
			e.host, offered, strings.Join(known, ", "), e.host, e.want[0].Filename, e.keyscan(e.want[0].Filename), ssh.FingerprintSHA256(e.key))
	}
	return fmt.Sprintf("host key of %s unknown: the server shows %s, which is in none of the known_hosts files (%s); "+
		"add it: %s, and check that the fingerprint (ssh-keygen -lf %s) is %s as the server's admin says; "+
		"or start the reconciler once with --git-accept-new-host-key",
		e.host, offered, strings.Join(e.files, ", "), e.keyscan(e.files[0]), e.files[0], ssh.FingerprintSHA256(e.key))
}

// keyscan is the command that adds the host's keys to file.
func (e *hostKeyError) keyscan(file string) string {
	host, port, err := net.SplitHostPort(e.host)
	if err != nil {
		return fmt.Sprintf("ssh-keyscan %s >> %s", e.host, file)
	}
	return fmt.Sprintf("ssh-keyscan -p %s %s >> %s", port, strings.Trim(host, "[]"), file)
}

// explain says what went wrong on the last connection, or nil when it is
// not an SSH matter: a host key refused, or the key refused by the server.
func (a *sshAuth) explain() error {
	switch {
	case a.hostErr != nil:
		return a.hostErr
	case a.hostOK && a.offered && !a.signed:
		return fmt.Errorf("ssh: the server refused the key of --git-ssh-key %s (%s %s) for the user %q: add its public key (ssh-keygen -y -f %s) to the repository's deploy keys, or check the user in the URL",
			a.keyFile, a.signer.PublicKey().Type(), ssh.FingerprintSHA256(a.signer.PublicKey()), a.user, a.keyFile)
	}
	return nil
}

// watchedSigner notes that the server asked for a signature: it accepted
// the key (the client asks first whether a key would do, and signs only
// then).
type watchedSigner struct {
	ssh.AlgorithmSigner
	signed *bool
}

func (w watchedSigner) Sign(rand io.Reader, data []byte) (*ssh.Signature, error) {
	*w.signed = true
	return w.AlgorithmSigner.Sign(rand, data)
}

func (w watchedSigner) SignWithAlgorithm(rand io.Reader, data []byte, algorithm string) (*ssh.Signature, error) {
	*w.signed = true
	return w.AlgorithmSigner.SignWithAlgorithm(rand, data, algorithm)
}

// readCredentials reads the credentials file: "USER:PASSWORD" or a token
// alone, on its first line.
func readCredentials(file string) (transport.AuthMethod, error) {
	if file == "" {
		return nil, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read credentials: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	line = strings.TrimRight(line, "\r")
	if strings.TrimSpace(line) == "" {
		return nil, fmt.Errorf("read credentials: %s: the first line is empty (want USER:PASSWORD or a token)", file)
	}
	user, pass, ok := strings.Cut(line, ":")
	if !ok {
		return &githttp.BasicAuth{Username: TokenUser, Password: line}, nil
	}
	return &githttp.BasicAuth{Username: user, Password: pass}, nil
}
