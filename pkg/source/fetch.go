package source

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/filesystem"
	"github.com/go-git/go-git/v5/storage/memory"
)

// HelperArg is the first argument of the helper process that runs one
// fetch ([HelperMain]); the reconciler's binary starts itself with it.
const HelperArg = "git-fetch"

// request is what the daemon asks of one fetch: the configuration and the
// applied tree, to compare the remote tip with.
type request struct {
	Config  Config `json:"config"`
	Applied meta   `json:"applied"`
}

// result is what one fetch did: nothing (the tip is the applied one), or a
// new tree written under Dir for the daemon to swap in.
type result struct {
	Changed bool   `json:"changed"`
	Tree    string `json:"tree,omitempty"` // relative to Dir
	Meta    meta   `json:"meta,omitzero"`
	Error   string `json:"error,omitempty"`
	// HostKeysAdded are the SSH host keys that --git-accept-new-host-key
	// added to known_hosts, also in a failed fetch: the daemon logs them.
	HostKeysAdded []addedHostKey `json:"hostKeysAdded,omitempty"`
}

// fetcher does the network and git part of a sync: ls-remote, the fetch,
// the generated tree. It runs in a helper process, so that a stuck
// connection ends with the process (go-git dials git:// and SSH without
// the context, and a blackholed address waits for the kernel's connect
// timeout), and so that what go-git allocates is returned to the system
// after each fetch instead of growing the daemon.
type fetcher struct {
	cfg  Config
	keys *keyring // of --git-verify, read at each fetch; nil without
}

// fetch runs one fetch: it writes a new tree only when the remote tip is
// not the applied one (or the URL, ref or paths changed).
func (s *fetcher) fetch(ctx context.Context, applied meta) (res result, err error) {
	auth, err := newAuth(s.cfg)
	if err != nil {
		return result{}, err
	}
	defer func() { res.HostKeysAdded = hostKeysAdded(auth) }()
	if s.keys, err = readKeyring(s.cfg.Verify); err != nil {
		return result{}, err
	}
	tip, refName, err := s.lsRemote(ctx, auth)
	if err != nil {
		return result{}, err
	}
	// A tree applied without verification is fetched again, and verified,
	// once --git-verify is set.
	if (applied.Verified || s.keys == nil) && applied.Tip == tip.String() && applied.URL == s.cfg.URL && applied.Ref == s.cfg.Ref && slices.Equal(applied.Paths, s.cfg.Paths) {
		return result{}, nil
	}
	tree, m, err := s.fetchTree(ctx, auth, tip, refName)
	if err != nil {
		return result{}, err
	}
	return result{Changed: true, Tree: tree, Meta: m}, nil
}

// HelperMain is the helper process: it reads a request as JSON on stdin,
// fetches, and writes the result as JSON on stdout. The daemon bounds it
// with --git-timeout by killing it.
func HelperMain(stdin io.Reader, stdout, stderr io.Writer) int {
	var req request
	if err := json.NewDecoder(stdin).Decode(&req); err != nil {
		fmt.Fprintln(stderr, "git-fetch: read the request:", err)
		return 2
	}
	f := &fetcher{cfg: req.Config}
	res, err := f.fetch(context.Background(), req.Applied)
	if err != nil {
		res = result{Error: err.Error(), HostKeysAdded: res.HostKeysAdded}
	}
	if err := json.NewEncoder(stdout).Encode(res); err != nil {
		fmt.Fprintln(stderr, "git-fetch: write the result:", err)
		return 1
	}
	return 0
}

// runHelper runs one fetch in the helper process cmd, killed when ctx
// ends (and when the daemon dies: the parent-death signal).
func runHelper(ctx context.Context, cmd []string, req request) (result, error) {
	in, err := json.Marshal(req)
	if err != nil {
		return result{}, err
	}
	c := exec.CommandContext(ctx, cmd[0], cmd[1:]...)
	c.Stdin = bytes.NewReader(in)
	var out, errOut bytes.Buffer
	c.Stdout = &out
	c.Stderr = &limitedBuffer{buf: &errOut, max: 4096}
	c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	c.WaitDelay = time.Second
	err = c.Run()
	if ctx.Err() != nil {
		return result{}, ctx.Err()
	}
	if err != nil {
		msg := strings.TrimSpace(errOut.String())
		if msg == "" {
			msg = err.Error()
		}
		return result{}, fmt.Errorf("git fetch helper: %s", msg)
	}
	var res result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		return result{}, fmt.Errorf("git fetch helper: bad answer: %w", err)
	}
	if res.Error != "" {
		return result{HostKeysAdded: res.HostKeysAdded}, errors.New(res.Error)
	}
	return res, nil
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	buf *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.buf.Len(); room > 0 {
		l.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// lsRemote returns the remote tip of the configured ref and its full name.
func (s *fetcher) lsRemote(ctx context.Context, auth transport.AuthMethod) (plumbing.Hash, string, error) {
	rem := git.NewRemote(memory.NewStorage(), &config.RemoteConfig{Name: "origin", URLs: []string{s.cfg.URL}})
	refs, err := rem.ListContext(ctx, &git.ListOptions{Auth: auth})
	if err != nil {
		return plumbing.ZeroHash, "", fmt.Errorf("ls-remote %s: %w", Redact(s.cfg.URL), s.explain(err, auth))
	}
	byName := map[plumbing.ReferenceName]*plumbing.Reference{}
	for _, r := range refs {
		byName[r.Name()] = r
	}
	ref := s.cfg.Ref
	if plumbing.IsHash(ref) && len(ref) == 40 {
		return plumbing.NewHash(ref), ref, nil
	}
	var names []plumbing.ReferenceName
	switch {
	case ref == "":
		head, ok := byName[plumbing.HEAD]
		if !ok {
			return plumbing.ZeroHash, "", fmt.Errorf("ls-remote %s: the remote has no HEAD; set --git-ref", Redact(s.cfg.URL))
		}
		if head.Type() == plumbing.HashReference {
			// No symref capability: name the branch at the same commit.
			for _, r := range refs {
				if r.Name().IsBranch() && r.Hash() == head.Hash() {
					return head.Hash(), r.Name().String(), nil
				}
			}
			return head.Hash(), "HEAD", nil
		}
		names = []plumbing.ReferenceName{head.Target()}
	case strings.HasPrefix(ref, "refs/"):
		names = []plumbing.ReferenceName{plumbing.ReferenceName(ref)}
	default:
		names = []plumbing.ReferenceName{plumbing.NewBranchReferenceName(ref), plumbing.NewTagReferenceName(ref)}
	}
	for _, n := range names {
		if r, ok := byName[n]; ok && r.Type() == plumbing.HashReference {
			return r.Hash(), n.String(), nil
		}
	}
	return plumbing.ZeroHash, "", fmt.Errorf("ls-remote %s: no branch or tag %q on the remote", Redact(s.cfg.URL), ref)
}

// explain turns go-git's auth errors into ones that say what to check.
// go-git reports an HTTP 401 as "authentication required" whether
// credentials were sent or not. Over SSH, the auth itself knows whether
// the host key or the client's key was refused.
func (s *fetcher) explain(err error, auth transport.AuthMethod) error {
	if a, ok := auth.(*sshAuth); ok {
		if why := a.explain(); why != nil {
			return why
		}
		return err
	}
	switch {
	case errors.Is(err, transport.ErrAuthenticationRequired) && auth == nil:
		return fmt.Errorf("authentication required: the server wants credentials (give --git-credentials FILE)")
	case errors.Is(err, transport.ErrAuthenticationRequired):
		return fmt.Errorf("authentication failed: the server refused the credentials of %s", s.cfg.Credentials)
	case errors.Is(err, transport.ErrAuthorizationFailed):
		return fmt.Errorf("authorization failed: the user of %s may not read this repository", s.cfg.Credentials)
	}
	return err
}

// fetchTree fetches tip (depth 1) into a fresh directory and writes the
// generated tree of its commit; it returns the tree's path relative to Dir.
func (s *fetcher) fetchTree(ctx context.Context, auth transport.AuthMethod, tip plumbing.Hash, refName string) (string, meta, error) {
	fetchDir, err := os.MkdirTemp(mkdir(filepath.Join(s.cfg.Dir, "fetch")), "repo-")
	if err != nil {
		return "", meta{}, fmt.Errorf("fetch: %w", err)
	}
	defer os.RemoveAll(fetchDir)
	st := filesystem.NewStorageWithOptions(newLimitFS(osfs.New(fetchDir), s.cfg.MaxSize), cache.NewObjectLRU(4<<20), filesystem.Options{})
	repo, err := git.Init(st, nil)
	if err != nil {
		return "", meta{}, fmt.Errorf("fetch: %w", err)
	}
	rem, err := repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{s.cfg.URL}})
	if err != nil {
		return "", meta{}, fmt.Errorf("fetch: %w", err)
	}
	// By name, as every server allows; a commit hash by itself needs a
	// server that lets clients fetch any reachable commit
	// (uploadpack.allowReachableSHA1InWant).
	const local = "refs/reconciler/target"
	want := refName // a hash when --git-ref is one
	err = rem.FetchContext(ctx, &git.FetchOptions{
		RefSpecs: []config.RefSpec{config.RefSpec(plus(want) + ":" + local)},
		Depth:    1, Auth: auth, Tags: git.NoTags,
	})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return "", meta{}, fmt.Errorf("fetch %s %s: %w", refName, tip.String()[:12], s.explain(err, auth))
	}
	if got, err := repo.Reference(local, false); err == nil && want != tip.String() {
		tip = got.Hash() // the ref moved since ls-remote: what was fetched is applied
	}
	commit, err := commitOf(repo, tip)
	if err != nil {
		return "", meta{}, fmt.Errorf("fetch %s %s: %w", refName, tip.String()[:12], err)
	}
	// Before anything of it is written: the tag's or commit's signature.
	signer, err := s.keys.verifyTip(repo, tip, commit)
	if err != nil {
		return "", meta{}, err
	}
	root, err := commit.Tree()
	if err != nil {
		return "", meta{}, fmt.Errorf("commit %s: %w", commit.Hash.String()[:12], err)
	}
	files, err := selectFiles(s.cfg.Paths, s.cfg.MaxSize, func(dir string) ([]entry, error) {
		t := root
		if dir != "." {
			if t, err = root.Tree(dir); err != nil {
				if errors.Is(err, object.ErrDirectoryNotFound) {
					return nil, errNoPath
				}
				return nil, err
			}
		}
		out := make([]entry, 0, len(t.Entries))
		for _, e := range t.Entries {
			x := entry{Name: e.Name, Regular: e.Mode == filemode.Regular || e.Mode == filemode.Executable}
			if x.Regular {
				if x.Size, err = t.Size(e.Name); err != nil {
					return nil, err
				}
			}
			out = append(out, x)
		}
		return out, nil
	})
	if err != nil {
		return "", meta{}, fmt.Errorf("commit %s: %w", commit.Hash.String()[:12], err)
	}
	m := meta{URL: s.cfg.URL, Ref: s.cfg.Ref, Paths: s.cfg.Paths, Tip: tip.String(), Commit: commit.Hash.String(), RefName: refName, AppliedAt: time.Now().UTC(),
		Committed: commit.Committer.When.UTC()}
	m.Signer, m.Verified = signer, s.keys != nil
	tree, err := s.writeTree(root, files, m)
	if err != nil {
		return "", meta{}, err
	}
	return tree, m, nil
}

// commitOf resolves h, a commit or an annotated tag, to its commit.
func commitOf(repo *git.Repository, h plumbing.Hash) (*object.Commit, error) {
	if tag, err := repo.TagObject(h); err == nil {
		return tag.Commit()
	}
	return repo.CommitObject(h)
}

func mkdir(dir string) string {
	_ = os.MkdirAll(dir, 0o700)
	return dir
}

// writeTree writes the generated directory of a commit (a fresh name under
// trees/) and returns its path relative to Dir.
func (s *fetcher) writeTree(root *object.Tree, files []selected, m meta) (string, error) {
	rel := filepath.Join("trees", fmt.Sprintf("%s-%d", m.Commit[:12], time.Now().UnixNano()))
	dir := filepath.Join(s.cfg.Dir, rel)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", fmt.Errorf("write tree: %w", err)
	}
	fail := func(err error) (string, error) {
		_ = os.RemoveAll(dir)
		return "", fmt.Errorf("write tree: %w", err)
	}
	for _, f := range files {
		file, err := root.File(f.From)
		if err != nil {
			return fail(err)
		}
		r, err := file.Reader()
		if err != nil {
			return fail(err)
		}
		err = writeFile(filepath.Join(dir, f.Name), io.LimitReader(r, f.Size))
		r.Close()
		if err != nil {
			return fail(err)
		}
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	if err := writeFile(filepath.Join(dir, metaFile), strings.NewReader(string(b)+"\n")); err != nil {
		return fail(err)
	}
	if err := syncDir(dir); err != nil {
		return fail(err)
	}
	return rel, nil
}

func writeFile(path string, r io.Reader) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// plus is the source of a forced refspec: a ref name with "+", a hash
// without (go-git refuses "+HASH").
func plus(src string) string {
	if plumbing.IsHash(src) {
		return src
	}
	return "+" + src
}
