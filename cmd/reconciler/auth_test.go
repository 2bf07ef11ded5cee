package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/warren/reconciler/pkg/reconcile"
)

func TestCheckListen(t *testing.T) {
	for _, tc := range []struct {
		listen, token string
		err           string // "" when allowed
	}{
		{"", "", ""},
		{"127.0.0.1:9090", "", ""},
		{"127.3.4.5:9090", "", ""},
		{"[::1]:9090", "", ""},
		{"localhost:9090", "", ""},
		{"LOCALHOST:9090", "", ""},
		{"0.0.0.0:9090", "", "--listen 0.0.0.0:9090 is not a loopback address: serving the API there needs --api-token-file FILE"},
		{":9090", "", "--listen :9090 is not a loopback address"},
		{"[::]:9090", "", "not a loopback address"},
		{"192.168.1.5:9090", "", "not a loopback address"},
		{"edge-1.example:9090", "", "not a loopback address"},
		{"0.0.0.0:9090", "/etc/t", ""},
		{"127.0.0.1:9090", "/etc/t", ""},
		{"", "/etc/t", "--api-token-file needs --listen"},
		{"9090", "", "--listen 9090: "},
	} {
		err := checkListen(tc.listen, tc.token)
		if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("checkListen(%q, %q) = %v, want %q", tc.listen, tc.token, err, tc.err)
		}
	}
}

// TestRunRefusesAnOpenListener: run does not start on an address off
// loopback without a token; it exits 2 naming both flags.
func TestRunRefusesAnOpenListener(t *testing.T) {
	for _, args := range [][]string{
		{"run", "--state-dir", t.TempDir(), "--listen", "0.0.0.0:9090"},
		{"run", "--state-dir", t.TempDir(), "--listen=:9090"},
		{"run", "--state-dir", t.TempDir(), "--api-token-file", "/etc/t"},
	} {
		var out, errb bytes.Buffer
		code := runMain(args, &out, &errb)
		if code != exitUsage || !strings.Contains(errb.String(), "--listen") || !strings.Contains(errb.String(), "--api-token-file") {
			t.Errorf("%q: exit %d, stderr %q; want %d naming --listen and --api-token-file", args, code, errb.String(), exitUsage)
		}
		if _, err := os.Stat(filepath.Join(args[2], "reconciler.sock")); err == nil {
			t.Errorf("%q: the API was served", args)
		}
	}
}

// logSink records the messages of a logger, to count them and to check
// that a token never shows.
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (s *logSink) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.lines = append(s.lines, args)
	}, funcr.Options{})
}

func (s *logSink) count(msg string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, l := range s.lines {
		if strings.Contains(l, `"msg"="`+msg+`"`) {
			n++
		}
	}
	return n
}

func (s *logSink) all() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.lines, "\n")
}

// TestRequireToken: the --listen listener's requests without the token of
// the file, or with another, get 401 and nothing else; the file is read
// at each request (a rotation takes effect at once); an empty or missing
// file refuses every request; each change of the file's state is logged
// once, the token never.
func TestRequireToken(t *testing.T) {
	file := filepath.Join(t.TempDir(), "token")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("  first-token\n")
	var logs logSink
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	srv := httptest.NewServer(requireToken(file, logs.logger(), ok))
	defer srv.Close()
	get := func(header string) (int, string, http.Header) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/status", nil)
		if err != nil {
			t.Fatal(err)
		}
		if header != "" {
			req.Header.Set("Authorization", header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	refused := func(name, header string) {
		t.Helper()
		code, body, h := get(header)
		if code != http.StatusUnauthorized || h.Get("WWW-Authenticate") != "Bearer" || body != "Unauthorized\n" {
			t.Errorf("%s: %d %q, WWW-Authenticate %q; want 401 \"Unauthorized\" and Bearer", name, code, body, h.Get("WWW-Authenticate"))
		}
	}
	accepted := func(name, header string) {
		t.Helper()
		if code, body, _ := get(header); code != http.StatusOK || body != "ok\n" {
			t.Errorf("%s: %d %q; want 200", name, code, body)
		}
	}
	refused("no token", "")
	refused("a wrong token", "Bearer second-token")
	refused("a prefix of the token", "Bearer first")
	refused("another scheme", "Basic first-token")
	refused("the scheme alone", "Bearer")
	accepted("the token", "Bearer first-token")
	accepted("the scheme in other case", "bearer first-token")

	write("second-token") // rotated
	refused("the old token", "Bearer first-token")
	accepted("the new token", "Bearer second-token")
	if n := logs.count("API token rotated"); n != 1 {
		t.Errorf("the rotation was logged %d times", n)
	}

	write(" \n") // empty
	refused("an empty file, no token", "")
	refused("an empty file, the scheme alone", "Bearer ")
	refused("an empty file, the last token", "Bearer second-token")
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	refused("no file", "Bearer second-token")
	refused("no file, again", "Bearer second-token")
	if n := logs.count("API token file unusable; every request on --listen is refused until it is fixed"); n != 2 {
		t.Errorf("the unusable file was logged %d times, want 2 (empty, then missing):\n%s", n, logs.all())
	}
	write("third-token")
	accepted("the file back", "Bearer third-token")
	accepted("the file back, again", "Bearer third-token")
	if n := logs.count("API token file usable again"); n != 1 {
		t.Errorf("the file back was logged %d times", n)
	}
	for _, token := range []string{"first-token", "second-token", "third-token"} {
		if l := logs.all(); strings.Contains(l, token) {
			t.Errorf("%s was logged:\n%s", token, l)
		}
	}
}

// TestRequireTokenOff: without a token file (--listen on loopback) the
// requests need none.
func TestRequireTokenOff(t *testing.T) {
	h := requireToken("", logr.Discard(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") }))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/status", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("without a token file: %d", rec.Code)
	}
}

// TestServeToken: the daemon's two listeners: the unix socket needs no
// token, --listen does.
func TestServeToken(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	rt := stubRuntime{release: make(chan struct{})}
	close(rt.release)
	ctrl := reconcile.New(rt, reconcile.Config{Metrics: reconcile.NewMetrics(reg)})
	var logs logSink
	api := &apiServer{ctrl: ctrl, ping: func(context.Context) error { return nil }, reg: reg, log: logs.logger(), tokenFile: file}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	socket := filepath.Join(dir, "reconciler.sock")
	go func() { done <- api.serve(ctx, socket, "127.0.0.1:0") }()
	defer func() { cancel(); <-done }()

	// The TCP listener's address, from the log.
	addrRE := regexp.MustCompile(`"msg"="serving the local API" "address"="(127\.0\.0\.1:\d+)"`)
	var addr string
	deadline := time.Now().Add(10 * time.Second)
	for addr == "" {
		if m := addrRE.FindStringSubmatch(logs.all()); m != nil {
			addr = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("no TCP listener logged:\n%s", logs.all())
		} else {
			time.Sleep(10 * time.Millisecond)
		}
	}

	unix := newAPIClient(dir, "")
	var st statusResponse
	if err := unix.get(t.Context(), "/status", &st); err != nil {
		t.Errorf("the unix socket without a token: %v", err)
	}
	tcp := newAPIClient(dir, addr)
	if err := tcp.get(t.Context(), "/status", &st); err == nil || !strings.Contains(err.Error(), "401 Unauthorized") || !strings.Contains(err.Error(), "--api-token-file") {
		t.Errorf("--listen without a token: %v", err)
	}
	tcp.http.Transport = &bearerTransport{file: file, next: http.DefaultTransport}
	if err := tcp.get(t.Context(), "/status", &st); err != nil {
		t.Errorf("--listen with the token: %v", err)
	}
	// HTTP/1.1 to the socket with a raw request: no Authorization at all.
	c, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "GET /healthz HTTP/1.1\r\nHost: reconciler\r\nConnection: close\r\n\r\n")
	b, _ := io.ReadAll(c)
	if !strings.HasPrefix(string(b), "HTTP/1.1 200 OK") {
		t.Errorf("GET /healthz on the socket: %q", b)
	}
}

// TestClientToken: the client commands send the token of --api-token-file
// or $RECONCILER_API_TOKEN_FILE with --api, read at each request.
func TestClientToken(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other")
	if err := os.WriteFile(other, []byte("wrong"), 0o600); err != nil {
		t.Fatal(err)
	}
	states := podFixture()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, statusResponse{Tasks: states})
	})
	mux.HandleFunc("GET /status/{task}", func(w http.ResponseWriter, r *http.Request) {
		for _, st := range states {
			if st.Name == r.PathValue("task") {
				writeJSON(w, http.StatusOK, st)
				return
			}
		}
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no task"})
	})
	mux.HandleFunc("POST /sync", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusConflict, map[string]string{"error": "the daemon has no git source (run it with --git)"})
	})
	srv := httptest.NewServer(requireToken(file, logr.Discard(), mux))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	t.Setenv(tokenFileEnv, "")
	for _, tc := range []struct {
		name     string
		env      string
		args     []string
		code     int
		stdout   string
		stderrIn string
	}{
		{name: "status with the token", args: []string{"status", "--api", addr, "--api-token-file", file}, stdout: "pair-back"},
		{name: "status, the token from the environment", env: file, args: []string{"status", "web", "--api", addr}, stdout: "web "},
		{name: "the flag wins over the environment", env: other, args: []string{"status", "--api", addr, "--api-token-file", file}, stdout: "pair-back"},
		{name: "wait with the token", args: []string{"wait", "web", "pair", "--api", addr, "--api-token-file", file, "--timeout", "10s"}, stdout: "web: running\n"},
		{name: "logs with the token", args: []string{"logs", "pair", "--api", addr, "--api-token-file", file, "--state-dir", dir}, code: exitUsage,
			stderrIn: "a container name must be specified for pod pair"},
		{name: "sync with the token", args: []string{"sync", "--api", addr, "--api-token-file", file}, code: exitFailure,
			stderrIn: "reconciler sync: the daemon has no git source"},
		{name: "status without a token", args: []string{"status", "--api", addr}, code: exitFailure,
			stderrIn: "GET /status: 401 Unauthorized: the daemon's --listen wants its bearer token (--api-token-file FILE or $RECONCILER_API_TOKEN_FILE)"},
		{name: "wait with a wrong token", args: []string{"wait", "web", "--api", addr, "--api-token-file", other}, code: exitFailure,
			stderrIn: "401 Unauthorized"},
		{name: "sync without a token", args: []string{"sync", "--api", addr}, code: exitFailure,
			stderrIn: "POST /sync: 401 Unauthorized"},
		{name: "a missing token file", args: []string{"status", "--api", addr, "--api-token-file", filepath.Join(dir, "nope")}, code: exitFailure,
			stderrIn: "the API token (--api-token-file or $RECONCILER_API_TOKEN_FILE): open "},
		{name: "the flag without --api", args: []string{"status", "--state-dir", dir, "--api-token-file", file}, code: exitUsage,
			stderrIn: "--api-token-file needs --api"},
		{name: "the environment without --api: the socket", env: file, args: []string{"status", "--state-dir", dir}, code: exitFailure,
			stderrIn: "reach the reconciler daemon"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(tokenFileEnv, tc.env)
			var out, errb bytes.Buffer
			code := runMain(tc.args, &out, &errb)
			if code != tc.code || !strings.Contains(out.String(), tc.stdout) || !strings.Contains(errb.String(), tc.stderrIn) {
				t.Errorf("%q = %d, stdout %q, stderr %q; want %d, %q, stderr with %q", tc.args, code, out.String(), errb.String(), tc.code, tc.stdout, tc.stderrIn)
			}
		})
	}
}
