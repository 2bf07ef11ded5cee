package main

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/warren/reconciler/e2e/testenv"
)

// probeResult is what health probes cost.
type probeResult struct {
	N               int     `json:"n"`               // tasks, listening, in each window
	IntervalSeconds float64 `json:"intervalSeconds"` // of their checks (half http, half tcp)
	WindowSeconds   float64 `json:"windowSeconds"`
	// The reconciler's CPU over the window with the N tasks unprobed,
	// then with N probed.
	BaseCPUSeconds   float64 `json:"baseCPUSeconds"`
	ProbedCPUSeconds float64 `json:"probedCPUSeconds"`
	Probes           float64 `json:"probes"` // run in the probed window (reconciler_health_probes_total)

	// One exec probe in a running container, K times, alternating:
	// pkg/runtime's Exec (what the reconciler runs) and `ctr tasks exec`.
	ExecSeconds    []float64 `json:"execSeconds"`
	CtrExecSeconds []float64 `json:"ctrExecSeconds"`
	// CPU of the caller per exec: this process (Exec) and ctr's own.
	ExecCPUSeconds    float64 `json:"execCPUSeconds"`
	CtrExecCPUSeconds float64 `json:"ctrExecCPUSeconds"`
}

// probes measures the cost of health probes: the reconciler's CPU with N
// listening tasks probed every interval against the same N unprobed, and
// one exec probe through pkg/runtime against `ctr tasks exec`.
func (b *bench) probes(ctx context.Context, d *daemon, dir string) error {
	n, every := b.cfg.probeN, b.cfg.probeInterval
	r := &b.res.Probes
	r.N, r.IntervalSeconds, r.WindowSeconds = n, every.Seconds(), b.cfg.idleWindow.Seconds()
	ports, err := freePorts(n)
	if err != nil {
		return err
	}
	manifest := func(probed bool) func(string) string {
		return func(name string) string {
			i, _ := strconv.Atoi(name[strings.LastIndexByte(name, '-')+1:])
			port := strconv.Itoa(ports[i])
			spec := []string{"args: [-listen, 127.0.0.1:" + port + "]"}
			if probed {
				kind := "http: {port: " + port + ", path: /}"
				if i%2 == 1 {
					kind = "tcp: {port: " + port + "}"
				}
				spec = append(spec, fmt.Sprintf("healthCheck: {%s, interval: %s}", kind, every))
			}
			return testenv.Manifest(name, spec...)
		}
	}
	window := func(prefix string, probed bool) (cpu, probes float64, err error) {
		tasks := names(prefix, 0, n)
		from := b.rec.mark()
		if _, err := drop(dir, tasks, manifest(probed)); err != nil {
			return 0, 0, err
		}
		if _, err := b.rec.wait(ctx, from, 10*time.Minute, n, of(topicStart, nsReconciler, prefixes(tasks)...)); err != nil {
			return 0, 0, fmt.Errorf("waiting for start events: %w", err)
		}
		// Every task probed once at least (the first probe comes within
		// a second) and the starts' work done.
		pause(ctx, every+2*time.Second)
		m0, _ := d.metrics(ctx)
		c0, err := cpuTime(d.pid())
		if err != nil {
			return 0, 0, err
		}
		pause(ctx, b.cfg.idleWindow)
		c1, err := cpuTime(d.pid())
		if err != nil {
			return 0, 0, err
		}
		m1, _ := d.metrics(ctx)
		from = b.rec.mark()
		if _, err := remove(dir, tasks); err != nil {
			return 0, 0, err
		}
		if _, err := b.rec.wait(ctx, from, 10*time.Minute, n, of(topicDelete, nsReconciler, prefixes(tasks)...)); err != nil {
			return 0, 0, fmt.Errorf("waiting for delete events: %w", err)
		}
		return (c1 - c0).Seconds(), probeCount(m1) - probeCount(m0), ctx.Err()
	}
	if r.BaseCPUSeconds, _, err = window("pbase", false); err != nil {
		return fmt.Errorf("unprobed: %w", err)
	}
	if r.ProbedCPUSeconds, r.Probes, err = window("pprobe", true); err != nil {
		return fmt.Errorf("probed: %w", err)
	}
	b.logf("probes: %d tasks, CPU over %s unprobed %s, probed every %s %s (%.0f probes)", n, b.cfg.idleWindow,
		ms(r.BaseCPUSeconds), every, ms(r.ProbedCPUSeconds), r.Probes)
	return b.execCost(ctx)
}

// probeCount sums reconciler_health_probes_total over its labels.
func probeCount(m map[string]float64) float64 {
	var sum float64
	for k, v := range m {
		if strings.HasPrefix(k, "reconciler_health_probes_total{") {
			sum += v
		}
	}
	return sum
}

// execCost times one exec probe in a running container of pkg/runtime's
// namespace: the runtime's Exec, and `ctr tasks exec` of the same command.
func (b *bench) execCost(ctx context.Context) error {
	r := &b.res.Probes
	const id = "exec-bench"
	if err := b.runtime.createStart(ctx, id); err != nil {
		return err
	}
	defer b.runtime.remove(context.WithoutCancel(ctx), id)
	cmd := []string{"/testapp", "probe"}
	var selfCPU, ctrCPU time.Duration
	err := b.rotate(ctx, b.cfg.execK, 1, []side{
		{"exec", func(ctx context.Context, _ int) (time.Duration, error) {
			u0 := selfTime()
			began := time.Now()
			res, err := b.runtime.rt.Exec(ctx, id, cmd, 10*time.Second)
			took := time.Since(began)
			selfCPU += selfTime() - u0
			if err == nil && res.ExitCode != 0 {
				err = fmt.Errorf("exec probe exit %d: %s", res.ExitCode, res.Output)
			}
			return took, err
		}, &r.ExecSeconds},
		{"ctr tasks exec", func(ctx context.Context, i int) (time.Duration, error) {
			c := exec.CommandContext(ctx, "ctr", append([]string{"--address", b.address, "-n", b.runtime.namespace(),
				"tasks", "exec", "--exec-id", fmt.Sprintf("ctr-%d", i), id}, cmd...)...)
			began := time.Now()
			out, err := c.CombinedOutput()
			took := time.Since(began)
			if err != nil {
				return 0, fmt.Errorf("ctr tasks exec: %w: %s", err, out)
			}
			ctrCPU += c.ProcessState.UserTime() + c.ProcessState.SystemTime()
			return took, nil
		}, &r.CtrExecSeconds},
	})
	if err != nil {
		return err
	}
	r.ExecCPUSeconds = selfCPU.Seconds() / float64(len(r.ExecSeconds))
	r.CtrExecCPUSeconds = ctrCPU.Seconds() / float64(len(r.CtrExecSeconds))
	b.logf("exec probe: p50 %s (ctr tasks exec %s), caller CPU %s (ctr %s)", ms(pct(r.ExecSeconds, 50)), ms(pct(r.CtrExecSeconds, 50)),
		ms(r.ExecCPUSeconds), ms(r.CtrExecCPUSeconds))
	return nil
}

// selfTime is this process's CPU time so far.
func selfTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// freePorts returns n TCP ports nothing listens on now.
func freePorts(n int) ([]int, error) {
	var out []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}
