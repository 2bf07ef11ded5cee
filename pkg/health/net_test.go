package health

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warren/reconciler/pkg/desired"
)

// TestNetProbes: http and tcp probes on the host's network against local
// servers: what is healthy, what is shown, and that a probe never outlives
// its timeout.
func TestNetProbes(t *testing.T) {
	hang := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("fine\n")) })
	mux.HandleFunc("/fail", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "db down", http.StatusServiceUnavailable) })
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/fail", http.StatusFound) })
	mux.HandleFunc("/big", func(w http.ResponseWriter, _ *http.Request) {
		for range 1 << 10 { // 1 MiB: the probe reads 4 KiB of it
			w.Write([]byte(strings.Repeat("x", 1<<10)))
		}
	})
	mux.HandleFunc("/hang", func(http.ResponseWriter, *http.Request) { <-hang })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer close(hang) // before Close, which waits for the handlers
	port, _ := strconv.Atoi(srv.URL[strings.LastIndexByte(srv.URL, ':')+1:])
	closed := func() int { // a port nothing listens on
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}()

	for _, c := range []struct {
		name  string
		check Check
		ok    bool
		shown string // in the output
	}{
		{"http 200", Check{Kind: KindHTTP, Port: port, Path: "/ok"}, true, `http 200 in`},
		{"http 503", Check{Kind: KindHTTP, Port: port, Path: "/fail"}, false, `http 503`},
		{"http redirect not followed", Check{Kind: KindHTTP, Port: port, Path: "/moved"}, true, `http 302`},
		{"http large body", Check{Kind: KindHTTP, Port: port, Path: "/big"}, true, `http 200`},
		{"http hangs past the timeout", Check{Kind: KindHTTP, Port: port, Path: "/hang"}, false, `no answer within 300ms`},
		{"http refused", Check{Kind: KindHTTP, Port: closed, Path: "/"}, false, `connection refused`},
		{"tcp connects", Check{Kind: KindTCP, Port: port}, true, `connected`},
		{"tcp refused", Check{Kind: KindTCP, Port: closed}, false, `connection refused`},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.check.Timeout = 300 * time.Millisecond
			m := NewMonitor(Config{})
			defer m.Close()
			began := time.Now()
			v, out := m.probe(context.Background(), Target{Check: c.check, Network: desired.NetworkHost})
			ok := v == pass
			if took := time.Since(began); took > time.Second {
				t.Errorf("the probe took %s, its timeout is %s", took, c.check.Timeout)
			}
			if ok != c.ok || !strings.Contains(out, c.shown) {
				t.Errorf("probe = %v, %q; want %v and %q in it", ok, out, c.ok, c.shown)
			}
			if len(out) > maxShown+64 {
				t.Errorf("shown %d bytes of the answer, want at most about %d", len(out), maxShown)
			}
		})
	}
}

// TestNetProbeNeedsAProcess: a task off the host's network is probed in
// its process's namespace; without a process (or one gone) there is
// nothing to probe, and the probe says nothing of the task.
func TestNetProbeNeedsAProcess(t *testing.T) {
	for _, pid := range []uint32{0, 1 << 30} {
		for _, kind := range []Kind{KindTCP, KindHTTP} {
			m := NewMonitor(Config{})
			v, out := m.probe(context.Background(), Target{Pid: pid, Network: desired.NetworkNone,
				Check: Check{Kind: kind, Port: 80, Path: "/", Timeout: time.Second}})
			m.Close()
			if v != unknown || out == "" {
				t.Errorf("pid %d %s: probe = %v, %q; want unknown, saying why", pid, kind, v, out)
			}
		}
	}
}
