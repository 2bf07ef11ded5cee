package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/warren/reconciler/pkg/desired"
	"github.com/warren/reconciler/pkg/observed"
	"github.com/warren/reconciler/pkg/reconcile"
)

// stubRuntime is an empty node whose List can be held, to see /readyz
// before and after the first pass.
type stubRuntime struct{ release chan struct{} }

func (s stubRuntime) List(ctx context.Context, task string) ([]observed.Raw, error) {
	select {
	case <-s.release:
		return nil, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
func (stubRuntime) Create(context.Context, string, desired.Task, map[string]string) error {
	return errors.New("stub")
}
func (stubRuntime) Start(context.Context, string) error                        { return nil }
func (stubRuntime) Stop(context.Context, string, string, time.Duration) error  { return nil }
func (stubRuntime) Delete(context.Context, string) error                       { return nil }
func (stubRuntime) SetLabels(context.Context, string, map[string]string) error { return nil }

func TestAPI(t *testing.T) {
	rt := stubRuntime{release: make(chan struct{})}
	reg := prometheus.NewRegistry()
	ctrl := reconcile.New(rt, reconcile.Config{Metrics: reconcile.NewMetrics(reg)})
	var pingErr error
	api := &apiServer{ctrl: ctrl, ping: func(context.Context) error { return pingErr }, reg: reg, log: logr.Discard()}
	srv := httptest.NewServer(api.handler())
	defer srv.Close()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { _ = ctrl.Run(ctx, nil); close(done) }()
	defer func() { cancel(); <-done }()

	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "first sync not done") {
		t.Errorf("/readyz before the first pass: %d %q", code, body)
	}
	close(rt.release)
	select {
	case <-ctrl.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("not ready")
	}
	if code, _ := get("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after the first pass: %d", code)
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d", code)
	}
	pingErr = errors.New("connection refused")
	if code, body := get("/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "connection refused") {
		t.Errorf("/healthz with containerd down: %d %q", code, body)
	}
	code, body := get("/status")
	var st statusResponse
	if code != http.StatusOK || json.Unmarshal([]byte(body), &st) != nil {
		t.Errorf("/status: %d %q", code, body)
	}
	if code, body := get("/status/nope"); code != http.StatusNotFound || !strings.Contains(body, "no task nope") {
		t.Errorf("/status/nope: %d %q", code, body)
	}
	if code, body := get("/metrics"); code != http.StatusOK || !strings.Contains(body, "reconciler_tasks") {
		t.Errorf("/metrics: %d", code)
	}
	if code, _ := get("/nope"); code != http.StatusNotFound {
		t.Errorf("/nope: %d", code)
	}
}
