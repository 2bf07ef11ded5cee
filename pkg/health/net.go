package health

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/warren/reconciler/pkg/desired"
)

// maxBody is how much of an HTTP probe's answer is read: what the status
// shows of it, and no more (a probe never reads a large body).
const maxBody = 4 << 10

// dial connects to the task's port over TCP: on the host's loopback for a
// task on the host's network; inside the task's network namespace
// otherwise (network: none has no route from the host). The socket is made
// in the namespace on a locked OS thread; once made it stays in it, so the
// rest of the exchange needs no namespace.
func dial(ctx context.Context, t Target, port int) (net.Conn, error) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	// No TCP keep-alive: the connection lives for one probe, and turning
	// it on costs four setsockopt calls per probe.
	d := net.Dialer{KeepAlive: -1}
	switch {
	case t.Network == desired.NetworkHost:
		return d.DialContext(ctx, "tcp", addr)
	case t.Network == desired.NetworkBridge && t.IP != "":
		// A bridge task is reached at its address, from the host, as
		// the other tasks reach it.
		return d.DialContext(ctx, "tcp", net.JoinHostPort(t.IP, strconv.Itoa(port)))
	}
	if t.Pid == 0 {
		return nil, errNoNamespace{errors.New("the task has no process")}
	}
	var conn net.Conn
	var dialErr error
	err := ns.WithNetNSPath(fmt.Sprintf("/proc/%d/ns/net", t.Pid), func(ns.NetNS) error {
		conn, dialErr = d.DialContext(ctx, "tcp", addr)
		return nil
	})
	if err != nil {
		return nil, errNoNamespace{err}
	}
	return conn, dialErr
}

// errNoNamespace is a dial that could not enter the task's network
// namespace: the probe says nothing of the task.
type errNoNamespace struct{ error }

func (e errNoNamespace) Unwrap() error { return e.error }

// netVerdict is the verdict of a failed dial or request.
func netVerdict(err error) verdict {
	if errors.As(err, new(errNoNamespace)) {
		return unknown
	}
	return fail
}

func tcpProbe(ctx context.Context, t Target) (verdict, string) {
	ctx, cancel := context.WithTimeout(ctx, t.Check.Timeout)
	defer cancel()
	conn, err := dial(ctx, t, t.Check.Port)
	if err != nil {
		return netVerdict(err), "tcp: " + err.Error()
	}
	conn.Close()
	return pass, fmt.Sprintf("tcp :%d connected", t.Check.Port)
}

// httpProbe GETs the check's path: 2xx and 3xx are healthy, a redirect is
// not followed, the body is read up to maxBody, the connection is closed.
// One request on one connection: written and parsed by net/http
// (Request.Write, ReadResponse), without a Transport and its goroutines
// and pools, which cost more than the probe itself.
func httpProbe(ctx context.Context, t Target) (verdict, string) {
	ctx, cancel := context.WithTimeout(ctx, t.Check.Timeout)
	defer cancel()
	url := fmt.Sprintf("http://127.0.0.1:%d%s", t.Check.Port, t.Check.Path)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return unknown, "http: " + err.Error()
	}
	req.Header.Set("User-Agent", "reconciler-health-probe")
	req.Close = true // Connection: close
	began := time.Now()
	conn, err := dial(ctx, t, t.Check.Port)
	if err != nil {
		return netVerdict(err), "http: " + err.Error()
	}
	defer conn.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(d)
	}
	if err := req.Write(conn); err != nil {
		return fail, "http: " + err.Error()
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 1024), req)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return fail, fmt.Sprintf("http: no answer within %s", t.Check.Timeout)
	}
	if err != nil {
		return fail, "http: " + err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	shown := fmt.Sprintf("http %d in %s: %q", resp.StatusCode, time.Since(began).Round(time.Millisecond), lastLines(body))
	if resp.StatusCode >= 200 && resp.StatusCode < 400 {
		return pass, shown
	}
	return fail, shown
}
