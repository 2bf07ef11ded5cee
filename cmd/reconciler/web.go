package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warren/reconciler/pkg/desired"
	"github.com/warren/reconciler/pkg/reconcile"
	"github.com/warren/reconciler/pkg/runtime/logfile"
	"github.com/warren/reconciler/pkg/source"
	"github.com/warren/reconciler/pkg/webui"
)

// webPage is the node's web page at / of the local API (pkg/webui), wired
// to the daemon's state: the controller's status and desired specs, the
// CPU and memory the runtime's metrics collect, the task log files.
type webPage struct {
	once sync.Once
	ui   *webui.Handler
	logs webLogs
}

// webUI returns the page's handler, made at the first call.
func (a *apiServer) webUI() *webui.Handler {
	a.web.once.Do(func() {
		title, _ := os.Hostname()
		cfg := webui.Config{
			Status: webStatus{ctrl: a.ctrl, source: a.source},
			Specs:  webSpecs{a.ctrl},
			Logs:   &a.web.logs,
			Title:  title,
			Log:    a.log.WithName("web"),
		}
		if a.reg != nil {
			cfg.Usage = webUsage{a.reg}
		}
		a.web.ui = webui.New(cfg)
	})
	return a.web.ui
}

// runWeb keeps the page live (samples, event streams) until ctx is done.
// Its logs are those under the state directory that holds the API socket.
func (a *apiServer) runWeb(ctx context.Context, socket string) {
	a.web.logs.dir.Store(filepath.Join(filepath.Dir(socket), "logs"))
	if err := a.webUI().Run(ctx); err != nil {
		a.log.Error(err, "web page stopped")
	}
}

// webStatus is the status the controller keeps, with the git source's.
type webStatus struct {
	ctrl   *reconcile.Controller
	source *source.Source
}

func (s webStatus) Status() webui.Status {
	st := webui.Status{Tasks: s.ctrl.Status(), Unmanaged: s.ctrl.Unmanaged(), Manifests: s.ctrl.Manifests()}
	if s.source != nil {
		g := s.source.Status()
		st.Source = &webui.Source{URL: g.URL, Commit: g.Commit, RefName: g.RefName, AppliedAt: g.AppliedAt, Signer: g.Signer, LastError: g.LastError}
	}
	return st
}

func (s webStatus) Changed() <-chan struct{} { return s.ctrl.StatusChanged() }

// webSpecs renders the spec the controller holds as YAML.
type webSpecs struct{ ctrl *reconcile.Controller }

func (s webSpecs) Spec(task string) (string, bool) {
	t, _, ok := s.ctrl.DesiredTask(task)
	if !ok {
		return "", false
	}
	b, err := desired.KubeYAML(t)
	if err != nil {
		return "render the spec: " + err.Error(), true
	}
	return string(b), true
}

// webUsage reads the CPU and memory of each task from the runtime's
// metrics (reconciler_task_cpu_seconds_total, reconciler_task_memory_bytes),
// which read containerd at most every 5 s however often they are asked.
type webUsage struct{ g prometheus.Gatherer }

func (u webUsage) Usage() map[string]webui.Usage {
	mfs, _ := u.g.Gather() // a partial answer is still worth its figures
	out := map[string]webui.Usage{}
	for _, mf := range mfs {
		cpu := mf.GetName() == "reconciler_task_cpu_seconds_total"
		if !cpu && mf.GetName() != "reconciler_task_memory_bytes" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var task string
			for _, l := range m.GetLabel() {
				if l.GetName() == "task" {
					task = l.GetValue()
				}
			}
			x := out[task]
			if cpu {
				x.CPUSeconds = m.GetCounter().GetValue()
			} else {
				x.MemoryBytes = m.GetGauge().GetValue()
			}
			out[task] = x
		}
	}
	return out
}

// webLogs reads the task log files as `reconciler logs` does (the newest
// container of the task, pkg/runtime/logfile).
type webLogs struct {
	dir atomic.Value // string: STATE_DIR/logs, set by runWeb
}

// errNoLogDir is the page's log error before runWeb named the directory.
var errNoLogDir = errors.New("the log directory is not known yet")

func (l *webLogs) logDir() (string, error) {
	d, _ := l.dir.Load().(string)
	if d == "" {
		return "", errNoLogDir
	}
	return d, nil
}

func (l *webLogs) Tail(task string, n int) ([]string, error) {
	dir, err := l.logDir()
	if err != nil {
		return nil, err
	}
	id, err := logfile.ContainerForTask(dir, task)
	if errors.Is(err, os.ErrNotExist) || (err == nil && id == "") {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := logfile.Read(dir, id, n, &buf); err != nil {
		return nil, err
	}
	s := strings.TrimSuffix(buf.String(), "\n")
	if s == "" {
		return nil, nil
	}
	return strings.Split(s, "\n"), nil
}

// webLogPoll is how often a followed log is looked at, as `logs -f` does.
const webLogPoll = 200 * time.Millisecond

func (l *webLogs) Follow(ctx context.Context, task string, n int, line func(string) bool) error {
	dir, err := l.logDir()
	if err != nil {
		return err
	}
	var id string
	for {
		id, err = logfile.ContainerForTask(dir, task)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if id != "" {
			break
		}
		// No container has logged yet: wait for the first one.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	w := &lineWriter{line: line}
	err = logfile.Follow(ctx, dir, task, id, n, w, webLogPoll)
	if errors.Is(err, errViewerGone) {
		return nil
	}
	return err
}

// errViewerGone stops a Follow whose viewer wants no more lines.
var errViewerGone = errors.New("viewer gone")

// lineWriter hands each complete line written to it to line.
type lineWriter struct {
	line    func(string) bool
	partial []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.partial = append(w.partial, p...)
			break
		}
		l := string(append(w.partial, p[:i]...))
		w.partial, p = w.partial[:0], p[i+1:]
		if !w.line(l) {
			return 0, errViewerGone
		}
	}
	return n, nil
}
