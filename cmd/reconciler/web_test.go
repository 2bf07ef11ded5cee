package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/warren/reconciler/pkg/desired"
	"github.com/warren/reconciler/pkg/reconcile"
	"github.com/warren/reconciler/pkg/runtime/logfile"
)

// TestWebUnderAPI: the page answers at / of the API, and every API path
// still answers as before.
func TestWebUnderAPI(t *testing.T) {
	reg := prometheus.NewRegistry()
	ctrl := reconcile.New(stubRuntime{release: make(chan struct{})}, reconcile.Config{Metrics: reconcile.NewMetrics(reg)})
	tasks, err := desired.Parse("web.yaml", []byte("apiVersion: warren/v1\nkind: Task\nmetadata:\n  name: web\nspec:\n  image: localhost/reconciler/testapp:v1\n"))
	if err != nil {
		t.Fatal(err)
	}
	ctrl.SetDesired(desired.State{Tasks: map[string]desired.Task{"web": tasks[0]}})
	api := &apiServer{ctrl: ctrl, ping: func(context.Context) error { return nil }, reg: reg, log: logr.Discard()}
	srv := httptest.NewServer(api.handler())
	defer srv.Close()
	do := func(method, path string) (int, string, http.Header) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	for _, tc := range []struct {
		method, path string
		code         int
		in, ctype    string
	}{
		{"GET", "/", 200, "<title>", "text/html; charset=utf-8"},
		{"GET", "/assets/style.css", 200, "prefers-color-scheme", "text/css; charset=utf-8"},
		{"GET", "/healthz", 200, "ok", "text/plain; charset=utf-8"},
		{"GET", "/status", 200, `"tasks"`, "application/json"},
		{"GET", "/status/nope", 404, "no task nope", "application/json"},
		{"GET", "/metrics", 200, "reconciler_tasks", ""},
		{"POST", "/sync", 409, "", "application/json"},
		{"GET", "/nope", 404, "", ""},
		{"POST", "/", 405, "read-only", ""},
		{"DELETE", "/tasks/web", 405, "read-only", ""},
	} {
		code, body, h := do(tc.method, tc.path)
		if code != tc.code || !strings.Contains(body, tc.in) || (tc.ctype != "" && h.Get("Content-Type") != tc.ctype) {
			t.Errorf("%s %s = %d %q (%s), want %d with %q (%s)", tc.method, tc.path, code, firstLine(body), h.Get("Content-Type"), tc.code, tc.in, tc.ctype)
		}
	}
	// The spec the controller holds, as YAML.
	if spec, ok := (webSpecs{ctrl}).Spec("web"); !ok || !strings.Contains(spec, "image: localhost/reconciler/testapp:v1") || !strings.Contains(spec, "kind: Task") {
		t.Errorf("spec of web: %v %q", ok, spec)
	}
	if _, ok := (webSpecs{ctrl}).Spec("nope"); ok {
		t.Error("a spec for a task not desired")
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// TestWebLogs: the page reads what `reconciler logs` reads, and follows it.
func TestWebLogs(t *testing.T) {
	state := t.TempDir()
	dir := filepath.Join(state, "logs")
	w, err := logfile.Open(dir, "web-0123456789ab", 1<<20, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	write := func(lines ...string) {
		for _, l := range lines {
			if err := w.WriteRecord(time.Now(), "stdout", false, []byte(l)); err != nil {
				t.Fatal(err)
			}
		}
	}
	write("one", "two", "three")
	var l webLogs
	if _, err := l.Tail("web", 2); err == nil {
		t.Error("Tail before the directory is known: no error")
	}
	l.dir.Store(dir)
	if got, err := l.Tail("web", 2); err != nil || !slices.Equal(got, []string{"two", "three"}) {
		t.Errorf("Tail(web, 2) = %q, %v", got, err)
	}
	if got, err := l.Tail("db", 2); err != nil || got != nil {
		t.Errorf("Tail of a task without logs = %q, %v", got, err)
	}

	lines := make(chan string, 10)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- l.Follow(ctx, "web", 1, func(s string) bool { lines <- s; return s != "stop" })
	}()
	next := func() string {
		t.Helper()
		select {
		case s := <-lines:
			return s
		case <-time.After(10 * time.Second):
			t.Fatal("no line followed in 10s")
			return ""
		}
	}
	if s := next(); s != "three" {
		t.Errorf("first line followed %q, want the last one, three", s)
	}
	write("four")
	if s := next(); s != "four" {
		t.Errorf("new line followed %q, want four", s)
	}
	write("stop", "after")
	if s := next(); s != "stop" {
		t.Errorf("line followed %q, want stop", s)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Follow ended with %v after its viewer went", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Follow goes on after its viewer went")
	}
}

func TestLineWriter(t *testing.T) {
	var got []string
	w := &lineWriter{line: func(s string) bool { got = append(got, s); return true }}
	for _, p := range []string{"a\nb", "c\n", "\n", "d\ne\n"} {
		if n, err := w.Write([]byte(p)); n != len(p) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", p, n, err)
		}
	}
	if want := []string{"a", "bc", "", "d", "e"}; !slices.Equal(got, want) {
		t.Errorf("lines %q, want %q", got, want)
	}
}

// usageCollector reports two tasks' usage as the runtime's collector does.
type usageCollector struct{ cpu, mem *prometheus.Desc }

func (c usageCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.cpu; ch <- c.mem }
func (c usageCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.cpu, prometheus.CounterValue, 1.5, "web")
	ch <- prometheus.MustNewConstMetric(c.mem, prometheus.GaugeValue, 4096, "web")
	ch <- prometheus.MustNewConstMetric(c.cpu, prometheus.CounterValue, 7, "db")
}

func TestWebUsage(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(usageCollector{
		cpu: prometheus.NewDesc("reconciler_task_cpu_seconds_total", "cpu", []string{"task"}, nil),
		mem: prometheus.NewDesc("reconciler_task_memory_bytes", "mem", []string{"task"}, nil),
	}, prometheus.NewCounter(prometheus.CounterOpts{Name: "reconciler_other_total", Help: "other"}))
	u := webUsage{reg}.Usage()
	if len(u) != 2 || u["web"].CPUSeconds != 1.5 || u["web"].MemoryBytes != 4096 || u["db"].CPUSeconds != 7 {
		t.Errorf("usage %+v", u)
	}
}
