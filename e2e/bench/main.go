package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/go-logr/logr"
	"google.golang.org/grpc"

	"github.com/warren/reconciler/e2e/imagebuild"
	"github.com/warren/reconciler/e2e/testenv"
	"github.com/warren/reconciler/pkg/runtime"
)

// Namespaces: the reconciler's (the default one) and the floor's own.
const (
	nsReconciler = runtime.DefaultNamespace
	nsFloor      = "bench-floor"
	nsRuntime    = "bench-runtime"
)

type config struct {
	n, c, k       int
	kAtN          int
	rounds        int
	levels        []int
	idleWindow    time.Duration
	resync        time.Duration
	grace         time.Duration
	stops         int
	pause         time.Duration
	probeN        int           // health probes: tasks probed
	probeInterval time.Duration // their interval
	execK         int           // exec probes timed
	jsonOut       string
	pprof         string   // directory for profiles of the reconciler ("" none)
	env           []string // added to the reconciler's environment
	keep, strict  bool
	probesOnly    bool // only the health probes' measure
	networkOnly   bool // only the bridge networking measure
	gitOnly       bool // only the git source's measure
	gitSyncs      int  // its syncs of a new commit
}

// gap is the quiet time that separates two resync passes in the call log.
func (c config) gap() time.Duration { return min(time.Second, c.resync/4) }

func main() { os.Exit(benchMain(os.Args[1:], os.Stdout, os.Stderr)) }

func benchMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	var levels string
	fs.IntVar(&cfg.n, "n", 100, "burst: tasks dropped at once (and floor containers)")
	fs.IntVar(&cfg.c, "c", 4, "concurrency: the floor's and the reconciler's --workers")
	fs.IntVar(&cfg.k, "k", 100, "single drop: trials")
	fs.IntVar(&cfg.kAtN, "k-busy", 20, "single drop with the last idle level's tasks running: trials")
	fs.IntVar(&cfg.rounds, "rounds", 5, "burst: rounds (floor and reconciler alternate; medians are compared)")
	fs.StringVar(&levels, "levels", "0,100,200", "idle cost and memory: running tasks at each step; CPU is measured at the last")
	fs.DurationVar(&cfg.idleWindow, "idle-window", 60*time.Second, "idle CPU: length of the window")
	fs.DurationVar(&cfg.resync, "resync", 30*time.Second, "the reconciler's --resync")
	fs.DurationVar(&cfg.grace, "grace", 2*time.Second, "teardown: stopGracePeriod of tasks that ignore SIGTERM")
	fs.IntVar(&cfg.stops, "stops", 4, "teardown: tasks stopped at once (at most -c, so that none waits for a worker)")
	fs.DurationVar(&cfg.pause, "pause", 200*time.Millisecond, "quiet time between trials")
	fs.IntVar(&cfg.probeN, "probe-n", 100, "health probes: listening tasks, unprobed then probed (half http, half tcp), CPU over -idle-window each")
	fs.DurationVar(&cfg.probeInterval, "probe-interval", 10*time.Second, "health probes: their interval")
	fs.IntVar(&cfg.execK, "exec-k", 20, "health probes: exec probes timed, through pkg/runtime and through ctr tasks exec")
	fs.StringVar(&cfg.jsonOut, "json", "", "also write the results as JSON to this file (- for stdout, instead of the table)")
	fs.StringVar(&cfg.pprof, "pprof", "", "build the reconciler with -tags pprof and save its profiles here: CPU over each burst round, the idle window and the single drops with tasks running, heap at each idle level (the figures of such a run are not the reference ones)")
	fs.Func("env", "KEY=VALUE added to the reconciler's environment, repeatable (experiments such as GOGC=50; the figures of such a run are not the reference ones)", func(v string) error {
		if k, _, ok := strings.Cut(v, "="); !ok || k == "" {
			return fmt.Errorf("want KEY=VALUE, got %q", v)
		}
		cfg.env = append(cfg.env, v)
		return nil
	})
	fs.BoolVar(&cfg.probesOnly, "probes-only", false, "run the health probes' measure alone (no floor, burst, idle or teardown)")
	fs.BoolVar(&cfg.networkOnly, "network-only", false, "run the bridge networking measure alone: -k drops of a bridge task with one published port against the floor with the same CNI calls made by hand, and the plain floor")
	fs.BoolVar(&cfg.gitOnly, "git-only", false, "run the git source's measure alone: the reconciler's memory across -git-syncs syncs of a new commit each, then -k pushes of a new task (push, POST /sync, started) against -k file drops")
	fs.IntVar(&cfg.gitSyncs, "git-syncs", 1000, "git source: syncs of a new commit in the memory measure")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the temporary directory (containerd and reconciler logs)")
	fs.BoolVar(&cfg.strict, "strict", false, "exit 1 when a target is missed")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	for _, s := range strings.Split(levels, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || v < 0 || (len(cfg.levels) > 0 && v < cfg.levels[len(cfg.levels)-1]) {
			fmt.Fprintf(stderr, "bench: -levels: want ascending counts such as 0,100,200, got %q\n", levels)
			return 2
		}
		cfg.levels = append(cfg.levels, v)
	}
	if cfg.n < 1 || cfg.c < 1 || cfg.k < 1 || cfg.rounds < 1 || cfg.stops < 1 || cfg.resync <= 0 || cfg.probeN < 1 || cfg.probeInterval <= 0 || cfg.execK < 1 {
		fmt.Fprintln(stderr, "bench: -n, -c, -k, -rounds, -stops, -resync, -probe-n, -probe-interval and -exec-k must be positive")
		return 2
	}
	if only := btoi(cfg.probesOnly) + btoi(cfg.networkOnly) + btoi(cfg.gitOnly); only > 1 {
		fmt.Fprintln(stderr, "bench: -probes-only, -network-only and -git-only: one at most")
		return 2
	}
	if cfg.gitSyncs < 1 {
		fmt.Fprintln(stderr, "bench: -git-syncs must be positive")
		return 2
	}
	if cfg.stops > cfg.c {
		fmt.Fprintf(stderr, "bench: -stops %d is more than -c %d: the later stops would wait for a worker\n", cfg.stops, cfg.c)
		return 2
	}
	if skip, err := testenv.Usable("go"); err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	} else if skip != "" {
		fmt.Fprintf(stderr, "bench: skipped: %s\n", skip)
		return 0
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	b := &bench{cfg: cfg, out: stderr}
	err := b.run(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	rows := b.res.rows(cfg)
	b.res.Rows = rows
	if cfg.jsonOut != "-" {
		printTable(stdout, rows)
	}
	if cfg.jsonOut != "" {
		if err := writeJSON(cfg.jsonOut, stdout, &b.res); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
	}
	if cfg.strict {
		for _, r := range rows {
			if r.Met == "no" {
				return 1
			}
		}
	}
	return 0
}

// bench is one run.
type bench struct {
	cfg     config
	out     io.Writer
	dir     string
	address string // the containerd socket
	driver  string // the standalone log driver, as the reconciler embeds it
	// runc state of every container of the run, apart from any other
	// containerd's on the host (same namespace, same IDs).
	runcRoot string
	client   *containerd.Client
	calls    atomic.Int64 // calls made by client
	rec      *recorder
	res      results

	floor     *rawClient   // the floor
	seccomp   *rawClient   // the floor with the reconciler's seccomp profile
	logDriver *rawClient   // the same with the reconciler's log driver
	runtime   *runtimeOnly // pkg/runtime alone
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.out, "bench: "+format+"\n", args...)
}

func (b *bench) run(ctx context.Context) (err error) {
	dir, err := os.MkdirTemp("", "rcb")
	if err != nil {
		return err
	}
	b.dir = dir
	defer func() {
		if b.cfg.keep || err != nil {
			b.logf("kept %s (logs: containerd in c/containerd.log, the reconcilers in s*/reconciler.log)", dir)
			return
		}
		os.RemoveAll(dir)
	}()
	b.res.Machine = describeMachine()
	b.res.Source = sourceVersion(ctx)
	b.res.Started = time.Now().UTC()
	b.logf("load before: %s", b.res.Machine.LoadBefore)

	bin := filepath.Join(dir, "reconciler")
	b.logf("building the reconciler and the test image")
	tags := "grpcnotrace" // as make build
	if b.cfg.pprof != "" {
		if err := os.MkdirAll(b.cfg.pprof, 0o755); err != nil {
			return err
		}
		tags += ",pprof"
	}
	b.driver = filepath.Join(dir, "log-driver")
	if err := testenv.Reconciler(ctx, bin, b.driver, tags); err != nil {
		return fmt.Errorf("build reconciler: %w", err)
	}
	images := filepath.Join(dir, "images")
	archive := filepath.Join(images, "testapp.tar")
	if err := imagebuild.Build(ctx, "github.com/warren/reconciler/e2e/testapp", imagebuild.DefaultRef, archive, dir); err != nil {
		return err
	}

	logf, err := os.Create(filepath.Join(dir, "bench.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	mc, err := runtime.StartManaged(ctx, filepath.Join(dir, "c"), "containerd", logr.FromSlogHandler(slog.NewTextHandler(logf, nil)))
	if err != nil {
		return err
	}
	b.runcRoot = runtime.PathsFor(mc.Dir).RuncRoot
	b.address = mc.Address()
	// The bench's own client counts its calls (the floor's, per burst).
	count := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		b.calls.Add(1)
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	countStream := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		b.calls.Add(1)
		return streamer(ctx, desc, cc, method, opts...)
	}
	b.client, err = containerd.New(mc.Address(), containerd.WithExtraDialOpts([]grpc.DialOption{
		grpc.WithChainUnaryInterceptor(count), grpc.WithChainStreamInterceptor(countStream)}))
	if err != nil {
		_ = mc.Stop(context.WithoutCancel(ctx))
		return fmt.Errorf("connect to containerd: %w", err)
	}
	defer func() {
		if werr := b.wipe(); werr != nil && err == nil {
			err = werr
		}
		b.client.Close()
		_ = mc.Stop(context.WithoutCancel(ctx))
	}()
	if v, err := b.client.Version(ctx); err == nil {
		b.res.Machine.Containerd = v.Version
	}
	b.rec, err = record(ctx, b.client, nsFloor)
	if err != nil {
		return err
	}
	if b.floor, err = newRawClient(ctx, b.client, nsFloor, b.runcRoot, archive, false); err != nil {
		return err
	}
	if b.seccomp, err = newRawClient(ctx, b.client, nsFloor, b.runcRoot, archive, true); err != nil {
		return err
	}
	if b.logDriver, err = newRawClient(ctx, b.client, nsFloor, b.runcRoot, archive, true); err != nil {
		return err
	}
	b.logDriver.logDriver = [2]string{b.driver, filepath.Join(dir, "ld")}
	if b.runtime, err = newRuntimeOnly(ctx, mc.Address(), b.runcRoot, nsRuntime, images, filepath.Join(dir, "rt"), b.driver); err != nil {
		return err
	}
	defer b.runtime.rt.Close()

	if b.cfg.probesOnly {
		return b.probesAlone(ctx, bin, mc.Address(), images)
	}
	if b.cfg.gitOnly {
		err := b.gitOnly(ctx, bin, mc.Address(), images)
		b.res.Machine.LoadAfter = loadavg()
		b.res.Finished = time.Now().UTC()
		b.logf("load after: %s", b.res.Machine.LoadAfter)
		return err
	}
	if b.cfg.networkOnly {
		err := b.network(ctx, bin, mc.Address(), images)
		b.res.Machine.LoadAfter = loadavg()
		b.res.Finished = time.Now().UTC()
		b.logf("load after: %s", b.res.Machine.LoadAfter)
		return err
	}
	// A reconciler for the latency, burst and teardown measures, on
	// containerd directly.
	man1 := filepath.Join(dir, "m1")
	if err := os.MkdirAll(man1, 0o755); err != nil {
		return err
	}
	d1, err := startDaemon(ctx, bin, mc.Address(), b.runcRoot, nsReconciler, man1, images, filepath.Join(dir, "s1"), b.cfg.c, b.cfg.resync, b.cfg.pprof != "", b.cfg.env)
	if err != nil {
		return err
	}
	b.res.Daemons = append(b.res.Daemons, d1.proc.Args())
	err = b.phases(ctx, d1, man1,
		phase{"single drop", b.latency},
		phase{"burst", b.burst},
		phase{"teardown", b.teardown})
	d1.stop()
	if err != nil {
		return err
	}
	// A bridge task's start, on a reconciler of its own with a bridge of
	// the bench's own.
	if err := b.network(ctx, bin, mc.Address(), images); err != nil {
		return err
	}

	// Another for the idle cost and memory, its calls counted by a proxy.
	p, err := startProxy(filepath.Join(dir, "px.sock"), mc.Address())
	if err != nil {
		return err
	}
	defer p.Close()
	man2 := filepath.Join(dir, "m2")
	if err := os.MkdirAll(man2, 0o755); err != nil {
		return err
	}
	d2, err := startDaemon(ctx, bin, p.socket, b.runcRoot, nsReconciler, man2, images, filepath.Join(dir, "s2"), b.cfg.c, b.cfg.resync, b.cfg.pprof != "", b.cfg.env)
	if err != nil {
		return err
	}
	b.res.Daemons = append(b.res.Daemons, d2.proc.Args())
	err = b.phases(ctx, d2, man2, phase{"idle", func(ctx context.Context, d *daemon, dir string) error {
		return b.idle(ctx, p, d, dir)
	}})
	d2.stop()
	if err != nil {
		return err
	}

	// A third, started on containerd directly over the tasks the second
	// left running: it adopts them, then takes single drops on a busy node.
	began := time.Now()
	d3, err := startDaemon(ctx, bin, mc.Address(), b.runcRoot, nsReconciler, man2, images, filepath.Join(dir, "s3"), b.cfg.c, b.cfg.resync, b.cfg.pprof != "", b.cfg.env)
	if err != nil {
		return err
	}
	b.res.Idle.AdoptSeconds = time.Since(began).Seconds()
	b.logf("a reconciler started over %d running tasks was ready (first pass done) in %s", b.res.Idle.N, secs(b.res.Idle.AdoptSeconds))
	b.res.Daemons = append(b.res.Daemons, d3.proc.Args())
	err = b.phases(ctx, d3, man2, phase{"busy", b.busy})
	d3.stop()
	if err != nil {
		return err
	}

	err = b.probesAlone(ctx, bin, mc.Address(), images)
	b.res.Machine.LoadAfter = loadavg()
	b.res.Finished = time.Now().UTC()
	b.logf("load after: %s", b.res.Machine.LoadAfter)
	return err
}

// probesAlone runs a fourth reconciler, on containerd directly, for what
// health probes cost.
func (b *bench) probesAlone(ctx context.Context, bin, address, images string) error {
	man := filepath.Join(b.dir, "m4")
	if err := os.MkdirAll(man, 0o755); err != nil {
		return err
	}
	d, err := startDaemon(ctx, bin, address, b.runcRoot, nsReconciler, man, images, filepath.Join(b.dir, "s4"), b.cfg.c, b.cfg.resync, b.cfg.pprof != "", b.cfg.env)
	if err != nil {
		return err
	}
	b.res.Daemons = append(b.res.Daemons, d.proc.Args())
	err = b.phases(ctx, d, man, phase{"probes", b.probes})
	d.stop()
	return err
}

type phase struct {
	name string
	fn   func(ctx context.Context, d *daemon, dir string) error
}

// phases runs each phase in turn; a reconciler error line fails the run.
func (b *bench) phases(ctx context.Context, d *daemon, dir string, ps ...phase) error {
	for _, p := range ps {
		b.logf("%s", p.name)
		if err := p.fn(ctx, d, dir); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
	}
	if errs := d.errors(); len(errs) > 0 {
		return fmt.Errorf("the reconciler logged %d errors, first: %s", len(errs), errs[0])
	}
	return nil
}

// wipe removes whatever containers are left in both namespaces (after a
// failure), so that no shim outlives the run.
func (b *bench) wipe() error {
	if b.client == nil {
		return nil
	}
	ctx := context.Background() // also after an interrupt
	var errs []error
	for _, ns := range []string{nsReconciler, nsFloor, nsRuntime} {
		f := &rawClient{client: b.client, ns: ns}
		errs = append(errs, f.wipe(ctx, 8))
	}
	return errors.Join(errs...)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
