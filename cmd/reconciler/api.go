package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/warren/reconciler/pkg/observed"
	"github.com/warren/reconciler/pkg/reconcile"
	"github.com/warren/reconciler/pkg/source"
)

// apiSocket is the local API's unix socket under the state directory.
func apiSocket(stateDir string) string { return filepath.Join(stateDir, "reconciler.sock") }

// statusResponse is GET /status.
type statusResponse struct {
	Tasks     []reconcile.TaskStatus   `json:"tasks"`
	Unmanaged []observed.Unmanaged     `json:"unmanaged"`
	Manifests reconcile.ManifestStatus `json:"manifests"`
	// Source is the git source's status; absent without --git.
	Source *source.Status `json:"source,omitempty"`
}

// apiServer serves the local API: health, readiness, status and metrics.
type apiServer struct {
	ctrl *reconcile.Controller
	ping func(context.Context) error
	reg  *prometheus.Registry
	log  logr.Logger
	// source is the git source, nil without --git.
	source *source.Source
	web    webPage // the web page at / (web.go)
	// tokenFile is --api-token-file: the --listen listener's bearer token (auth.go).
	tokenFile string
}

func (a *apiServer) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := a.ping(r.Context()); err != nil {
			http.Error(w, "containerd: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-a.ctrl.Ready():
			fmt.Fprintln(w, "ok")
		default:
			http.Error(w, "first sync not done", http.StatusServiceUnavailable)
		}
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		resp := statusResponse{Tasks: a.ctrl.Status(), Unmanaged: a.ctrl.Unmanaged(), Manifests: a.ctrl.Manifests()}
		if a.source != nil {
			st := a.source.Status()
			resp.Source = &st
		}
		writeJSON(w, http.StatusOK, resp)
	})
	mux.HandleFunc("POST /sync", a.handleSync)
	mux.HandleFunc("GET /status/{task}", func(w http.ResponseWriter, r *http.Request) {
		st, ok := a.ctrl.TaskStatus(r.PathValue("task"))
		if !ok {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no task " + r.PathValue("task")})
			return
		}
		writeJSON(w, http.StatusOK, st)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{ErrorLog: nil}))
	mux.Handle("/", a.webUI()) // every path above wins over it
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// serve listens on the unix socket (mode 0600) and, if listen is set, on TCP,
// until ctx is done.
func (a *apiServer) serve(ctx context.Context, socket, listen string) error {
	_ = os.Remove(socket) // a previous process's; only root can write here
	ul, err := net.Listen("unix", socket)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", socket, err)
	}
	if err := os.Chmod(socket, 0o600); err != nil {
		ul.Close()
		return fmt.Errorf("listen on %s: %w", socket, err)
	}
	listeners := []net.Listener{ul}
	if listen != "" {
		tl, err := net.Listen("tcp", listen)
		if err != nil {
			ul.Close()
			return fmt.Errorf("listen on %s: %w", listen, err)
		}
		listeners = append(listeners, tl)
	}
	srv := &http.Server{Handler: a.handler(), ReadHeaderTimeout: 5 * time.Second}
	// The socket's file mode guards it; --listen's requests carry the token.
	tcp := &http.Server{Handler: requireToken(a.tokenFile, a.log, srv.Handler), ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, len(listeners))
	for i, l := range listeners {
		a.log.Info("serving the local API", "address", l.Addr().String())
		s := srv
		if i > 0 {
			s = tcp
		}
		go func() { errc <- s.Serve(l) }()
	}
	go a.runWeb(ctx, socket)
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			a.log.Error(err, "local API stopped")
		}
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	_ = tcp.Shutdown(sctx)
	_ = os.Remove(socket)
	return nil
}

// apiClient talks to a running daemon's local API.
type apiClient struct {
	http *http.Client
	base string
}

// newAPIClient reaches the daemon on addr: a TCP host:port, or else the unix
// socket under stateDir.
func newAPIClient(stateDir, addr string) *apiClient {
	if addr != "" {
		return &apiClient{http: &http.Client{Timeout: 5 * time.Second}, base: "http://" + addr}
	}
	sock := apiSocket(stateDir)
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}
	return &apiClient{http: &http.Client{Transport: tr, Timeout: 5 * time.Second}, base: "http://reconciler"}
}

// errNoTask is get's answer for a task the daemon does not know.
var errNoTask = errors.New("no such task")

func (c *apiClient) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("reach the reconciler daemon (is `reconciler run` running with this --state-dir?): %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return errNoTask
	}
	if err := unauthorized(http.MethodGet, path, resp); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// post sends POST path and decodes the JSON answer into v, whatever its
// status code, which it returns.
func (c *apiClient) post(ctx context.Context, path string, v any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("reach the reconciler daemon (is `reconciler run` running with this --state-dir?): %w", err)
	}
	defer resp.Body.Close()
	if err := unauthorized(http.MethodPost, path, resp); err != nil {
		return resp.StatusCode, err
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return resp.StatusCode, fmt.Errorf("POST %s: %s", path, resp.Status)
	}
	return resp.StatusCode, nil
}
