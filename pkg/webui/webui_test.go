package webui

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"regexp"
	goruntime "runtime"
	"strings"
	"testing"
	"time"

	"github.com/warren/reconciler/pkg/reconcile"
)

func get(t *testing.T, h http.Handler, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, path, nil))
	return w
}

func mustContain(t *testing.T, body string, want ...string) {
	t.Helper()
	for _, s := range want {
		if !strings.Contains(body, s) {
			t.Errorf("page lacks %q", s)
		}
	}
	if t.Failed() {
		t.Logf("page:\n%s", body)
	}
}

func TestListShowsEveryColumn(t *testing.T) {
	u := &fakeUsage{u: map[string]Usage{"web": {CPUSeconds: 10, MemoryBytes: 20 << 20}}}
	h, _ := newTestHandler(newFakeStatus(node()), func(c *Config) { c.Usage = u })
	h.usage.record(t0.Add(-20*time.Second), u.Usage())
	h.usage.record(t0.Add(-10*time.Second), map[string]Usage{"web": {CPUSeconds: 15, MemoryBytes: 24 << 20}})
	w := get(t, h, http.MethodGet, "/")
	if w.Code != http.StatusOK {
		t.Fatalf("GET / = %d", w.Code)
	}
	if ct := w.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	mustContain(t, w.Body.String(),
		"<h1>edge-1</h1>", "4 tasks: 3 fine, 1 failing",
		`href="tasks/web"`, ">web</a>", `class="phase ok">Running`, "<td data-label=\"Health\">healthy</td>",
		"<td class=\"nw\" data-label=\"Restarts\">2</td>", "<td class=\"nw\" data-label=\"Age\">3m0s</td>", "localhost/<wbr>reconciler/<wbr>testapp:<wbr>v1",
		"<polyline points=", `<span class="v">50%</span>`, `<span class="v">24 MiB</span>`, // 5 s of CPU in 10 s; memory now
		`class="phase bad">CrashLoopBackOff`, "back-off 20s restarting failed container",
		"pod duo", ">setup</a> <span class=\"tag\">init</span>", ">server</a>",
		"bad.yaml", "metadata.name: must be a DNS-1123 label",
		"<code>stray</code> no ownership label",
		"git <code>0123456789ab</code> of refs/heads/main, applied 1m0s ago",
		`data-events="events"`, `href="assets/style.css"`, `src="assets/live.js"`)
	// The pod's init container first, the pod after job (by name).
	body := w.Body.String()
	if !(strings.Index(body, ">setup<") < strings.Index(body, ">server<") && strings.Index(body, "tasks/duo-setup") < strings.Index(body, "tasks/job")) {
		t.Errorf("order of the rows: want pod duo (setup, server), job, web")
	}
}

func TestTaskPageShowsSpecReasonAndLog(t *testing.T) {
	h, _ := newTestHandler(newFakeStatus(node()), func(c *Config) {
		c.Specs = fakeSpecs{"duo-server": "kind: Task\nspec:\n  image: nginx:1.27\n"}
		c.Logs = &fakeLogs{lines: map[string][]string{"duo-server": {"one", "two", "three"}}}
		c.LogLines = 2
	})
	w := get(t, h, http.MethodGet, "/tasks/duo-server")
	if w.Code != http.StatusOK {
		t.Fatalf("GET /tasks/duo-server = %d", w.Code)
	}
	mustContain(t, w.Body.String(),
		"<h1>duo-server</h1>", `href="../assets/style.css"`, `href="../"`, `data-events="duo-server/events"`,
		`class="phase ok">Running</span> running`, "<dt>Pod</dt><dd>duo</dd>",
		"Change rolled back", "<dd>dd850a8cb2b4</dd>", "<dd>exited with code 1, 3 times in 7s</dd>",
		"Spec as applied", "<pre class=\"spec\">kind: Task\nspec:\n  image: nginx:1.27\n</pre>",
		"<pre id=\"log\" class=\"log\">two\nthree\n</pre>", `href="duo-server/log"`)

	w = get(t, h, http.MethodGet, "/tasks/duo-server/log")
	if w.Code != http.StatusOK || w.Body.String() != "one\ntwo\nthree\n" {
		t.Errorf("GET /tasks/duo-server/log = %d %q", w.Code, w.Body.String())
	}
	for _, p := range []string{"/tasks/nothere", "/tasks/nothere/log", "/tasks/nothere/events", "/nothere", "/assets/nothere.js"} {
		if w := get(t, h, http.MethodGet, p); w.Code != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", p, w.Code)
		}
	}
}

func TestReadOnly(t *testing.T) {
	h, _ := newTestHandler(newFakeStatus(node()))
	for _, p := range []string{"/", "/tasks/web", "/tasks/web/log", "/tasks/web/events", "/events", "/assets/style.css", "/nothere"} {
		for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions, "PROPFIND"} {
			w := get(t, h, m, p)
			if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" {
				t.Errorf("%s %s = %d (Allow %q), want 405 with Allow: GET, HEAD", m, p, w.Code, w.Header().Get("Allow"))
			}
		}
	}
	for _, p := range []string{"/", "/tasks/web", "/assets/live.js", "/events"} {
		w := get(t, h, http.MethodHead, p)
		if w.Code != http.StatusOK {
			t.Errorf("HEAD %s = %d", p, w.Code)
		}
		if csp := w.Header().Get("Content-Security-Policy"); !strings.HasPrefix(csp, "default-src 'self'") {
			t.Errorf("HEAD %s: Content-Security-Policy %q", p, csp)
		}
	}
}

// TestEscapes: what comes from manifests, containers and logs stays text.
func TestEscapes(t *testing.T) {
	const xss = `"><script>alert(1)</script><img src=x onerror=alert(2)>`
	st := node()
	st.Tasks[0].Name = "web" + xss
	st.Tasks[0].Message = xss
	st.Tasks[0].Image = xss
	st.Manifests.Broken = map[string]string{xss: xss}
	st.Unmanaged[0].Reason = xss
	name := st.Tasks[0].Name
	h, _ := newTestHandler(newFakeStatus(st), func(c *Config) {
		c.Specs = fakeSpecs{name: "env: [{name: X, value: '" + xss + "'}]"}
		c.Logs = &fakeLogs{lines: map[string][]string{name: {xss, "</pre><script>alert(3)</script>"}}}
	})
	for _, p := range []string{"/", "/tasks/" + pathEscape(name)} {
		w := get(t, h, http.MethodGet, p)
		if w.Code != http.StatusOK {
			t.Fatalf("GET %s = %d", p, w.Code)
		}
		body := w.Body.String()
		for _, bad := range []string{"<script>alert", "<img src=x", "</pre><script>"} {
			if strings.Contains(body, bad) {
				t.Errorf("GET %s: %q is markup on the page", p, bad)
			}
		}
		if !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
			t.Errorf("GET %s: the escaped text is not on the page:\n%s", p, body)
		}
	}
}

// TestNoOtherHost: no template or asset, and no rendered page, names
// another host: a browser showing the page asks nothing of anyone else.
func TestNoOtherHost(t *testing.T) {
	// A scheme-relative or absolute URL with a host. The SVG namespace is
	// an identifier that is never fetched.
	url := regexp.MustCompile(`(?i)([a-z][a-z0-9+.-]*:)?//[a-z0-9-]+(\.[a-z0-9-]+)+`)
	allowed := map[string]bool{"http://www.w3.org": true}
	check := func(name, text string) {
		for _, m := range url.FindAllString(text, -1) {
			if !allowed[m] {
				t.Errorf("%s names another host: %s", name, m)
			}
		}
		for _, s := range []string{"@import", "url(", "fetch(", "XMLHttpRequest", "WebSocket", "<iframe", "<object", "<embed", "<form"} {
			if strings.Contains(text, s) {
				t.Errorf("%s has %s", name, s)
			}
		}
	}
	n := 0
	err := fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		n++
		check(p, string(b))
		return nil
	})
	if err != nil || n < 4 {
		t.Fatalf("walk the assets: %d files, %v", n, err)
	}
	st := node()
	st.Source.URL = "ssh://git@git.example.com/fleet.git" // shown as text, never a link
	h, _ := newTestHandler(newFakeStatus(st))
	for _, p := range []string{"/", "/tasks/web", "/tasks/duo-server"} {
		body := get(t, h, http.MethodGet, p).Body.String()
		body = strings.ReplaceAll(body, "ssh://git@git.example.com/fleet.git", "")
		check(p, body)
		for _, attr := range regexp.MustCompile(`(?:href|src|action|data-events)="([^"]*)"`).FindAllStringSubmatch(body, -1) {
			if strings.Contains(attr[1], ":") || strings.HasPrefix(attr[1], "/") {
				t.Errorf("%s: %s is not relative to the page", p, attr[0])
			}
		}
	}
}

// event is one server-sent event.
type event struct{ name, data string }

// readEvent reads the next event of an event stream.
func readEvent(t *testing.T, r *bufio.Reader) event {
	t.Helper()
	var e event
	var data []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read the event stream: %v (so far %q)", err, e.name)
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "" && (e.name != "" || data != nil):
			e.data = strings.Join(data, "\n")
			return e
		case strings.HasPrefix(line, "event: "):
			e.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = append(data, strings.TrimPrefix(line, "data: "))
		}
	}
}

// nextEvent reads events until one named name.
func nextEvent(t *testing.T, r *bufio.Reader, name string) event {
	t.Helper()
	for {
		if e := readEvent(t, r); e.name == name {
			return e
		}
	}
}

func openStream(t *testing.T, url string) (*bufio.Reader, *http.Response) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return bufio.NewReader(resp.Body), resp
}

func runHandler(t *testing.T, h *Handler) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { _ = h.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func TestEventsOnStatusChange(t *testing.T) {
	src := newFakeStatus(node())
	h, clk := newTestHandler(src)
	runHandler(t, h)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	r, resp := openStream(t, srv.URL+"/events")
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
		t.Fatalf("GET /events = %d %q", resp.StatusCode, ct)
	}
	first := nextEvent(t, r, "status")
	if !strings.Contains(first.data, `class="phase ok">Running`) || strings.Contains(first.data, "<html") {
		t.Fatalf("first event: want the list's fragment, got:\n%s", first.data)
	}
	clk.Step(time.Minute)
	src.set(func(st *Status) {
		st.Tasks[0].Phase, st.Tasks[0].Message = reconcile.PhaseStopping, "stopping web-2517b65ad988: spec changed"
	})
	for {
		e := nextEvent(t, r, "status")
		if strings.Contains(e.data, "task-web\" data-phase=\"Stopping\"") {
			if !strings.Contains(e.data, "spec changed") {
				t.Errorf("the event lacks the reason:\n%s", e.data)
			}
			break
		}
	}

	// A task's stream: its status, then its log, and each new line.
	logs := h.cfg.Logs.(*fakeLogs)
	r, _ = openStream(t, srv.URL+"/tasks/web/events")
	if e := readEvent(t, r); e.name != "status" || !strings.Contains(e.data, "Stopping") || !strings.Contains(e.data, "Spec as applied") {
		t.Fatalf("first event of the task's stream: %+v", e)
	}
	nextEvent(t, r, "log-reset")
	var got []string
	for len(got) < 2 {
		got = append(got, decodeLines(t, nextEvent(t, r, "log").data)...)
	}
	if strings.Join(got, "|") != "testapp: start pid=1|testapp: tick 1" {
		t.Errorf("log lines %q", got)
	}
	logs.more <- `testapp: tick 2 <b>not bold</b>`
	if e := nextEvent(t, r, "log"); e.data != `["testapp: tick 2 \u003cb\u003enot bold\u003c/b\u003e"]` {
		t.Errorf("new line's event: %q", e.data)
	}
}

func decodeLines(t *testing.T, data string) []string {
	t.Helper()
	var out []string
	if err := json.Unmarshal([]byte(data), &out); err != nil {
		t.Fatalf("a log event's data %q: %v", data, err)
	}
	return out
}

// TestSlowViewerNeverBlocks: a viewer that reads nothing holds up no
// broadcast; it gets the newest view when it reads again.
func TestSlowViewerNeverBlocks(t *testing.T) {
	src := newFakeStatus(node())
	h, _ := newTestHandler(src)
	c := h.hub.subscribe("")
	for i := range 100 {
		src.set(func(st *Status) { st.Tasks[0].Restarts = i })
		h.broadcast()
	}
	b := string(<-c.mail)
	if !strings.Contains(b, `<td class="nw" data-label="Restarts">99</td>`) {
		t.Errorf("the mailbox does not hold the newest view:\n%s", b)
	}
	select {
	case <-c.mail:
		t.Error("more than one view waiting")
	default:
	}
	h.broadcast() // the same view again: not sent again
	select {
	case <-c.mail:
		t.Error("an unchanged view was sent again")
	default:
	}
}

func TestMaxViewers(t *testing.T) {
	h, _ := newTestHandler(newFakeStatus(node()), func(c *Config) { c.MaxClients = 1 })
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	r, _ := openStream(t, srv.URL+"/events")
	nextEvent(t, r, "status")
	resp, err := http.Get(srv.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("a viewer over the limit: %d, want 503", resp.StatusCode)
	}
	if w := get(t, h, http.MethodGet, "/"); w.Code != http.StatusOK {
		t.Errorf("the still page over the limit: %d", w.Code)
	}
}

func TestSamplesBounded(t *testing.T) {
	src := newFakeStatus(node())
	u := &fakeUsage{u: map[string]Usage{"web": {CPUSeconds: 1, MemoryBytes: 1}, "job": {CPUSeconds: 1, MemoryBytes: 1}}}
	h, clk := newTestHandler(src, func(c *Config) { c.Usage = u; c.Samples = 5; c.SampleEvery = time.Second })
	h.seen() // someone looks (its wake is taken here: the sampler starts active)
	<-h.wake
	runHandler(t, h)
	waitFor(t, func() bool { return h.samplesOf("web") == 1 })
	for i := 2; i <= 8; i++ {
		clk.Step(time.Second)
		waitFor(t, func() bool { return h.samplesOf("web") == min(i, 5) && h.lastSample("web").Equal(clk.Now()) })
	}
	u.mu.Lock()
	u.u = map[string]Usage{"web": {CPUSeconds: 2, MemoryBytes: 1}} // job stopped
	u.mu.Unlock()
	for range 6 {
		clk.Step(time.Second)
		now := clk.Now()
		waitFor(t, func() bool { return h.lastSample("web").Equal(now) })
	}
	if n := h.samplesOf("job"); n != 0 {
		t.Errorf("a task gone for the whole window keeps %d samples", n)
	}
}

// TestSamplesOnlyWhileLookedAt: nobody looking, the sampler asks nothing.
func TestSamplesOnlyWhileLookedAt(t *testing.T) {
	h, clk := newTestHandler(newFakeStatus(node()), func(c *Config) { c.ActiveFor = time.Minute })
	if h.active(clk.Now()) {
		t.Error("active before any request")
	}
	get(t, h, http.MethodGet, "/")
	select {
	case <-h.wake:
	default:
		t.Error("the first request did not wake the sampler")
	}
	clk.Step(59 * time.Second)
	if !h.active(clk.Now()) {
		t.Error("not active 59s after a request")
	}
	get(t, h, http.MethodGet, "/")
	select {
	case <-h.wake:
		t.Error("a request while active woke the sampler")
	default:
	}
	clk.Step(time.Minute)
	if h.active(clk.Now()) {
		t.Error("active a minute after the last request")
	}
	c := h.hub.subscribe("")
	if !h.active(clk.Now()) {
		t.Error("not active with a live viewer")
	}
	h.hub.unsubscribe(c)
}

func (h *Handler) samplesOf(task string) int {
	h.usage.mu.Lock()
	defer h.usage.mu.Unlock()
	return len(h.usage.tasks[task])
}

func (h *Handler) lastSample(task string) time.Time {
	h.usage.mu.Lock()
	defer h.usage.mu.Unlock()
	s := h.usage.tasks[task]
	if len(s) == 0 {
		return time.Time{}
	}
	return s[len(s)-1].at
}

// waitFor polls cond with a deadline (the sampler runs on its own).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		goruntime.Gosched()
	}
}

func TestSparkline(t *testing.T) {
	hist := newHistory(4, 40*time.Second)
	for i, s := range []Usage{{0, 10 << 20}, {5, 20 << 20}, {15, 30 << 20}, {10, 40 << 20}} { // a new container at the end
		hist.record(t0.Add(time.Duration(i)*10*time.Second), map[string]Usage{"web": s})
	}
	v := hist.view("web", true)
	if v.CPU.Points != "33.3,10 66.7,1" || v.CPU.Value != "100%" {
		t.Errorf("CPU %+v", v.CPU)
	}
	if v.Mem.Points != "0.0,14 33.3,10 66.7,6 100.0,1" || v.Mem.Value != "40 MiB" {
		t.Errorf("memory %+v", v.Mem)
	}
	if v := hist.view("web", false); v.CPU.Value != "-" || v.Mem.Value != "-" {
		t.Errorf("a task that does not run shows %q %q", v.CPU.Value, v.Mem.Value)
	}
	for in, want := range map[float64]string{0.004: "0.4%", 0.12: "12%", 1.8: "180%"} {
		if got := percent(in); got != want {
			t.Errorf("percent(%v) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[float64]string{512: "512 B", 2048: "2.0 KiB", 24.1 * (1 << 20): "24 MiB", 3 << 30: "3.0 GiB"} {
		if got := bytesIEC(in); got != want {
			t.Errorf("bytesIEC(%v) = %q, want %q", in, got, want)
		}
	}
}

// TestImportsNoContainerd: the page reaches containerd only through the
// daemon: neither containerd nor pkg/runtime is among its dependencies.
func TestImportsNoContainerd(t *testing.T) {
	goBin := filepath.Join(goruntime.GOROOT(), "bin", "go")
	out, err := exec.Command(goBin, "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/containerd/") || strings.HasPrefix(dep, "github.com/warren/reconciler/pkg/runtime") ||
			strings.HasPrefix(dep, "github.com/warren/reconciler/cmd/") {
			t.Errorf("pkg/webui depends on %s", dep)
		}
	}
}

func TestAssetsRevalidate(t *testing.T) {
	h, _ := newTestHandler(newFakeStatus(node()))
	w := get(t, h, http.MethodGet, "/assets/style.css")
	if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/css") || w.Header().Get("ETag") == "" {
		t.Fatalf("GET /assets/style.css = %d %v", w.Code, w.Header())
	}
	req := httptest.NewRequest(http.MethodGet, "/assets/style.css", nil)
	req.Header.Set("If-None-Match", w.Header().Get("ETag"))
	w2 := httptest.NewRecorder()
	h.ServeHTTP(w2, req)
	if w2.Code != http.StatusNotModified {
		t.Errorf("revalidation = %d, want 304", w2.Code)
	}
	_, _ = io.Copy(io.Discard, w.Body)
}

// TestPageWeight: the list of 20 running tasks with full sparklines, its
// style sheet, script and icon stay small (docs/api.md says the figure).
func TestPageWeight(t *testing.T) {
	st := Status{}
	for i := range 20 {
		st.Tasks = append(st.Tasks, reconcile.TaskStatus{Name: fmt.Sprintf("task-%02d", i), Phase: reconcile.PhaseRunning, Message: "running",
			Image: "registry.example.com/team/app:v1.2.3", StartedAt: t0.Add(-time.Hour), Restarts: i})
	}
	h, _ := newTestHandler(newFakeStatus(st), func(c *Config) { c.Usage = &fakeUsage{} })
	for s := range h.cfg.Samples {
		u := map[string]Usage{}
		for i, task := range st.Tasks {
			u[task.Name] = Usage{CPUSeconds: float64(s*s*(i+1)) / 7, MemoryBytes: float64((20 + s%7 + i) << 20)}
		}
		h.usage.record(t0.Add(time.Duration(s-h.cfg.Samples)*h.cfg.SampleEvery), u)
	}
	page := get(t, h, http.MethodGet, "/").Body.Len()
	if n := strings.Count(get(t, h, http.MethodGet, "/").Body.String(), "<polyline"); n != 40 {
		t.Fatalf("%d sparklines, want 40", n)
	}
	total := page
	for _, a := range []string{"style.css", "live.js", "icon.svg"} {
		total += get(t, h, http.MethodGet, "/assets/"+a).Body.Len()
	}
	t.Logf("20 tasks: / is %d bytes, %d with its assets", page, total)
	if total > 64<<10 {
		t.Errorf("20 tasks weigh %d bytes, over 64 KiB", total)
	}
}
