package webui

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/warren/reconciler/pkg/clock"
	"github.com/warren/reconciler/pkg/observed"
	"github.com/warren/reconciler/pkg/reconcile"
)

// Status is what the page shows of the node at one moment.
type Status struct {
	Tasks     []reconcile.TaskStatus
	Unmanaged []observed.Unmanaged
	Manifests reconcile.ManifestStatus
	// Source is the git source's state; nil when the manifests come from
	// a directory.
	Source *Source
}

// Source is what the page shows of the git source.
type Source struct {
	URL       string
	Commit    string // the applied commit, "" before the first sync
	RefName   string
	AppliedAt time.Time
	Signer    string // who signed it, "" without verification
	LastError string // of the last sync, "" when it succeeded
}

// StatusSource is the status the daemon keeps.
type StatusSource interface {
	Status() Status
	// Changed returns a channel closed at the next change of a task's
	// status.
	Changed() <-chan struct{}
}

// SpecSource is the desired spec the daemon holds for a task.
type SpecSource interface {
	// Spec returns the task's spec as applied, rendered for people (YAML);
	// false when the task is not desired.
	Spec(task string) (string, bool)
}

// LogReader reads a task's log, as `reconciler logs` does.
type LogReader interface {
	// Tail returns the last n lines of the task's newest container, oldest
	// first; none (and no error) when it has no log yet.
	Tail(task string, n int) ([]string, error)
	// Follow calls line with the last n lines and then with each new one,
	// across rotations and replaced containers, until ctx is done or line
	// returns false.
	Follow(ctx context.Context, task string, n int, line func(string) bool) error
}

// Usage is what a running task uses: its CPU time so far (a counter) and
// its memory now (working set).
type Usage struct {
	CPUSeconds  float64
	MemoryBytes float64
}

// UsageSource is the CPU and memory figures the daemon collects.
type UsageSource interface {
	// Usage returns the usage of each running task.
	Usage() map[string]Usage
}

// Config configures a Handler. Zero values take the documented defaults.
type Config struct {
	Status StatusSource // required
	Specs  SpecSource   // nil: no spec on the task pages
	Logs   LogReader    // nil: no log on the task pages
	Usage  UsageSource  // nil: no CPU and memory
	// Title names the node on the page (its host name).
	Title string
	Clock clock.Clock // default clock.Real
	Log   logr.Logger
	// SampleEvery is how often Run records the usage of each task while
	// the page is looked at (a request, or a live viewer, in the last
	// ActiveFor); default 5s, the age of the runtime's figures. Samples is
	// how many it keeps per task; default 60 (the sparklines then span 5
	// minutes). Nobody looking, nothing is asked of the daemon.
	SampleEvery time.Duration
	Samples     int
	ActiveFor   time.Duration // default 15m
	// MaxClients bounds the live viewers (event streams) at once; one
	// more is answered 503 and still has the page without updates.
	// Default 16.
	MaxClients int
	// LogLines is how many lines of its log a task's page shows; default
	// 200.
	LogLines int
	// WriteTimeout is how long a write to a live viewer may block before
	// the viewer is dropped; default 10s.
	WriteTimeout time.Duration
}

func (c *Config) defaults() {
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.SampleEvery <= 0 {
		c.SampleEvery = 5 * time.Second
	}
	if c.Samples <= 1 {
		c.Samples = 60
	}
	if c.ActiveFor <= 0 {
		c.ActiveFor = 15 * time.Minute
	}
	if c.MaxClients <= 0 {
		c.MaxClients = 16
	}
	if c.LogLines <= 0 {
		c.LogLines = 200
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.Title == "" {
		c.Title = "reconciler"
	}
}

// Handler serves the page. Its live updates and usage samples need Run.
type Handler struct {
	cfg     Config
	mux     *http.ServeMux
	pages   *pages
	usage   *history
	hub     *hub
	slots   chan struct{} // one per live viewer
	sampled chan struct{} // Run's sampler tells its hub a sample was taken
	wake    chan struct{} // a request tells an idle sampler to sample now
	done    chan struct{} // closed when Run returns: the streams end

	mu       sync.Mutex
	lastSeen time.Time // of the last request
}

// New returns the page's handler; it starts nothing (see Run).
func New(cfg Config) *Handler {
	cfg.defaults()
	h := &Handler{
		cfg:     cfg,
		pages:   mustPages(),
		usage:   newHistory(cfg.Samples, time.Duration(cfg.Samples)*cfg.SampleEvery),
		hub:     newHub(),
		slots:   make(chan struct{}, cfg.MaxClients),
		sampled: make(chan struct{}, 1),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", h.serveList)
	mux.HandleFunc("GET /events", h.serveListEvents)
	mux.HandleFunc("GET /tasks/{name}", h.serveTask)
	mux.HandleFunc("GET /tasks/{name}/events", h.serveTaskEvents)
	mux.HandleFunc("GET /tasks/{name}/log", h.serveLog)
	mux.HandleFunc("GET /assets/{file}", h.serveAsset)
	h.mux = mux
	return h
}

// contentSecurityPolicy keeps every request of the page on the device: the
// style sheet, the script and the event streams come from the daemon
// itself, and nothing is inline (the sparklines are SVG elements of the
// page, not images).
const contentSecurityPolicy = "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// ServeHTTP answers GET and HEAD; any other method is 405: nothing on the
// page can change anything on the node.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "the web page is read-only: GET only", http.StatusMethodNotAllowed)
		return
	}
	hd := w.Header()
	hd.Set("Content-Security-Policy", contentSecurityPolicy)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	h.seen()
	h.mux.ServeHTTP(w, r)
}

// Run keeps the page live until ctx is done: it samples the usage of each
// task every SampleEvery while the page is looked at and, at each change of
// the status or new sample,
// renders the views that live viewers watch, once each, and hands them
// over. Call it once.
func (h *Handler) Run(ctx context.Context) error {
	defer close(h.done)
	sampler := make(chan struct{})
	go func() {
		defer close(sampler)
		h.sample(ctx)
	}()
	defer func() { <-sampler }()
	for {
		changed := h.cfg.Status.Changed()
		h.broadcast()
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-h.sampled:
		}
	}
}

// seen records a request, and wakes the sampler if it was idle.
func (h *Handler) seen() {
	now := h.cfg.Clock.Now()
	h.mu.Lock()
	idle := now.Sub(h.lastSeen) >= h.cfg.ActiveFor
	h.lastSeen = now
	h.mu.Unlock()
	if idle {
		select {
		case h.wake <- struct{}{}:
		default:
		}
	}
}

// active says whether the page was looked at in the last ActiveFor, or is
// looked at now.
func (h *Handler) active(now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return now.Sub(h.lastSeen) < h.cfg.ActiveFor || h.hub.count() > 0
}

// sample records the usage of each task every SampleEvery while the page
// is looked at, until ctx is done, and tells the hub after each; a request
// after a quiet time has a sample taken at once.
func (h *Handler) sample(ctx context.Context) {
	if h.cfg.Usage == nil {
		return
	}
	alarm := clock.NewAlarm(h.cfg.Clock)
	defer alarm.Stop()
	for {
		// The next sample is due a period after this one starts, however
		// long the figures take to come.
		now := h.cfg.Clock.Now()
		alarm.Reset(h.cfg.SampleEvery)
		if h.active(now) {
			h.usage.record(now, h.cfg.Usage.Usage())
			select {
			case h.sampled <- struct{}{}:
			default:
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-alarm.C():
		case <-h.wake:
		}
	}
}
