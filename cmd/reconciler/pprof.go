//go:build pprof

package main

// A profiling build: `go build -tags pprof ./cmd/reconciler`, then run it
// with RECONCILER_PPROF=127.0.0.1:6060 and read /debug/pprof/ there (the
// benchmark does, with -pprof DIR). Regular builds do not contain this
// file: no profiling endpoint can be left open by mistake.

import (
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
)

func init() {
	addr := os.Getenv("RECONCILER_PPROF")
	// Not inherited by a private containerd, its shims and their log
	// drivers (this binary too).
	_ = os.Unsetenv("RECONCILER_PPROF")
	if addr == "" || isLogDriverCall(os.Args[1:]) {
		return
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "reconciler: no profiling endpoint: %v\n", err)
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	go func() { _ = http.Serve(l, mux) }()
}
