package webui

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"
)

// assets are the page's templates, style sheet, script and icon.
//
//go:embed assets
var assets embed.FS

// pages are the parsed templates and the static files, with their ETags.
type pages struct {
	tmpl   *template.Template
	static map[string]staticFile
}

type staticFile struct {
	body  []byte
	etag  string
	ctype string
}

func pathEscape(s string) string { return url.PathEscape(s) }

// wbr is s, escaped, where a line may break after each slash, colon and
// at sign: an image reference wraps where it reads best.
func wbr(s string) template.HTML {
	var b strings.Builder
	for _, r := range s {
		b.WriteString(template.HTMLEscapeString(string(r)))
		if r == '/' || r == ':' || r == '@' {
			b.WriteString("<wbr>")
		}
	}
	return template.HTML(b.String())
}

// short is a commit's first 12 digits.
func short(commit string) string { return commit[:min(12, len(commit))] }

func mustPages() *pages {
	tmpl := template.Must(template.New("").Funcs(template.FuncMap{"path": pathEscape, "short": short, "wbr": wbr}).ParseFS(assets, "assets/*.html"))
	p := &pages{tmpl: tmpl, static: map[string]staticFile{}}
	entries, err := fs.ReadDir(assets, "assets")
	if err != nil {
		panic(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".html") {
			continue
		}
		b, err := assets.ReadFile("assets/" + e.Name())
		if err != nil {
			panic(err)
		}
		sum := sha256.Sum256(b)
		p.static[e.Name()] = staticFile{body: b, etag: `"` + hex.EncodeToString(sum[:8]) + `"`, ctype: mime.TypeByExtension(path.Ext(e.Name()))}
	}
	return p
}

func (p *pages) render(w io.Writer, name string, data any) error {
	return p.tmpl.ExecuteTemplate(w, name, data)
}

// serve renders a whole page into a buffer first, so that an error gives a
// clean 500 instead of half a page.
func (h *Handler) serve(w http.ResponseWriter, code int, name string, data any) {
	var buf bytes.Buffer
	if err := h.pages.render(&buf, name, data); err != nil {
		h.cfg.Log.Error(err, "render the web page", "page", name)
		http.Error(w, "render the page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

func (h *Handler) serveList(w http.ResponseWriter, r *http.Request) {
	h.serve(w, http.StatusOK, "list", h.listView(h.cfg.Status.Status(), h.cfg.Clock.Now(), ""))
}

func (h *Handler) serveTask(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	v := h.taskView(h.cfg.Status.Status(), name, h.cfg.Clock.Now(), "../")
	if !v.Found {
		h.serve(w, http.StatusNotFound, "task", v)
		return
	}
	if h.cfg.Logs != nil {
		lines, err := h.cfg.Logs.Tail(name, h.cfg.LogLines)
		if err != nil {
			v.LogError = err.Error()
		}
		for _, l := range lines {
			v.Log = append(v.Log, clip(l))
		}
	}
	h.serve(w, http.StatusOK, "task", v)
}

// logTextLines is how many lines /tasks/NAME/log gives: the page's whole
// log for a browser without JavaScript.
const logTextLines = 5000

func (h *Handler) serveLog(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !h.known(name) || h.cfg.Logs == nil {
		http.Error(w, "no task "+name, http.StatusNotFound)
		return
	}
	lines, err := h.cfg.Logs.Tail(name, logTextLines)
	if err != nil {
		http.Error(w, "read the log of "+name+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	for _, l := range lines {
		io.WriteString(w, l+"\n")
	}
}

func (h *Handler) known(name string) bool {
	for _, t := range h.cfg.Status.Status().Tasks {
		if t.Name == name {
			return true
		}
	}
	return false
}

func (h *Handler) serveAsset(w http.ResponseWriter, r *http.Request) {
	f, ok := h.pages.static[r.PathValue("file")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("ETag", f.etag)
	w.Header().Set("Cache-Control", "no-cache") // asked again, answered 304 while unchanged
	if strings.Contains(r.Header.Get("If-None-Match"), f.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", f.ctype)
	_, _ = w.Write(f.body)
}

// maxLine is the longest log line the page shows; the rest is cut.
const maxLine = 4096

func clip(l string) string {
	if len(l) <= maxLine {
		return l
	}
	return strings.ToValidUTF8(l[:maxLine], "") + " [cut]"
}

// serveListEvents streams the task list: a "status" event with the list's
// HTML at once and at each change.
func (h *Handler) serveListEvents(w http.ResponseWriter, r *http.Request) {
	h.stream(w, r, "", nil)
}

// serveTaskEvents streams a task's page: "status" events with the HTML of
// its status and spec, and "log" events with its new log lines (JSON
// arrays), after a "log-reset" and the last lines.
func (h *Handler) serveTaskEvents(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !h.known(name) {
		http.Error(w, "no task "+name, http.StatusNotFound)
		return
	}
	h.stream(w, r, name, h.cfg.Logs)
}

// stream is one live viewer: the view at once, then each change until the
// viewer goes, Run ends, or a write to it blocks for WriteTimeout.
func (h *Handler) stream(w http.ResponseWriter, r *http.Request, view string, logs LogReader) {
	select {
	case h.slots <- struct{}{}:
		defer func() { <-h.slots }()
	default:
		w.Header().Set("Retry-After", "30")
		http.Error(w, "too many live viewers; reload the page for a still view", http.StatusServiceUnavailable)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Accel-Buffering", "no")
	if r.Method == http.MethodHead {
		return
	}
	rc := http.NewResponseController(w)
	c := h.hub.subscribe(view)
	defer h.hub.unsubscribe(c)
	ctx := r.Context()
	send := func(event string, data []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(h.cfg.WriteTimeout))
		if err := writeEvent(w, event, data); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if _, err := io.WriteString(w, "retry: 3000\n\n"); err != nil {
		return
	}
	var first bytes.Buffer
	now := h.cfg.Clock.Now()
	st := h.cfg.Status.Status()
	var err error
	if view == "" {
		err = h.pages.render(&first, "list-live", h.listView(st, now, ""))
	} else {
		err = h.pages.render(&first, "task-live", h.taskView(st, view, now, "../"))
	}
	if err != nil || !send("status", first.Bytes()) {
		return
	}
	var q *logQueue
	var ready <-chan struct{}
	if logs != nil {
		q = &logQueue{ready: make(chan struct{}, 1)}
		ready = q.ready
		fctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go h.followLog(fctx, logs, view, q)
		if !send("log-reset", nil) {
			return
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.done:
			return
		case b := <-c.mail:
			if !send("status", b) {
				return
			}
		case <-ready:
			batch, over, ended := q.take()
			if len(batch) > 0 {
				data, _ := json.Marshal(batch)
				if !send("log", data) {
					return
				}
			}
			if over {
				return // fell behind: its browser reconnects and starts again from the last lines
			}
			if ended {
				ready = nil
			}
		}
	}
}

// maxPending bounds the log a live viewer has not been sent yet; past it
// the viewer is dropped.
const maxPending = 1 << 20

// logQueue is the log read for one viewer and not sent yet.
type logQueue struct {
	ready chan struct{} // capacity 1: something to take

	mu    sync.Mutex
	lines []string
	size  int
	over  bool // maxPending was reached: the follower stopped
	ended bool // the follower returned
}

func (q *logQueue) push(l string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	l = clip(l)
	if q.size+len(l) > maxPending {
		q.over = true
		q.notify()
		return false
	}
	q.lines, q.size = append(q.lines, l), q.size+len(l)
	q.notify()
	return true
}

func (q *logQueue) end() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.ended = true
	q.notify()
}

func (q *logQueue) notify() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

func (q *logQueue) take() (lines []string, over, ended bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	lines, q.lines, q.size = q.lines, nil, 0
	return lines, q.over, q.ended
}

// followLog feeds q with the task's log until ctx is done or q is full.
func (h *Handler) followLog(ctx context.Context, logs LogReader, task string, q *logQueue) {
	defer q.end()
	err := logs.Follow(ctx, task, h.cfg.LogLines, q.push)
	if err != nil && ctx.Err() == nil {
		h.cfg.Log.V(1).Info("web page log stream ended", "task", task, "error", err.Error())
	}
}

// writeEvent writes one server-sent event; each line of data goes on a
// data: line of its own (a CR would end one too, so it is dropped).
func writeEvent(w io.Writer, event string, data []byte) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "event: %s\n", event)
	s := strings.ReplaceAll(string(data), "\r", "")
	for line := range strings.SplitSeq(s, "\n") {
		b.WriteString("data: ")
		b.WriteString(line)
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	_, err := w.Write(b.Bytes())
	return err
}
