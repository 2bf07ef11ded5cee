package source

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strings"
	"time"
)

// Defaults of [Config].
const (
	DefaultInterval = 30 * time.Second
	DefaultTimeout  = 2 * time.Minute
	// DefaultMaxSize bounds the bytes one fetch writes to disk (the pack,
	// its index and the refs) and, separately, the bytes of the manifests
	// flattened from it.
	DefaultMaxSize = 100 << 20
	// Jitter is the fraction by which each interval is moved, up or down,
	// at random, so that a fleet started at once does not fetch at once.
	Jitter = 0.1
	// TokenUser is the user name sent with a credentials file that holds a
	// token alone (GitHub's convention; GitLab and Gitea accept any name).
	TokenUser = "x-access-token"
)

// Config is what to sync and how.
type Config struct {
	URL string // the repository: https://, http://, git://, file:// or SSH (ssh://, scp-like)
	// Ref is a branch, a tag, a full ref name (refs/...) or a full commit
	// hash; "" is the remote's HEAD (its default branch).
	Ref string
	// Paths are directories inside the repository, after expansion
	// ([ExpandPaths]); "." is the root. Empty means the root.
	Paths []string
	// Interval is the time between two syncs (±Jitter); DefaultInterval if 0.
	Interval time.Duration
	// Timeout bounds one sync (ls-remote, fetch, flattening);
	// DefaultTimeout if 0.
	Timeout time.Duration
	// MaxSize bounds what one fetch writes; DefaultMaxSize if 0.
	MaxSize int64
	// Credentials is a file read at each sync: "USER:PASSWORD" on its first
	// line, or a token alone (sent with the user TokenUser). "" is no auth.
	Credentials string
	// SSHKey is the private key file of an SSH URL (OpenSSH or PEM, without
	// a passphrase), read at each sync; an SSH URL needs one.
	SSHKey string
	// KnownHosts are the known_hosts files that the SSH server's host key
	// is checked against, read at each connection; [DefaultKnownHosts] if
	// empty. A host they do not name, or name with another key, fails the
	// sync.
	KnownHosts []string
	// AcceptNewHostKey trusts on first use: the key of a host that
	// KnownHosts do not name is added to KnownHosts[0] and accepted. A
	// changed key is refused all the same.
	AcceptNewHostKey bool
	// Verify are the files of --git-verify, read at each sync: OpenPGP
	// public keyrings and SSH allowed-signers files. When set, the tip of
	// the ref (the tag object of an annotated tag, else the commit) must
	// carry a valid signature by one of their keys, or nothing is applied.
	// Empty is no verification.
	Verify []string
	// Dir is where the source keeps its trees: STATE_DIR/git. The loader
	// reads [Config.Link] = Dir/current.
	Dir string
	// Helper, when set, is the command of the helper process that runs
	// each fetch ([HelperMain]); the daemon sets it to itself with
	// [HelperArg]. Without it the fetch runs in this process, and a
	// connection stuck in a dial may outlive Timeout.
	Helper []string `json:"-"`
}

// Link is the symlink the loader reads: it points at the applied tree.
func (c Config) Link() string { return path.Join(c.Dir, "current") }

// Check validates c and fills in its defaults.
func (c *Config) Check() error {
	if c.URL == "" {
		return errors.New("--git: a repository URL is needed")
	}
	u, err := url.Parse(c.URL)
	switch {
	case isSSHURL(c.URL):
		if err := c.checkSSH(); err != nil {
			return err
		}
	case err != nil || u.Scheme == "":
		return fmt.Errorf("--git %q: not a URL with a scheme (https://, http://, git://, file:// or ssh://)", Redact(c.URL))
	case u.Scheme != "https" && u.Scheme != "http" && u.Scheme != "git" && u.Scheme != "file":
		return fmt.Errorf("--git %s: scheme %q not supported (use https://, http://, git://, file:// or ssh://)", Redact(c.URL), u.Scheme)
	case u.User != nil:
		return fmt.Errorf("--git %s: put credentials in --git-credentials FILE, not in the URL", Redact(c.URL))
	case c.Credentials != "" && u.Scheme != "https" && u.Scheme != "http":
		return fmt.Errorf("--git-credentials: only http(s) URLs take credentials, not %s://", u.Scheme)
	case c.SSHKey != "":
		return fmt.Errorf("--git-ssh-key: only SSH URLs take a key, not %s://", u.Scheme)
	case len(c.KnownHosts) > 0 || c.AcceptNewHostKey:
		return fmt.Errorf("--git-known-hosts and --git-accept-new-host-key: only for SSH URLs, not %s://", u.Scheme)
	}
	if strings.HasPrefix(c.Ref, "-") || strings.ContainsAny(c.Ref, " \t\n:~^?*[\\") || strings.Contains(c.Ref, "..") {
		return fmt.Errorf("--git-ref %q: not a branch, tag or commit hash", c.Ref)
	}
	if len(c.Paths) == 0 {
		c.Paths = []string{"."}
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Interval < 0 {
		return fmt.Errorf("--git-interval must be positive, got %s", c.Interval)
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxSize <= 0 {
		c.MaxSize = DefaultMaxSize
	}
	for _, f := range c.Verify {
		if f == "" {
			return errors.New("--git-verify: an empty file name")
		}
	}
	if c.Dir == "" {
		return errors.New("source: no directory")
	}
	return nil
}

var placeholder = regexp.MustCompile(`\{\{\s*([^}]*?)\s*\}\}`)

// ExpandPaths expands the placeholders of the --git-path values (each may
// be a comma-separated list) and cleans them: {{hostname}} is the node's
// host name. A path is relative to the repository's root; "", "." and "/"
// are the root. It refuses "..", unknown placeholders and a host name that
// is not one path element.
func ExpandPaths(values []string, hostname string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, v := range values {
		for _, p := range strings.Split(v, ",") {
			p = strings.TrimSpace(p)
			var bad error
			p = placeholder.ReplaceAllStringFunc(p, func(m string) string {
				name := placeholder.FindStringSubmatch(m)[1]
				switch name {
				case "hostname":
					if hostname == "" || hostname == "." || hostname == ".." || strings.ContainsAny(hostname, "/\\") {
						bad = fmt.Errorf("--git-path %q: host name %q is not a directory name", v, hostname)
					}
					return hostname
				}
				bad = fmt.Errorf("--git-path %q: unknown placeholder {{%s}} (known: {{hostname}})", v, name)
				return m
			})
			if bad != nil {
				return nil, bad
			}
			for _, el := range strings.Split(p, "/") {
				if el == ".." {
					return nil, fmt.Errorf("--git-path %q: .. is not allowed", v)
				}
			}
			p = path.Clean("/" + p)[1:]
			if p == "" {
				p = "."
			}
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	if len(out) == 0 {
		out = []string{"."}
	}
	return out, nil
}

// Redact removes a password from a URL, for logs and the status; the user
// of an SSH URL without a password stays (it is no secret).
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		if user, host, ok := strings.Cut(raw, "@"); ok && strings.Contains(user, ":") && isSSHURL(raw) {
			return "REDACTED@" + host // scp-like
		}
		return raw
	}
	if _, hasPassword := u.User.Password(); u.Scheme == "ssh" && !hasPassword {
		return raw
	}
	u.User = url.User("REDACTED")
	return u.String()
}
