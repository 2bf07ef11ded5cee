package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/warren/reconciler/e2e/testenv"
)

// daemon is a `reconciler run` process driven by the benchmark, with JSON
// logs.
type daemon struct {
	proc  *testenv.Daemon
	state string
	http  *http.Client
	pprof string // host:port of the profiling endpoint ("" without -pprof)

	mu    sync.Mutex
	lines []logLine
	file  *os.File // everything it logged, for a post-mortem
}

// logLine is one JSON log line of the reconciler.
type logLine struct {
	At        time.Time // the line's own time field
	Msg       string
	Container string
	Raw       string
}

// startDaemon runs `reconciler run` on manifests against the containerd at
// address with JSON logs, and more flags if any, and waits until it has
// done its first sync.
func startDaemon(ctx context.Context, bin, address, runcRoot, ns, manifests, images, state string, workers int, resync time.Duration, pprof bool, env []string, flags ...string) (*daemon, error) {
	if err := os.MkdirAll(state, 0o700); err != nil {
		return nil, err
	}
	run := testenv.Run{Address: address, RuncRoot: runcRoot, Namespace: ns,
		Manifests: manifests, Images: images, StateDir: state, Resync: resync,
		Flags: append([]string{"--workers", strconv.Itoa(workers), "--log-format", "json"}, flags...)}
	logf, err := os.Create(filepath.Join(state, "reconciler.log"))
	if err != nil {
		return nil, err
	}
	d := &daemon{state: state, file: logf}
	env = slices.Clone(env)
	if pprof {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			logf.Close()
			return nil, err
		}
		d.pprof = l.Addr().String()
		l.Close()
		env = append(env, "RECONCILER_PPROF="+d.pprof) // see cmd/reconciler/pprof.go
	}
	sock := filepath.Join(state, "reconciler.sock")
	d.http = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, "unix", sock)
		}}}
	if d.proc, err = testenv.Start(bin, run.Args(), testenv.Options{Env: env, Lines: d.read}); err != nil {
		logf.Close()
		return nil, err
	}
	if _, err := d.waitLog(ctx, 0, testenv.InitialSync, 60*time.Second); err != nil {
		d.stop()
		return nil, err
	}
	return d, nil
}

// read keeps one line of the reconciler's output.
func (d *daemon) read(raw string) {
	var f struct {
		Time      time.Time `json:"time"`
		Msg       string    `json:"msg"`
		Container string    `json:"container"`
	}
	_ = json.Unmarshal([]byte(raw), &f)
	d.mu.Lock()
	defer d.mu.Unlock()
	fmt.Fprintln(d.file, raw)
	d.lines = append(d.lines, logLine{At: f.Time, Msg: f.Msg, Container: f.Container, Raw: raw})
}

func (d *daemon) pid() int { return d.proc.Pid() }

// logMark is the index of the next log line.
func (d *daemon) logMark() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.lines)
}

// logs returns the lines from index i on whose message is msg.
func (d *daemon) logs(i int, msg string) []logLine {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []logLine
	for _, l := range d.lines[min(i, len(d.lines)):] {
		if l.Msg == msg {
			out = append(out, l)
		}
	}
	return out
}

// waitLog waits for a line with message msg from index i on.
func (d *daemon) waitLog(ctx context.Context, i int, msg string, timeout time.Duration) (logLine, error) {
	var l logLine
	err := d.proc.Await(ctx, timeout, fmt.Sprintf("%q", msg), func() bool {
		ls := d.logs(i, msg)
		if len(ls) > 0 {
			l = ls[0]
		}
		return len(ls) > 0
	})
	if err != nil {
		return logLine{}, fmt.Errorf("%w; its log: %s", err, d.file.Name())
	}
	return l, nil
}

// errors returns the reconciler's error lines so far.
func (d *daemon) errors() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, l := range d.lines {
		if strings.Contains(l.Raw, `"level":"ERROR"`) {
			out = append(out, l.Raw)
		}
	}
	return out
}

// stop sends SIGTERM and waits (SIGKILL after 30 s), then closes the log.
func (d *daemon) stop() {
	d.proc.Stop()
	d.file.Close()
}

// metrics reads the named samples (name plus optional {labels}, as printed)
// from the reconciler's /metrics.
func (d *daemon) metrics(ctx context.Context) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://reconciler/metrics", nil)
	if err != nil {
		return nil, err
	}
	// Uncompressed: a gzip writer would add its buffers to the memory
	// measured.
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := d.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("read metrics: %w", err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out, sc.Err()
}

// profile saves a profile of the reconciler to path: "heap" (after a GC)
// or "cpu" over the given time. Without -pprof it does nothing.
func (d *daemon) profile(ctx context.Context, kind string, over time.Duration, path string) error {
	if d.pprof == "" {
		return nil
	}
	url := "http://" + d.pprof + "/debug/pprof/heap?gc=1"
	if kind == "cpu" {
		url = fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", d.pprof, max(1, int(over.Round(time.Second).Seconds())))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile %s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// userHZ is the unit of the times in /proc/PID/stat (USER_HZ, 100 on every
// mainstream Linux architecture).
const userHZ = 100

// cpuTime is the process's user+system CPU time (all its threads, alive or
// gone; not its children) from /proc/PID/stat.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command (which may hold spaces) start at field 3.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return time.Duration(utime+stime) * time.Second / userHZ, nil
}

// logDrivers sums the memory of the processes running bin other than
// skip: the task log drivers the shims started (the standalone driver the
// daemon wrote into its state directory, one per task). PSS shares the
// program's pages among them; private is what each one costs on its own.
func logDrivers(bin string, skip int) (n int, pss, private int64, err error) {
	bin, err = filepath.EvalSymlinks(bin)
	if err != nil {
		return 0, 0, 0, err
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, 0, 0, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == skip {
			continue
		}
		if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err != nil || exe != bin {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
		if err != nil {
			continue // gone meanwhile
		}
		n++
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) < 2 {
				continue
			}
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			switch f[0] {
			case "Pss:":
				pss += kb << 10
			case "Private_Clean:", "Private_Dirty:":
				private += kb << 10
			}
		}
	}
	return n, pss, private, nil
}

// resetPeak resets VmHWM to the current RSS (clear_refs 5).
func resetPeak(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}
