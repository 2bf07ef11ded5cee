package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	goruntime "runtime"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/warren/reconciler/pkg/clock"
	"github.com/warren/reconciler/pkg/desired"
	"github.com/warren/reconciler/pkg/health"
	"github.com/warren/reconciler/pkg/reconcile"
	"github.com/warren/reconciler/pkg/runtime"
	"github.com/warren/reconciler/pkg/source"
)

// runFlags are the flags of `run` beyond the common ones.
type runFlags struct {
	workers   int
	resync    time.Duration
	debounce  time.Duration
	listen    string
	tokenFile string // --api-token-file: the bearer token of the --listen listener
	statusDir string
	repull    time.Duration
	git       gitFlags
	source    *source.Config // set by runCommand when --git is given
}

func (a *cli) runCommand() *cobra.Command {
	var c common
	var rf runFlags
	cmd := a.command("run [flags]", "run the daemon",
		"Runs the daemon: keeps the containers of the namespace equal to the manifests.",
		noArgs, func(cmd *cobra.Command, _ []string) int { return a.runDaemon(cmd, &c, &rf) })
	fs := cmd.Flags()
	c.register(fs)
	fs.IntVar(&rf.workers, "workers", 4, "tasks worked on at once")
	fs.DurationVar(&rf.resync, "resync", 30*time.Second, "period of the full re-read of the directory and re-list of containerd")
	fs.DurationVar(&rf.debounce, "debounce", desired.DefaultDebounce, "quiet time after a file event before the directory is read")
	fs.StringVar(&rf.listen, "listen", "", "also serve the local API on this TCP address (e.g. 127.0.0.1:9090); off by default; an address off loopback needs --api-token-file")
	fs.StringVar(&rf.tokenFile, "api-token-file", "", "file whose content (surrounding white space trimmed) is the bearer token every request on --listen must carry, read at each request; the unix socket needs none")
	fs.StringVar(&rf.statusDir, "status-dir", "", "write each task's status as DIR/TASK.json (atomically); off by default")
	fs.DurationVar(&rf.repull, "repull-interval", 0, "re-pull the images of imagePullPolicy: Always tasks this often and replace a container whose tag moved (auto-update); 0: off")
	rf.git.register(fs)
	completeWords(cmd, "containerd", "auto", "external", "managed")
	completeWords(cmd, "log-format", "text", "json")
	return cmd
}

// runDaemon is `run` once its flags are parsed.
func (a *cli) runDaemon(cmd *cobra.Command, c *common, rf *runFlags) int {
	stderr := a.stderr
	if err := checkListen(rf.listen, rf.tokenFile); err != nil {
		fmt.Fprintln(stderr, "reconciler run:", err)
		return exitUsage
	}
	cfg, git, err := rf.git.config(c.stateDir, os.Hostname)
	if err != nil {
		fmt.Fprintln(stderr, "reconciler run:", err)
		return exitUsage
	}
	if git {
		// The loader reads the link the source swaps; a directory of
		// one's own beside it would be a second desired state.
		if cmd.Flags().Changed("manifests") {
			fmt.Fprintln(stderr, "reconciler run: --git and --manifests exclude each other: with --git the manifests come from the repository (see docs/gitops.md)")
			return exitUsage
		}
		c.manifests = cfg.Link()
		if c.images == "" {
			c.images = filepath.Join(cfg.Dir, "..", "images")
		}
		rf.source = &cfg
	}
	if err := c.check(); err != nil {
		fmt.Fprintln(stderr, "reconciler run:", err)
		return exitUsage
	}
	log := c.logger(stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	setGCPercent(os.Getenv)
	setMaxProcs(os.Getenv)

	if err := run(ctx, c, *rf, log); err != nil {
		log.Error(err, "reconciler stopped")
		return exitFailure
	}
	return exitOK
}

// The runtime provides what the controller can use of it.
var (
	_ reconcile.Runtime      = (*runtime.Runtime)(nil)
	_ reconcile.Preparer     = (*runtime.Runtime)(nil)
	_ reconcile.Puller       = (*runtime.Runtime)(nil)
	_ reconcile.ImageChecker = (*runtime.Runtime)(nil)
	_ reconcile.Collector    = (*runtime.Runtime)(nil)
	_ reconcile.ExitWatcher  = (*runtime.Runtime)(nil)
)

// DefaultGCPercent is the daemon's garbage collection target unless GOGC is
// set: the heap may grow by a quarter of the live data between collections
// instead of Go's default, which doubles it. The daemon's live heap is small
// and mostly idle, so the extra collections cost CPU within the noise of
// the benchmark while the peak resident memory falls (the figures for 25,
// 50 and 100 are in docs/benchmarks.md).
const DefaultGCPercent = 25

// setGCPercent applies DefaultGCPercent unless the operator set GOGC.
func setGCPercent(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(DefaultGCPercent)
	}
}

// DefaultMaxProcs is how many goroutines of the daemon run Go code at once
// unless GOMAXPROCS is set. Its work is waiting on containerd: between two
// short calls, Go's scheduler spins on its other processors looking for
// work, and on a node whose cores belong to the workloads that spinning is
// a large share of the daemon's CPU. With one processor its CPU per task
// fell and a burst kept its time or gained (docs/benchmarks.md); nothing
// of the daemon needs two cores at once (planning is fast on one).
const DefaultMaxProcs = 1

// setMaxProcs applies DefaultMaxProcs unless the operator set GOMAXPROCS.
func setMaxProcs(getenv func(string) string) {
	if getenv("GOMAXPROCS") == "" {
		goruntime.GOMAXPROCS(DefaultMaxProcs)
	}
}

func run(ctx context.Context, c *common, rf runFlags, log logr.Logger) error {
	if err := os.MkdirAll(c.stateDir, 0o700); err != nil {
		return fmt.Errorf("create state directory: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Secrets named by a file name are files of the directory the loader
	// reads (with --git, the link to the generated tree).
	rt, managed, err := c.connect(ctx, log, true, runtime.WithMetrics(runtime.NewMetrics(reg)), runtime.WithManifestsDir(c.manifests))
	if err != nil {
		return err
	}
	defer rt.Close()
	if managed != nil {
		go managed.Supervise(ctx)
		defer func() {
			// Containers outlive the daemon: their shims keep running and
			// the next start reconnects to them.
			_ = managed.Stop(context.WithoutCancel(ctx))
		}()
	}
	log.Info("reconciler started", "version", version, "manifests", c.manifests, "namespace", c.namespace)

	var load func()
	var src *source.Source // the git source, if any
	clk := clock.Real{}    // one clock for every timer: the resync, the retries, the watcher's
	ctrl := reconcile.New(rt, reconcile.Config{
		Clock: clk, Workers: rf.workers, Resync: rf.resync, Log: log.WithName("controller"),
		Metrics: reconcile.NewMetrics(reg), RepullInterval: rf.repull,
		Puller: rt, Images: rt, Preparer: rt, Collector: rt,
		Reload: func() { load() }, // the resync re-reads the directory too
		Exec: func(ctx context.Context, id string, cmd []string, timeout time.Duration) (health.ExecResult, error) {
			r, err := rt.Exec(ctx, id, cmd, timeout)
			return health.ExecResult(r), err
		},
		HealthMetrics: health.NewMetrics(reg),
	})
	loadOpts := c.loaderOptions()
	if rf.source != nil {
		// Each task names the commit of the tree it was read from.
		loadOpts = append(loadOpts, desired.WithRevision(source.TreeCommit))
	}
	loader := desired.NewLoader(c.manifests, loadOpts...)
	watcher := desired.NewWatcher(c.manifests, rf.debounce, log.WithName("watcher"), desired.WatchClock(clk))
	var loadMu sync.Mutex // the watcher and the resync both load
	var lastErr string
	lastBroken := map[string]string{}
	lastWarned := map[string]string{} // file -> its warnings, logged once per content
	load = func() {
		loadMu.Lock()
		defer loadMu.Unlock()
		s := loader.Load()
		// Log what changed, not every pass.
		errText := ""
		if s.Err != nil {
			errText = s.Err.Error()
		}
		switch {
		case errText == lastErr || s.Err == nil:
		case src != nil && src.Status().Commit == "" && errors.Is(s.Err, fs.ErrNotExist):
			// The first start with --git: no tree until the first sync.
			log.Info("no git tree applied yet; every task is kept as it is until the first sync applies one")
		default:
			log.Error(s.Err, "manifests directory unreadable; keeping every task as it is")
		}
		lastErr = errText
		broken := map[string]string{}
		for file, err := range s.Broken {
			broken[file] = err.Error()
			if lastBroken[file] != broken[file] {
				log.Error(err, "manifest file invalid; its tasks keep their last known good spec", "file", file)
			}
		}
		for file := range lastBroken {
			if _, ok := broken[file]; !ok && s.Err == nil {
				log.Info("manifest file valid again or gone", "file", file)
			}
		}
		if s.Err == nil {
			lastBroken = maps.Clone(broken)
			warned := map[string]string{}
			for file, ws := range s.Warnings {
				for _, w := range ws {
					warned[file] += w.String() + "\n"
				}
				if lastWarned[file] != warned[file] {
					for _, w := range ws {
						log.Info("manifest warning", "file", file, "line", w.Line, "field", w.Field, "warning", w.Msg)
					}
				}
			}
			lastWarned = warned
		}
		ctrl.SetDesired(s)
	}

	if rf.source != nil {
		src = source.New(*rf.source, log.WithName("source"), source.NewMetrics(reg), func() { load() })
		if err := src.Open(); err != nil {
			return err
		}
	}
	load() // before the first pass, so that readiness means "desired state applied"
	go func() {
		select {
		case <-ctrl.Ready():
			log.Info("initial sync done")
			if err := sdNotify("READY=1"); err != nil {
				log.Error(err, "notify systemd")
			}
		case <-ctx.Done():
		}
	}()
	api := &apiServer{ctrl: ctrl, ping: rt.Ping, reg: reg, log: log.WithName("api"), source: src, tokenFile: rf.tokenFile}
	const background = 4
	errc := make(chan error, background)
	go func() { errc <- api.serve(ctx, apiSocket(c.stateDir), rf.listen) }()
	go func() {
		if rf.statusDir == "" {
			errc <- nil
			return
		}
		errc <- writeStatusFiles(ctx, rf.statusDir, ctrl, log.WithName("status-files"))
	}()
	go func() { errc <- watcher.Run(ctx, load) }()
	go func() {
		if src == nil {
			errc <- nil
			return
		}
		go sighupSyncs(ctx, src, log.WithName("source"))
		errc <- src.Run(ctx)
	}()
	err = ctrl.Run(ctx, rt)
	_ = sdNotify("STOPPING=1")
	for range background {
		if werr := <-errc; werr != nil && !errors.Is(werr, context.Canceled) && err == nil {
			err = werr
		}
	}
	log.Info("reconciler stopping; containers keep running")
	return err
}
