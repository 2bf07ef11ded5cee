package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// results is everything a run measured, in seconds and bytes. It is the
// JSON output, with the rows of the table.
type results struct {
	Machine  machine    `json:"machine"`
	Source   string     `json:"source"` // git describe of the tree the reconciler was built from
	Config   configJSON `json:"config"`
	Started  time.Time  `json:"started"`
	Finished time.Time  `json:"finished"`
	Daemons  [][]string `json:"reconcilerCommands"`

	Floor      series      `json:"floor"`      // the bare containerd client
	Seccomp    series      `json:"seccomp"`    // the same with the reconciler's seccomp profile
	LogDriver  series      `json:"logDriver"`  // and the reconciler's log driver as the task's IO
	Runtime    series      `json:"runtime"`    // pkg/runtime called directly: the reconciler without its loop
	Reconciler series      `json:"reconciler"` // manifests dropped into a running reconciler
	Probes     probeResult `json:"probes"`     // what health probes cost
	Network    netResult   `json:"network"`    // a bridge task's start against the same CNI calls by hand
	Git        gitResult   `json:"git"`        // the git source's memory across syncs, push to running
	Idle       struct {
		Levels        []levelResult `json:"levels"`
		N             int           `json:"n"`
		WindowSeconds float64       `json:"windowSeconds"`
		CPUSeconds    float64       `json:"cpuSeconds"`
		Passes        int           `json:"passes"`
		Calls         int           `json:"calls"`
		RSSBytes      int64         `json:"rssBytes"`

		// reconciler_resync_duration_seconds: its mean over the run, as
		// the reconciler measures its listing.
		ResyncMetricMean float64 `json:"resyncMetricMean"`

		// A reconciler started over the N running tasks: from its start
		// to its first full pass (it logs "initial sync done").
		AdoptSeconds float64 `json:"adoptSeconds"`

		// Exits of tasks during the idle measure, which asks none to stop:
		// something outside killed them (they are restarted).
		UnexpectedExits []string `json:"unexpectedExits,omitempty"`
	} `json:"idle"`
	Teardown []stopResult `json:"teardown"`
	Rows     []row        `json:"rows"`
}

// series is one side's trials, in seconds: from the first call (or the
// manifest's rename) to containerd's start event.
type series struct {
	BurstSeconds    []float64   `json:"burstSeconds"`              // per round, all N running
	SingleSeconds   []float64   `json:"singleSeconds"`             // per trial
	BurstCPUSeconds []float64   `json:"burstCPUSeconds,omitempty"` // reconciler: its CPU time during each burst
	RemoveSeconds   []float64   `json:"removeSeconds,omitempty"`   // reconciler: first removal to the last delete event, per round
	DroppedAt       []time.Time `json:"droppedAt,omitempty"`       // reconciler: each single drop's rename, to read beside its log

	SingleAtNSeconds []float64 `json:"singleAtNSeconds,omitempty"` // single trials with the last idle level's tasks running (the reconciler's calls through the proxy)

	// Floor and references on the bench's own client: its containerd
	// calls in each burst round over N.
	CallsPerTask []float64 `json:"callsPerTask,omitempty"`
}

type configJSON struct {
	N, C, K, Rounds, Stops int
	Levels                 []int
	IdleWindow, Resync     string
	Grace                  string
	Env                    []string `json:",omitempty"`
}

type levelResult struct {
	N           int            `json:"n"`
	Calls       int            `json:"callsPerPass"`
	Methods     map[string]int `json:"methods"`
	PassSeconds float64        `json:"passSeconds"` // first call's start to last call's end, at the proxy
	ListSeconds float64        `json:"listSeconds"` // the same for the listing (its first two calls)
	PeakBytes   int64          `json:"peakBytes"`   // VmHWM: level 0 since start, else since the level's tasks were added
	RSSBytes    int64          `json:"rssBytes"`    // VmRSS after the pass
	AnonBytes   int64          `json:"anonBytes"`   // RssAnon after the pass: the private part of RSSBytes

	// The reconciler's calls (through the proxy) while this level's tasks
	// were added, from the drop to the end of the calls that followed.
	RampTasks   int            `json:"rampTasks"`
	RampCalls   int            `json:"rampCalls"`
	RampMethods map[string]int `json:"rampMethods,omitempty"`

	LogDrivers        int   `json:"logDrivers"`        // task log-driver processes (the reconciler binary, one per task)
	LogDriversPSS     int64 `json:"logDriversPSS"`     // their proportional set size, summed
	LogDriversPrivate int64 `json:"logDriversPrivate"` // their private memory, summed
}

type stopResult struct {
	Container            string  `json:"container"`
	KillAfterDecision    float64 `json:"killAfterDecision"`
	GoneAfterDecision    float64 `json:"goneAfterDecision"`
	DecisionAfterRemoval float64 `json:"decisionAfterRemoval"`
	KillAfterRemoval     float64 `json:"killAfterRemoval"`
}

type machine struct {
	CPUs       int    `json:"cpus"`
	CPU        string `json:"cpu"`
	MemoryMiB  int64  `json:"memoryMiB"`
	Kernel     string `json:"kernel"`
	Containerd string `json:"containerd"`
	Runc       string `json:"runc"`
	Go         string `json:"go"`
	LoadBefore string `json:"loadBefore"`
	LoadAfter  string `json:"loadAfter"`
}

// row is one line of the table.
type row struct {
	Measure string `json:"measure"`
	Figure  string `json:"figure"`
	Floor   string `json:"floor"`
	VsFloor string `json:"vsFloor"`
	Target  string `json:"target"`
	Met     string `json:"met"` // yes, no, or "" when there is no target
}

// pairedRatios is a[i]/b[i] for the rounds both sides have.
func pairedRatios(a, b []float64) []float64 {
	var out []float64
	for i := range min(len(a), len(b)) {
		if b[i] > 0 {
			out = append(out, a[i]/b[i])
		}
	}
	return out
}

func met(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

// rows turns the results into the table.
func (r *results) rows(cfg config) []row {
	r.Config = configJSON{N: cfg.n, C: cfg.c, K: cfg.k, Rounds: cfg.rounds, Stops: cfg.stops, Levels: cfg.levels,
		IdleWindow: cfg.idleWindow.String(), Resync: cfg.resync.String(), Grace: cfg.grace.String(), Env: cfg.env}
	if cfg.probesOnly {
		return r.probeRows()
	}
	if cfg.networkOnly {
		return r.networkRows()
	}
	if cfg.gitOnly {
		return r.gitRows()
	}
	var out []row
	fb, rb := median(r.Floor.BurstSeconds), median(r.Reconciler.BurstSeconds)
	out = append(out, row{
		Measure: fmt.Sprintf("floor: raw create+start N=%d C=%d, all running", cfg.n, cfg.c),
		Figure:  secs(fb), Floor: "-", VsFloor: "-", Target: "-",
	})
	ratio := rb / fb
	out = append(out, row{
		Measure: fmt.Sprintf("burst: N=%d dropped, --workers %d, all running", cfg.n, cfg.c),
		Figure:  secs(rb), Floor: secs(fb), VsFloor: fmt.Sprintf("x%.2f", ratio),
		Target: "<= x1.15 (N=100)", Met: met(ratio <= 1.15),
	})
	if paired := pairedRatios(r.Reconciler.BurstSeconds, r.Floor.BurstSeconds); len(paired) > 1 {
		// Each round's sides run back to back: their ratio does not move
		// with the drift of a shared machine between rounds.
		parts := make([]string, len(paired))
		for i, x := range paired {
			parts[i] = fmt.Sprintf("x%.2f", x)
		}
		out = append(out, row{Measure: "ref: burst, reconciler over floor round by round (median)",
			Figure: strings.Join(parts, " "), Floor: "-", VsFloor: fmt.Sprintf("x%.2f", median(paired)), Target: "-"})
	}
	for _, ref := range []struct {
		what string
		s    series
	}{
		{"ref: burst, floor + the seccomp profile", r.Seccomp},
		{"ref: burst, floor + seccomp + log driver", r.LogDriver},
		{"ref: burst, pkg/runtime alone (no loop)", r.Runtime},
	} {
		x := median(ref.s.BurstSeconds)
		out = append(out, row{Measure: ref.what, Figure: secs(x), Floor: secs(fb), VsFloor: fmt.Sprintf("x%.2f", x/fb), Target: "-"})
	}
	for _, lv := range r.Idle.Levels {
		if lv.RampTasks >= cfg.n || (lv.RampTasks > 0 && lv.N == r.Idle.N) {
			f := median(r.Floor.CallsPerTask)
			out = append(out, row{Measure: fmt.Sprintf("ref: containerd calls per task started (reconciler: %d added at once)", lv.RampTasks),
				Figure: fmt.Sprintf("%.1f", float64(lv.RampCalls)/float64(lv.RampTasks)), Floor: fmt.Sprintf("%.1f", f),
				VsFloor: fmt.Sprintf("x%.2f", float64(lv.RampCalls)/float64(lv.RampTasks)/f), Target: "-"})
			break
		}
	}
	if cpu := r.Reconciler.BurstCPUSeconds; len(cpu) > 0 {
		out = append(out, row{Measure: "ref: reconciler CPU time per task in the burst",
			Figure: ms(median(cpu) / float64(cfg.n)), Floor: "-", VsFloor: "-", Target: "-"})
	}
	for _, q := range []struct {
		p     float64
		limit float64
	}{{50, 0.030}, {99, 0.100}} {
		s, f := pct(r.Reconciler.SingleSeconds, q.p), pct(r.Floor.SingleSeconds, q.p)
		out = append(out, row{
			Measure: fmt.Sprintf("single drop -> running, p%.0f of %d", q.p, len(r.Reconciler.SingleSeconds)),
			Figure:  ms(s), Floor: ms(f), VsFloor: signedMS(s - f),
			Target: "<= +" + ms(q.limit), Met: met(s-f <= q.limit),
		})
	}
	if xs := r.Reconciler.SingleAtNSeconds; len(xs) > 0 {
		for _, q := range []struct {
			p     float64
			limit float64
		}{{50, 0.030}, {99, 0.100}} {
			s, f := pct(xs, q.p), pct(r.Floor.SingleAtNSeconds, q.p)
			out = append(out, row{
				Measure: fmt.Sprintf("single drop -> running, %d already running, p%.0f of %d", r.Idle.N, q.p, len(xs)),
				Figure:  ms(s), Floor: ms(f), VsFloor: signedMS(s - f),
				Target: "<= +" + ms(q.limit), Met: met(s-f <= q.limit),
			})
		}
	}
	for _, ref := range []struct {
		what string
		s    series
	}{
		{"ref: single, floor + the seccomp profile, p50", r.Seccomp},
		{"ref: single, floor + seccomp + log driver, p50", r.LogDriver},
		{"ref: single, pkg/runtime alone (no loop), p50", r.Runtime},
	} {
		x, f := median(ref.s.SingleSeconds), median(r.Floor.SingleSeconds)
		out = append(out, row{Measure: ref.what, Figure: ms(x), Floor: ms(f), VsFloor: signedMS(x - f), Target: "-"})
	}
	out = append(out, r.networkRows()...)
	if r.Idle.WindowSeconds > 0 {
		share := 100 * r.Idle.CPUSeconds / r.Idle.WindowSeconds
		out = append(out, row{
			Measure: fmt.Sprintf("idle CPU, N=%d running, %s window (%d passes)", r.Idle.N, secs(r.Idle.WindowSeconds), r.Idle.Passes),
			Figure:  fmt.Sprintf("%.3f%% of a core (%s)", share, ms(r.Idle.CPUSeconds)),
			Floor:   "-", VsFloor: "-", Target: "<= 0.2%", Met: met(share <= 0.2),
		})
	}
	if len(r.Idle.Levels) > 0 {
		var ns, calls []string
		constant := true
		last := r.Idle.Levels[len(r.Idle.Levels)-1]
		for _, l := range r.Idle.Levels {
			ns = append(ns, strconv.Itoa(l.N))
			calls = append(calls, strconv.Itoa(l.Calls))
			// With no container the listing stops after the first call.
			constant = constant && (l.Calls == last.Calls || (l.N == 0 && l.Calls <= last.Calls))
		}
		out = append(out, row{
			Measure: "containerd calls per resync pass, N=" + strings.Join(ns, "/"),
			Figure:  strings.Join(calls, "/"), Floor: "-", VsFloor: "-",
			Target: "constant in N", Met: met(constant),
		})
		out = append(out, row{
			Measure: fmt.Sprintf("resync pass time, N=%d", last.N),
			Figure:  fmt.Sprintf("%s (listing %s; reconciler metric, mean of the run: %s)", ms(last.PassSeconds), ms(last.ListSeconds), ms(r.Idle.ResyncMetricMean)),
			Floor:   "-", VsFloor: "-", Target: "-",
		})
		for _, l := range r.Idle.Levels {
			rw := row{
				Measure: fmt.Sprintf("memory, N=%d: peak / steady RSS (anonymous)", l.N),
				Figure:  fmt.Sprintf("%s / %s (%s)", mib(l.PeakBytes), mib(l.RSSBytes), mib(l.AnonBytes)),
				Floor:   "-", VsFloor: "-", Target: "-",
			}
			if l.N == 100 {
				rw.Target, rw.Met = "<= 25 MiB (peak)", met(l.PeakBytes <= 25<<20)
			}
			out = append(out, rw)
		}
		if n := len(r.Idle.UnexpectedExits); n > 0 {
			out = append(out, row{
				Measure: "unexpected task exits during the idle measure (see JSON)",
				Figure:  strconv.Itoa(n), Floor: "-", VsFloor: "-", Target: "0", Met: met(false),
			})
		}
		if r.Idle.AdoptSeconds > 0 {
			out = append(out, row{
				Measure: fmt.Sprintf("ref: restart over N=%d running: start to first pass done", r.Idle.N),
				Figure:  secs(r.Idle.AdoptSeconds), Floor: "-", VsFloor: "-", Target: "-",
			})
		}
		if last.LogDrivers > 0 {
			out = append(out, row{
				Measure: fmt.Sprintf("ref: %d task log drivers at N=%d: PSS / private", last.LogDrivers, last.N),
				Figure:  fmt.Sprintf("%s / %s", mib(last.LogDriversPSS), mib(last.LogDriversPrivate)),
				Floor:   "-", VsFloor: "-", Target: "-",
			})
		}
	}
	out = append(out, r.probeRows()...)
	if len(r.Teardown) > 0 {
		g := cfg.grace.Seconds()
		worstKill, worstGone := 0.0, 0.0
		for _, s := range r.Teardown {
			if d := s.KillAfterDecision - g; math.Abs(d) > math.Abs(worstKill) {
				worstKill = d
			}
			worstGone = max(worstGone, s.GoneAfterDecision)
		}
		out = append(out, row{
			Measure: fmt.Sprintf("teardown: stop decision -> SIGKILL, G=%s, worst of %d", cfg.grace, len(r.Teardown)),
			Figure:  secs(g + worstKill), Floor: "G " + secs(g), VsFloor: signedMS(worstKill),
			Target: "G +/- 100 ms", Met: met(math.Abs(worstKill) <= 0.1),
		})
		out = append(out, row{
			Measure: fmt.Sprintf("teardown: stop decision -> removed, G=%s, worst of %d", cfg.grace, len(r.Teardown)),
			Figure:  secs(worstGone), Floor: "G " + secs(g), VsFloor: signedMS(worstGone - g),
			Target: "<= G + 1 s", Met: met(worstGone <= g+1),
		})
	}
	return out
}

func printTable(w io.Writer, rows []row) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "measure\tfigure\tfloor\tvs floor\ttarget\tmet")
	for _, r := range rows {
		m := r.Met
		if m == "" {
			m = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Measure, r.Figure, r.Floor, r.VsFloor, r.Target, m)
	}
	tw.Flush()
}

func writeJSON(path string, stdout io.Writer, r *results) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if path == "-" {
		_, err = stdout.Write(b)
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// pct is the p-th percentile (nearest rank) of xs.
func pct(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func median(xs []float64) float64 { return pct(xs, 50) }

func ms(s float64) string { return fmt.Sprintf("%.1f ms", s*1000) }

func signedMS(s float64) string { return fmt.Sprintf("%+.1f ms", s*1000) }

func secs(s float64) string { return fmt.Sprintf("%.3f s", s) }

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func describeMachine() machine {
	m := machine{CPUs: goruntime.NumCPU(), Go: goruntime.Version(), LoadBefore: loadavg()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				m.MemoryMiB = kb >> 10
			}
		}
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if out, err := exec.Command("runc", "--version").Output(); err == nil {
		m.Runc, _, _ = strings.Cut(string(out), "\n")
	}
	return m
}

// sourceVersion is `git describe --always --dirty` of the working tree.
func sourceVersion(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "git", "describe", "--always", "--dirty").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// loadavg is the first three fields of /proc/loadavg.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

// probeRows are the rows of the health probes' measure.
func (r *results) probeRows() []row {
	p := r.Probes
	if p.WindowSeconds == 0 {
		return nil
	}
	var out []row
	extra := 100 * (p.ProbedCPUSeconds - p.BaseCPUSeconds) / p.WindowSeconds
	// The target is for 100 tasks every 10 s: scaled to this run's
	// probe rate.
	limit := 0.5 * (float64(p.N) / p.IntervalSeconds) / 10
	out = append(out, row{
		Measure: fmt.Sprintf("probes: reconciler CPU, %d tasks probed every %s (http+tcp) minus unprobed", p.N, secs(p.IntervalSeconds)),
		Figure:  fmt.Sprintf("%+.3f%% of a core", extra), Floor: fmt.Sprintf("%.3f%% unprobed", 100*p.BaseCPUSeconds/p.WindowSeconds),
		VsFloor: "-", Target: fmt.Sprintf("<= %.2f%% (0.5%% at 100 every 10s)", limit), Met: met(extra <= limit),
	})
	if p.Probes > 0 {
		out = append(out, row{Measure: "ref: reconciler CPU per http/tcp probe",
			Figure: ms((p.ProbedCPUSeconds - p.BaseCPUSeconds) / p.Probes), Floor: "-", VsFloor: "-", Target: "-"})
	}
	if len(p.ExecSeconds) > 0 {
		e, c := pct(p.ExecSeconds, 50), pct(p.CtrExecSeconds, 50)
		out = append(out, row{
			Measure: fmt.Sprintf("exec probe: pkg/runtime Exec, p50 of %d", len(p.ExecSeconds)),
			Figure:  ms(e), Floor: "ctr " + ms(c), VsFloor: fmt.Sprintf("x%.2f", e/c),
			Target: "<= ctr tasks exec", Met: met(e <= c),
		})
		out = append(out, row{Measure: "ref: exec probe, caller CPU per exec (reconciler / ctr)",
			Figure: ms(p.ExecCPUSeconds), Floor: "ctr " + ms(p.CtrExecCPUSeconds), VsFloor: "-", Target: "-"})
	}
	return out
}
