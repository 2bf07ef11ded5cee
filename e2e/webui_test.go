package e2e

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/warren/reconciler/e2e/testenv"
)

var webuiDocs = flag.Bool("webui.docs", false, "TestWebUI: also write docs/webui.png, once the sparklines are drawn (about 30 s more)")

// TestWebUI opens the daemon's web page in headless Chromium (Debian's
// chromium; make deps installs it): the page lists the tasks of the
// running daemon, a phase change shows without a reload, a task's page
// streams new log lines, nothing scrolls sideways at 800 or 360 px, and
// the browser asks nothing of any host but the daemon's. The screenshots
// go to build/webui.png and build/webui-task.png.
func TestWebUI(t *testing.T) {
	n := newNode(t, "e2e-web")
	browser, err := exec.LookPath("chromium")
	if err != nil {
		testenv.Require(t, "TestWebUI", "no chromium in PATH (make deps installs Debian's chromium)")
	}
	dir := t.TempDir()
	port := freePort(t)
	host := fmt.Sprintf("127.0.0.1:%d", port)
	base := "http://" + host
	web := testenv.Manifest("web", "args: [-tick, 200ms, -message, web]")
	app := testenv.Manifest("app", "args: [-message, app]")
	testenv.WriteFile(t, dir, "web.yaml", web)
	testenv.WriteFile(t, dir, "app.yaml", app)
	testenv.WriteFile(t, dir, "job.yaml", testenv.Manifest("job", "args: [-exit-after, 500ms]", "restartPolicy: Never"))
	startReconciler(t, n.ns, dir, "--listen", host)
	waitPhases(t, base, map[string]string{"web": "Running", "app": "Running", "job": "Completed"})

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox,
		chromedp.WindowSize(800, 500), chromedp.Flag("hide-scrollbars", true))
	actx, cancel := chromedp.NewExecAllocator(t.Context(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	var mu sync.Mutex
	var requests []string
	// Listen starts the browser (with no timeout: a timeout of the first
	// call would stop the browser with it).
	if err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok {
			mu.Lock()
			requests = append(requests, e.Request.URL)
			mu.Unlock()
		}
	}); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	do := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(tctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	eval := func(what, expr string, v any) {
		t.Helper()
		b, err := chromedp.Run(ctx, chromedp.Evaluate[json.RawMessage](expr))
		if err == nil && v != nil {
			err = json.Unmarshal(b, v)
		}
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	poll := func(what, expr string) {
		t.Helper()
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(30*time.Second)))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return s
	}
	shot := func(file string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s (%d bytes)", file, len(png))
	}

	// The list: every task, live.
	do("open the page", chromedp.EmulateViewport(800, 500), chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.ID("task-web")))
	list := text("#live")
	for _, s := range []string{"web", "app", "job", "Running", "Completed", "localhost/reconciler/testapp:v1"} {
		if !strings.Contains(list, s) {
			t.Errorf("the list lacks %q:\n%s", s, list)
		}
	}
	poll("the page goes live", `document.getElementById('conn').textContent === 'live'`)

	// A phase change, without a reload: app's image cannot be had (the old
	// container keeps running, the task is not Running meanwhile), then
	// the manifest is as it was (in sync at once).
	eval("watch the phases", `window.marker = 'not reloaded';
		window.phases = [document.getElementById('task-app').dataset.phase];
		new MutationObserver(function () {
			var r = document.getElementById('task-app');
			var p = r ? r.dataset.phase : 'gone';
			if (window.phases[window.phases.length - 1] !== p) window.phases.push(p);
		}).observe(document.getElementById('live'), {childList: true, subtree: true});
		true`, nil)
	testenv.WriteFile(t, dir, "app.yaml", testenv.WithImage(app, "localhost/reconciler/missing:v1")+"  imagePullPolicy: Never\n")
	poll("app leaves Running on the page", `window.phases.some(function (p) { return p !== 'Running'; })`)
	testenv.WriteFile(t, dir, "app.yaml", app)
	poll("app is Running again on the page", `window.phases.length > 1 && window.phases[window.phases.length - 1] === 'Running'`)
	var phases []string
	var marker string
	eval("read the phases", `window.phases`, &phases)
	eval("read the marker", `window.marker`, &marker)
	if marker != "not reloaded" {
		t.Error("the page was reloaded")
	}
	t.Logf("app's phases on the page: %v", phases)
	shot(filepath.Join("..", "build", "webui.png"))
	if *webuiDocs {
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelectorAll('#task-web svg.spark').length === 2`,
			chromedp.WithPollingInterval(time.Second), chromedp.WithPollingTimeout(90*time.Second)))
		if err != nil {
			t.Fatalf("the sparklines are drawn: %v", err)
		}
		shot(filepath.Join("..", "docs", "webui.png"))
	}

	// A task's page: its log, and each new line as it is written.
	do("open web's page", chromedp.Navigate(base+"/tasks/web"), chromedp.WaitVisible(chromedp.ID("log")))
	poll("web's page goes live", `document.getElementById('conn').textContent === 'live'`)
	poll("web's log has a tick", `document.getElementById('log').textContent.indexOf('testapp: tick') >= 0`)
	var last string
	eval("read the last line", `window.marker = 'not reloaded';
		document.getElementById('log').textContent.trim().split('\n').pop()`, &last)
	poll("a new line shows", fmt.Sprintf(`document.getElementById('log').textContent.trim().split('\n').pop() !== %q`, last))
	eval("read the marker", `window.marker`, &marker)
	if marker != "not reloaded" {
		t.Error("web's page was reloaded")
	}
	page := text("main")
	for _, s := range []string{"Spec as applied", "image: localhost/reconciler/testapp:v1", "- -tick", "Container", "testapp: start"} {
		if !strings.Contains(page, s) {
			t.Errorf("web's page lacks %q:\n%s", s, page)
		}
	}
	shot(filepath.Join("..", "build", "webui-task.png"))

	// A small laptop and a phone: nothing wider than the screen.
	for _, w := range []int64{800, 360} {
		for _, p := range []string{"/", "/tasks/web"} {
			do(fmt.Sprintf("open %s at %d px", p, w), chromedp.EmulateViewport(w, 740), chromedp.Navigate(base+p), chromedp.WaitVisible(chromedp.ID("live")))
			var width, inner int
			eval("measure", `document.documentElement.scrollWidth`, &width)
			eval("measure", `window.innerWidth`, &inner)
			if width > inner {
				t.Errorf("%s scrolls sideways at %d px: %d px wide", p, w, width)
			}
		}
	}

	mu.Lock()
	defer mu.Unlock()
	var events bool
	for _, r := range requests {
		u, err := url.Parse(r)
		if err != nil || u.Host != host {
			t.Errorf("the browser asked another host: %s", r)
		}
		events = events || strings.HasSuffix(u.Path, "/events")
	}
	if len(requests) < 4 || !events {
		t.Errorf("requests seen: %q (want the pages, their assets and event streams)", requests)
	}
}

// waitPhases waits until the daemon's /status has each task in its phase.
func waitPhases(t *testing.T, base string, want map[string]string) {
	t.Helper()
	var last testenv.NodeStatus
	testenv.WaitFor(t, converge, fmt.Sprintf("phases %v", want), func() bool {
		resp, err := http.Get(base + "/status")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		last = testenv.NodeStatus{}
		if json.NewDecoder(resp.Body).Decode(&last) != nil {
			return false
		}
		got := 0
		for _, st := range last.Tasks {
			if want[st.Name] == st.Phase {
				got++
			}
		}
		return got == len(want)
	})
}
