package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/warren/reconciler/e2e/testenv"
)

// gitResult is what the git source costs: the daemon's memory across many
// syncs that each fetch a new commit, and the time from a push to a
// running container.
type gitResult struct {
	Syncs int `json:"syncs"` // syncs that fetched a new commit, in the memory measure
	// Memory of the reconciler after every tenth of the syncs (the first
	// point is before any).
	Memory []gitMemPoint `json:"memory"`
	// SyncSeconds is each sync of the memory measure: `POST /sync` with a
	// new commit on the remote (ls-remote, fetch, tree, swap, load).
	SyncSeconds []float64 `json:"syncSeconds"`
	// PushToRunningSeconds: a commit adding one task pushed, then `POST
	// /sync` (what a push webhook or `reconciler sync` does), until
	// containerd reports its task started.
	PushToRunningSeconds []float64 `json:"pushToRunningSeconds"`
	// DropToRunningSeconds: the same task dropped into a watched directory
	// by the same daemon binary, for comparison.
	DropToRunningSeconds []float64 `json:"dropToRunningSeconds"`
	// PushSeconds is the part of each push to running spent in `git
	// commit` and `git push` (the bench's own git CLI, not the node).
	PushSeconds []float64 `json:"pushSeconds"`
}

type gitMemPoint struct {
	Syncs      int     `json:"syncs"`
	RSSBytes   int64   `json:"rssBytes"`
	HeapBytes  float64 `json:"heapInuseBytes"` // go_memstats_heap_inuse_bytes
	Goroutines float64 `json:"goroutines"`
	FDs        int     `json:"fds"`
}

// gitOnly measures the git source: -git-syncs syncs of a new commit each
// (memory every tenth), then -k pushes of a new task, against a `git
// daemon` on 127.0.0.1 and a reconciler run with --git.
func (b *bench) gitOnly(ctx context.Context, bin, address, images string) error {
	if _, err := exec.LookPath("git"); err != nil {
		return fmt.Errorf("the git measure needs git (make deps installs it): %w", err)
	}
	dir := filepath.Join(b.dir, "git")
	repo, err := newBenchRepo(dir)
	if err != nil {
		return err
	}
	srv, err := startGitDaemon(ctx, dir)
	if err != nil {
		return err
	}
	defer srv.stop()
	if err := repo.push(map[string]string{"tasks/gbase.yaml": testenv.Manifest("gbase")}); err != nil {
		return err
	}
	d, err := startDaemon(ctx, bin, address, b.runcRoot, nsReconciler, "", images, filepath.Join(b.dir, "sg"), b.cfg.c, b.cfg.resync, b.cfg.pprof != "", b.cfg.env,
		"--git", srv.url, "--git-path", "tasks", "--git-interval", "1h")
	if err != nil {
		return err
	}
	defer d.stop()
	r := &b.res.Git
	sample := func(syncs int) error {
		m, err := d.metrics(ctx)
		if err != nil {
			return err
		}
		rss, err := rssOf(d.pid())
		if err != nil {
			return err
		}
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", d.pid()))
		r.Memory = append(r.Memory, gitMemPoint{Syncs: syncs, RSSBytes: rss, HeapBytes: m["go_memstats_heap_inuse_bytes"],
			Goroutines: m["go_goroutines"], FDs: len(fds)})
		return nil
	}
	if err := sample(0); err != nil {
		return err
	}
	n := b.cfg.gitSyncs
	for i := 1; i <= n; i++ {
		if err := repo.push(map[string]string{"tasks/notes.txt": strconv.Itoa(i) + "\n"}); err != nil {
			return err
		}
		began := time.Now()
		if err := syncNow(ctx, d); err != nil {
			return fmt.Errorf("sync %d: %w", i, err)
		}
		r.SyncSeconds = append(r.SyncSeconds, time.Since(began).Seconds())
		r.Syncs = i
		if i%max(1, n/10) == 0 || i == n {
			if err := sample(i); err != nil {
				return err
			}
		}
	}
	first, last := r.Memory[0], r.Memory[len(r.Memory)-1]
	b.logf("git: %d syncs, sync p50 %s; RSS %.1f -> %.1f MiB, heap %.1f -> %.1f MiB, goroutines %.0f -> %.0f, fds %d -> %d", n,
		ms(pct(r.SyncSeconds, 50)), fmib(first.RSSBytes), fmib(last.RSSBytes), first.HeapBytes/(1<<20), last.HeapBytes/(1<<20),
		first.Goroutines, last.Goroutines, first.FDs, last.FDs)

	// Push to running, against a drop into a watched directory by a
	// second daemon of the same binary.
	man := filepath.Join(b.dir, "gm")
	if err := os.MkdirAll(man, 0o755); err != nil {
		return err
	}
	d2, err := startDaemon(ctx, bin, address, b.runcRoot, nsReconciler+"-gitdrop", man, images, filepath.Join(b.dir, "sgd"), b.cfg.c, b.cfg.resync, false, b.cfg.env)
	if err != nil {
		return err
	}
	defer d2.stop()
	err = b.rotate(ctx, b.cfg.k, 1, []side{
		{"git push + sync", func(ctx context.Context, i int) (time.Duration, error) {
			name := fmt.Sprintf("gpush-%d", i)
			from := b.rec.mark()
			began := time.Now()
			if err := repo.push(map[string]string{"tasks/" + name + ".yaml": testenv.Manifest(name)}); err != nil {
				return 0, err
			}
			r.PushSeconds = append(r.PushSeconds, time.Since(began).Seconds())
			if err := syncNow(ctx, d); err != nil {
				return 0, err
			}
			ev, err := b.rec.wait(ctx, from, time.Minute, 1, of(topicStart, nsReconciler, name+"-"))
			if err != nil {
				return 0, err
			}
			took := firstAt(ev).Sub(began)
			if err := repo.push(map[string]string{"tasks/" + name + ".yaml": ""}); err != nil {
				return 0, err
			}
			return took, syncNow(ctx, d)
		}, &r.PushToRunningSeconds},
		{"file drop", func(ctx context.Context, i int) (time.Duration, error) {
			name := fmt.Sprintf("gdrop-%d", i)
			from := b.rec.mark()
			began, err := drop(man, []string{name}, func(n string) string { return testenv.Manifest(n) })
			if err != nil {
				return 0, err
			}
			ev, err := b.rec.wait(ctx, from, time.Minute, 1, of(topicStart, nsReconciler+"-gitdrop", name+"-"))
			if err != nil {
				return 0, err
			}
			_, err = remove(man, []string{name})
			return firstAt(ev).Sub(began), err
		}, &r.DropToRunningSeconds},
	})
	if err != nil {
		return err
	}
	b.logf("git: push to running p50 %s (file drop %s)", ms(pct(r.PushToRunningSeconds, 50)), ms(pct(r.DropToRunningSeconds, 50)))
	return nil
}

// firstAt is the time of the earliest of the events.
func firstAt(evs map[string]event) time.Time {
	var t time.Time
	for _, e := range evs {
		if t.IsZero() || e.At.Before(t) {
			t = e.At
		}
	}
	return t
}

func fmib(b int64) float64 { return float64(b) / (1 << 20) }

// rssOf is the resident set of a process (VmRSS).
func rssOf(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for %d", pid)
}

// syncNow is `POST /sync` on the daemon's socket.
func syncNow(ctx context.Context, d *daemon) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://reconciler/sync", nil)
	if err != nil {
		return err
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var b strings.Builder
		_, _ = fmt.Fprintf(&b, "POST /sync: %s", resp.Status)
		return fmt.Errorf("%s", b.String())
	}
	return nil
}

// benchRepo is a bare repository and a work tree that pushes to it.
type benchRepo struct{ bare, work string }

func newBenchRepo(dir string) (*benchRepo, error) {
	r := &benchRepo{bare: filepath.Join(dir, "fleet.git"), work: filepath.Join(dir, "work")}
	for _, args := range [][]string{
		{"init", "-q", "--bare", "-b", "main", r.bare},
		{"init", "-q", "-b", "main", r.work},
		{"-C", r.work, "remote", "add", "origin", r.bare},
	} {
		if out, err := exec.Command("git", args...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("git %v: %w: %s", args, err, out)
		}
	}
	return r, nil
}

// push writes files (content "" removes one), commits and pushes.
func (r *benchRepo) push(files map[string]string) error {
	for p, c := range files {
		full := filepath.Join(r.work, p)
		if c == "" {
			if err := os.Remove(full); err != nil {
				return err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			return err
		}
	}
	for _, args := range [][]string{
		{"add", "-A"},
		{"-c", "user.name=bench", "-c", "user.email=bench@example.com", "commit", "-q", "-m", "bench"},
		{"push", "-q", "origin", "main"},
	} {
		c := exec.Command("git", append([]string{"-C", r.work}, args...)...)
		if out, err := c.CombinedOutput(); err != nil {
			return fmt.Errorf("git %v: %w: %s", args, err, out)
		}
	}
	return nil
}

// gitDaemon is `git daemon` serving a directory on 127.0.0.1.
type gitDaemon struct {
	url  string
	proc *exec.Cmd
}

func startGitDaemon(ctx context.Context, base string) (*gitDaemon, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	c := exec.Command("git", "daemon", "--reuseaddr", "--export-all", "--listen=127.0.0.1", "--port="+strconv.Itoa(port), "--base-path="+base, base)
	if err := c.Start(); err != nil {
		return nil, err
	}
	d := &gitDaemon{url: fmt.Sprintf("git://127.0.0.1:%d/fleet.git", port), proc: c}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			conn.Close()
			return d, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			d.stop()
			return nil, fmt.Errorf("git daemon did not listen on %d", port)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (d *gitDaemon) stop() {
	_ = d.proc.Process.Kill()
	_ = d.proc.Wait()
}

// gitRows are the rows of the git source's measure.
func (r *results) gitRows() []row {
	g := r.Git
	if len(g.Memory) < 2 {
		return nil
	}
	first, last := g.Memory[0], g.Memory[len(g.Memory)-1]
	out := []row{
		{Measure: fmt.Sprintf("git: reconciler RSS after %d syncs of a new commit (before any)", g.Syncs),
			Figure: mib(last.RSSBytes), Floor: mib(first.RSSBytes),
			VsFloor: fmt.Sprintf("x%.2f", float64(last.RSSBytes)/float64(first.RSSBytes)),
			Target:  "flat (<= +2 MiB)", Met: met(last.RSSBytes-first.RSSBytes <= 2<<20)},
		{Measure: "ref: git: RSS at each tenth of the syncs", Figure: memSeries(g.Memory), Floor: "-", VsFloor: "-", Target: "-"},
		{Measure: "ref: git: Go heap in use, goroutines, fds (before -> after)",
			Figure: fmt.Sprintf("%.1f -> %.1f MiB, %.0f -> %.0f, %d -> %d", first.HeapBytes/(1<<20), last.HeapBytes/(1<<20),
				first.Goroutines, last.Goroutines, first.FDs, last.FDs), Floor: "-", VsFloor: "-", Target: "-"},
		{Measure: fmt.Sprintf("ref: git: one sync of a new commit (POST /sync), p50/p90 of %d", len(g.SyncSeconds)),
			Figure: ms(pct(g.SyncSeconds, 50)) + " / " + ms(pct(g.SyncSeconds, 90)), Floor: "-", VsFloor: "-", Target: "-"},
	}
	if len(g.PushToRunningSeconds) > 0 {
		p, f := pct(g.PushToRunningSeconds, 50), pct(g.DropToRunningSeconds, 50)
		out = append(out, row{Measure: fmt.Sprintf("git: push + sync -> task started, p50 of %d (file drop)", len(g.PushToRunningSeconds)),
			Figure: ms(p), Floor: "drop " + ms(f), VsFloor: fmt.Sprintf("+%.0f ms", (p-f)*1000), Target: "-"},
			row{Measure: "ref: git: push + sync -> task started, p90 (file drop)",
				Figure: ms(pct(g.PushToRunningSeconds, 90)), Floor: "drop " + ms(pct(g.DropToRunningSeconds, 90)), VsFloor: "-", Target: "-"},
			row{Measure: "ref: git: of which the bench's git commit + push, p50",
				Figure: ms(pct(g.PushSeconds, 50)), Floor: "-", VsFloor: "-", Target: "-"})
	}
	return out
}

func memSeries(ps []gitMemPoint) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = fmt.Sprintf("%.1f", fmib(p.RSSBytes))
	}
	return strings.Join(parts, " ") + " MiB"
}
