package source

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
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
	// CommittedAt is the applied commit's committer time.
	CommittedAt time.Time `json:"committedAt,omitzero"`
	// Signer is who signed the applied commit (or tag), as
	// "ssh:PRINCIPALS SHA256:..." or "openpgp:NAME <EMAIL> 0xKEYID"; ""
	// without --git-verify. Verified says the applied tree passed
	// --git-verify.
	Signer   string `json:"signer,omitempty"`
	Verified bool   `json:"verified"`
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
	Committed time.Time `json:"committedAt,omitzero"` // the commit's committer time
	Signer    string    `json:"signer,omitempty"`
	Verified  bool      `json:"verified,omitempty"` // checked against --git-verify
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
	s.status.Signer, s.status.Verified, s.status.CommittedAt = m.Signer, m.Verified, m.Committed
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
	s.mu.Lock()
	req := request{Config: s.cfg, Applied: s.applied}
	s.mu.Unlock()
	var res result
	var err error
	if len(s.cfg.Helper) > 0 {
		res, err = runHelper(ctx, s.cfg.Helper, req)
	} else {
		res, err = (&fetcher{cfg: s.cfg}).fetch(ctx, req.Applied)
	}
	s.logHostKeysAdded(res.HostKeysAdded)
	if err != nil {
		s.cleanUp()
		return false, meta{}, err
	}
	if !res.Changed {
		return false, meta{}, nil
	}
	if err := s.swap(res.Tree); err != nil {
		s.cleanUp()
		return false, meta{}, err
	}
	s.removeOldTrees(res.Tree)
	s.setApplied(res.Meta)
	return true, res.Meta, nil
}

// cleanUp removes what a failed or killed fetch left: its repository and
// a tree it wrote but did not hand over.
func (s *Source) cleanUp() {
	_ = os.RemoveAll(filepath.Join(s.cfg.Dir, "fetch"))
	if target, err := os.Readlink(s.cfg.Link()); err == nil {
		s.removeOldTrees(target)
	} else {
		s.removeOldTrees("")
	}
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
