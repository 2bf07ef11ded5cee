package source

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
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
	"github.com/go-logr/logr"
)

// metaFile is the dotfile (never read by the loader) in each generated
// tree that says where it comes from.
const metaFile = ".source.json"

// Status is what the source reports on /status.
type Status struct {
	URL   string   `json:"url"`
	Ref   string   `json:"ref"` // as configured; "" is the remote's HEAD
	Paths []string `json:"paths"`
	// Commit is the applied commit ("" before the first success), RefName
	// the ref it was the tip of, AppliedAt when it was applied.
	Commit    string    `json:"commit,omitempty"`
	RefName   string    `json:"refName,omitempty"`
	AppliedAt time.Time `json:"appliedAt,omitzero"`
	// LastFetch is when the last sync asked the remote, LastError its
	// error ("" when it succeeded); a failed sync applies nothing.
	LastFetch time.Time `json:"lastFetch,omitzero"`
	LastError string    `json:"lastError,omitempty"`
	// Failures counts the syncs that failed in a row.
	Failures int `json:"failures,omitempty"`
}

// meta is the content of metaFile.
type meta struct {
	URL       string    `json:"url"`
	Ref       string    `json:"ref"`
	Paths     []string  `json:"paths"`
	Tip       string    `json:"tip"` // the ref's hash on the remote (a tag object for an annotated tag)
	Commit    string    `json:"commit"`
	RefName   string    `json:"refName"`
	AppliedAt time.Time `json:"appliedAt"`
}

// Source syncs the repository of its Config into the directory its
// Config.Link points at.
type Source struct {
	cfg     Config
	log     logr.Logger
	metrics *Metrics
	changed func() // called after a swap

	mu      sync.Mutex
	status  Status
	applied meta // the tree in place; Tip "" when there is none

	trigger chan chan error
}

// New returns a source for cfg (checked with [Config.Check]). metrics may
// be nil; changed, if not nil, is called after each swap (the watcher sees
// the swap anyway; this makes it immediate).
func New(cfg Config, log logr.Logger, metrics *Metrics, changed func()) *Source {
	return &Source{
		cfg: cfg, log: log, metrics: metrics, changed: changed,
		status:  Status{URL: Redact(cfg.URL), Ref: cfg.Ref, Paths: cfg.Paths},
		trigger: make(chan chan error),
	}
}

// Status returns the source's status.
func (s *Source) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status
	st.Paths = slices.Clone(st.Paths)
	return st
}

// Open prepares the directory: it removes what an interrupted sync left
// and reads which tree is applied, so that a restarted daemon runs the last
// good tree at once, before it reaches the remote.
func (s *Source) Open() error {
	if err := os.MkdirAll(filepath.Join(s.cfg.Dir, "trees"), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", s.cfg.Dir, err)
	}
	if err := os.Chmod(s.cfg.Dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", s.cfg.Dir, err)
	}
	_ = os.RemoveAll(filepath.Join(s.cfg.Dir, "fetch"))
	target, err := os.Readlink(s.cfg.Link())
	if err == nil {
		var m meta
		b, rerr := os.ReadFile(filepath.Join(s.cfg.Dir, target, metaFile))
		if rerr == nil && json.Unmarshal(b, &m) == nil {
			s.setApplied(m)
			s.log.Info("git source: last applied tree in place", "commit", m.Commit, "ref", m.RefName, "appliedAt", m.AppliedAt)
		}
	}
	s.removeOldTrees(target)
	return nil
}

func (s *Source) setApplied(m meta) {
	s.mu.Lock()
	s.applied = m
	s.status.Commit, s.status.RefName, s.status.AppliedAt = m.Commit, m.RefName, m.AppliedAt
	s.mu.Unlock()
	if s.metrics != nil {
		s.metrics.commit.Reset()
		s.metrics.commit.WithLabelValues(m.Commit).Set(1)
	}
}

// removeOldTrees removes the trees but keep (a path relative to Dir).
func (s *Source) removeOldTrees(keep string) {
	dir := filepath.Join(s.cfg.Dir, "trees")
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		p := filepath.Join("trees", e.Name())
		if p != filepath.Clean(keep) {
			if err := os.RemoveAll(filepath.Join(s.cfg.Dir, p)); err != nil {
				s.log.Error(err, "git source: remove an old tree", "tree", p)
			}
		}
	}
	_ = os.Remove(s.cfg.Link() + ".tmp")
}

// Run syncs at once, then every interval (±Jitter) and whenever
// [Source.SyncNow] asks, until ctx is done. A failed sync is retried with
// an exponential backoff: from 1 s (or the interval, if shorter) doubling
// up to ten intervals, at most 5 minutes; a success resets it.
func (s *Source) Run(ctx context.Context) error {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = min(time.Second, s.cfg.Interval)
	bo.MaxInterval = min(5*time.Minute, 10*s.cfg.Interval)
	bo.MaxElapsedTime = 0
	bo.RandomizationFactor = Jitter
	bo.Reset()
	var reply chan error
	for {
		err := s.Sync(ctx)
		if reply != nil {
			reply <- err
			reply = nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		wait := jittered(s.cfg.Interval)
		if err != nil {
			wait = bo.NextBackOff()
		} else {
			bo.Reset()
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		case reply = <-s.trigger:
			t.Stop()
		}
	}
}

func jittered(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (1 + Jitter*(2*rand.Float64()-1)))
}

// SyncNow asks Run to sync at once and returns that sync's error. It
// waits for a sync under way to end first.
func (s *Source) SyncNow(ctx context.Context) error {
	reply := make(chan error, 1)
	select {
	case s.trigger <- reply:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Sync compares the remote tip of the ref with the applied one and, when
// it moved (or the paths or URL changed), fetches, flattens and swaps.
// On any error nothing is applied and the last good tree stays.
func (s *Source) Sync(ctx context.Context) (err error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	start := time.Now()
	changed, m, err := s.sync(ctx)
	if ctx.Err() == context.DeadlineExceeded && err != nil {
		err = fmt.Errorf("%w (timed out after %s)", err, s.cfg.Timeout)
	}
	if s.metrics != nil {
		s.metrics.duration.Observe(time.Since(start).Seconds())
		if err != nil {
			s.metrics.errors.Inc()
		} else {
			s.metrics.lastSuccess.SetToCurrentTime()
		}
	}
	s.mu.Lock()
	s.status.LastFetch = start
	prevErr := s.status.LastError
	if err != nil {
		s.status.LastError = err.Error()
		s.status.Failures++
	} else {
		s.status.LastError, s.status.Failures = "", 0
	}
	s.mu.Unlock()
	switch {
	case err != nil && err.Error() != prevErr:
		s.log.Error(err, "git sync failed; the last good tree stays in place", "url", Redact(s.cfg.URL), "ref", s.cfg.Ref)
	case err == nil && prevErr != "":
		s.log.Info("git sync works again", "url", Redact(s.cfg.URL))
	}
	if changed {
		s.log.Info("git commit applied", "commit", m.Commit, "ref", m.RefName)
		if s.changed != nil {
			s.changed()
		}
	}
	return err
}

func (s *Source) sync(ctx context.Context) (bool, meta, error) {
	auth, err := readCredentials(s.cfg.Credentials)
	if err != nil {
		return false, meta{}, err
	}
	tip, refName, err := s.lsRemote(ctx, auth)
	if err != nil {
		return false, meta{}, err
	}
	s.mu.Lock()
	applied := s.applied
	s.mu.Unlock()
	if applied.Tip == tip.String() && applied.URL == s.cfg.URL && applied.Ref == s.cfg.Ref && slices.Equal(applied.Paths, s.cfg.Paths) {
		return false, meta{}, nil
	}
	m, err := s.fetchAndSwap(ctx, auth, tip, refName)
	if err != nil {
		return false, meta{}, err
	}
	s.setApplied(m)
	return true, m, nil
}

// lsRemote returns the remote tip of the configured ref and its full name.
func (s *Source) lsRemote(ctx context.Context, auth transport.AuthMethod) (plumbing.Hash, string, error) {
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
// credentials were sent or not.
func (s *Source) explain(err error, auth transport.AuthMethod) error {
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

// fetchAndSwap fetches tip (depth 1) into a fresh directory, writes the
// generated tree and swaps the link to it.
func (s *Source) fetchAndSwap(ctx context.Context, auth transport.AuthMethod, tip plumbing.Hash, refName string) (meta, error) {
	fetchDir, err := os.MkdirTemp(mkdir(filepath.Join(s.cfg.Dir, "fetch")), "repo-")
	if err != nil {
		return meta{}, fmt.Errorf("fetch: %w", err)
	}
	defer os.RemoveAll(fetchDir)
	st := filesystem.NewStorageWithOptions(newLimitFS(osfs.New(fetchDir), s.cfg.MaxSize), cache.NewObjectLRU(4<<20), filesystem.Options{})
	repo, err := git.Init(st, nil)
	if err != nil {
		return meta{}, fmt.Errorf("fetch: %w", err)
	}
	rem, err := repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{s.cfg.URL}})
	if err != nil {
		return meta{}, fmt.Errorf("fetch: %w", err)
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
		return meta{}, fmt.Errorf("fetch %s %s: %w", refName, tip.String()[:12], s.explain(err, auth))
	}
	if got, err := repo.Reference(local, false); err == nil && want != tip.String() {
		tip = got.Hash() // the ref moved since ls-remote: what was fetched is applied
	}
	commit, err := commitOf(repo, tip)
	if err != nil {
		return meta{}, fmt.Errorf("fetch %s %s: %w", refName, tip.String()[:12], err)
	}
	root, err := commit.Tree()
	if err != nil {
		return meta{}, fmt.Errorf("commit %s: %w", commit.Hash.String()[:12], err)
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
		return meta{}, fmt.Errorf("commit %s: %w", commit.Hash.String()[:12], err)
	}
	m := meta{URL: s.cfg.URL, Ref: s.cfg.Ref, Paths: s.cfg.Paths, Tip: tip.String(), Commit: commit.Hash.String(), RefName: refName, AppliedAt: time.Now().UTC()}
	tree, err := s.writeTree(root, files, m)
	if err != nil {
		return meta{}, err
	}
	if err := s.swap(tree); err != nil {
		_ = os.RemoveAll(filepath.Join(s.cfg.Dir, tree))
		return meta{}, err
	}
	s.removeOldTrees(tree)
	return m, nil
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
func (s *Source) writeTree(root *object.Tree, files []selected, m meta) (string, error) {
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

// swap points the link at tree (relative to Dir) atomically: a new link
// renamed over the old one.
func (s *Source) swap(tree string) error {
	tmp := s.cfg.Link() + ".tmp"
	_ = os.Remove(tmp)
	if err := os.Symlink(tree, tmp); err != nil {
		return fmt.Errorf("swap: %w", err)
	}
	if err := os.Rename(tmp, s.cfg.Link()); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("swap: %w", err)
	}
	return syncDir(s.cfg.Dir)
}

// plus is the source of a forced refspec: a ref name with "+", a hash
// without (go-git refuses "+HASH").
func plus(src string) string {
	if plumbing.IsHash(src) {
		return src
	}
	return "+" + src
}
