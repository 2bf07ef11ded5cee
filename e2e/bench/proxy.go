package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// countingProxy sits between the reconciler and containerd on a unix socket
// and forwards every gRPC call unchanged (bytes in, bytes out), recording
// each call's method and times. It is how the benchmark counts the calls the
// reconciler makes, from outside the reconciler.
type countingProxy struct {
	socket  string
	backend *grpc.ClientConn
	srv     *grpc.Server

	mu    sync.Mutex
	calls []call
}

// call is one forwarded gRPC call.
type call struct {
	Method     string
	Start, End time.Time // End is zero while the call runs
}

const maxMsg = 64 << 20

func startProxy(socket, backend string) (*countingProxy, error) {
	cc, err := grpc.NewClient("unix://"+backend,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsg), grpc.MaxCallSendMsgSize(maxMsg)))
	if err != nil {
		return nil, fmt.Errorf("proxy: dial containerd: %w", err)
	}
	_ = os.Remove(socket)
	l, err := net.Listen("unix", socket)
	if err != nil {
		cc.Close()
		return nil, fmt.Errorf("proxy: %w", err)
	}
	p := &countingProxy{socket: socket, backend: cc}
	p.srv = grpc.NewServer(
		grpc.ForceServerCodec(rawCodec{}),
		grpc.UnknownServiceHandler(p.forward),
		grpc.MaxRecvMsgSize(maxMsg), grpc.MaxSendMsgSize(maxMsg))
	go func() { _ = p.srv.Serve(l) }()
	return p, nil
}

func (p *countingProxy) Close() {
	p.srv.Stop()
	p.backend.Close()
}

// mark returns the index of the next call to be recorded.
func (p *countingProxy) mark() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.calls)
}

// since returns a copy of the calls recorded from index i on.
func (p *countingProxy) since(i int) []call {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]call(nil), p.calls[min(i, len(p.calls)):]...)
}

// lastActivity is when the last call started or ended (zero: none yet), and
// whether a call is still running (long-lived streams excepted).
func (p *countingProxy) lastActivity() (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var last time.Time
	busy := false
	for _, c := range p.calls {
		if c.Start.After(last) {
			last = c.Start
		}
		if c.End.After(last) {
			last = c.End
		}
		if c.End.IsZero() && !longLived(c.Method) {
			busy = true
		}
	}
	return last, busy
}

// longLived are the streams that stay open for the reconciler's lifetime.
func longLived(method string) bool {
	return strings.HasSuffix(method, "/Subscribe")
}

// waitQuiet waits until no call has started or ended for quiet.
func (p *countingProxy) waitQuiet(ctx context.Context, quiet, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		last, busy := p.lastActivity()
		if !busy && time.Since(last) >= quiet {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("containerd calls did not stop for %s within %s", quiet, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (p *countingProxy) forward(_ any, ss grpc.ServerStream) error {
	method, ok := grpc.MethodFromServerStream(ss)
	if !ok {
		return errors.New("proxy: no method")
	}
	p.mu.Lock()
	idx := len(p.calls)
	p.calls = append(p.calls, call{Method: method, Start: time.Now()})
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.calls[idx].End = time.Now()
		p.mu.Unlock()
	}()

	in, _ := metadata.FromIncomingContext(ss.Context())
	out := metadata.MD{}
	for k, v := range in {
		if strings.HasPrefix(k, ":") || k == "content-type" || k == "user-agent" {
			continue
		}
		out[k] = v
	}
	ctx, cancel := context.WithCancel(metadata.NewOutgoingContext(ss.Context(), out))
	defer cancel()
	cs, err := p.backend.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, method, grpc.ForceCodec(rawCodec{}))
	if err != nil {
		return err
	}
	// Client to containerd.
	sent := make(chan error, 1)
	go func() {
		for {
			f := &frame{}
			if err := ss.RecvMsg(f); err != nil {
				if errors.Is(err, io.EOF) {
					sent <- cs.CloseSend()
				} else {
					cancel()
					sent <- err
				}
				return
			}
			if err := cs.SendMsg(f); err != nil {
				sent <- nil // the receive side below sees the real error
				return
			}
		}
	}()
	// Containerd to client.
	if md, err := cs.Header(); err == nil {
		if err := ss.SendHeader(md); err != nil {
			return err
		}
	}
	for {
		f := &frame{}
		if err := cs.RecvMsg(f); err != nil {
			ss.SetTrailer(cs.Trailer())
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err // a gRPC status: passed on as it is
		}
		if err := ss.SendMsg(f); err != nil {
			return err
		}
	}
}

// frame is one message, never decoded.
type frame struct{ b []byte }

// rawCodec passes messages through as bytes.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return v.(*frame).b, nil }

func (rawCodec) Unmarshal(data []byte, v any) error {
	f := v.(*frame)
	f.b = append(f.b[:0], data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }
