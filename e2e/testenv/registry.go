package testenv

import (
	"encoding/base64"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Registry is an in-memory image registry on 127.0.0.1 that requires HTTP
// basic auth and counts the requests it gets. It can be stopped (its port
// then refuses) and started again on the same address, its content kept.
type Registry struct {
	Host      string       // 127.0.0.1:PORT
	Hits      atomic.Int64 // every request
	Manifests atomic.Int64 // manifest requests (one or two per pull attempt)

	t          testing.TB
	user, pass string
	handler    http.Handler
	mu         sync.Mutex
	srv        *http.Server
}

// StartRegistry starts a registry for the test t, accepting user and pass;
// it stops when the test ends.
func StartRegistry(t testing.TB, user, pass string) *Registry {
	t.Helper()
	r := &Registry{t: t, user: user, pass: pass, handler: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.Host = l.Addr().String()
	r.serve(l)
	t.Cleanup(r.Stop)
	return r
}

func (r *Registry) serve(l net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.Hits.Add(1)
		if strings.Contains(req.URL.Path, "/manifests/") {
			r.Manifests.Add(1)
		}
		if u, p, ok := req.BasicAuth(); !ok || u != r.user || p != r.pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="testenv"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		r.handler.ServeHTTP(w, req)
	})}
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	go func() { _ = srv.Serve(l) }()
}

// Stop closes the listener and every connection: the port refuses.
func (r *Registry) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.srv != nil {
		_ = r.srv.Close()
		r.srv = nil
	}
}

// Start listens again on the same address.
func (r *Registry) Start() {
	r.t.Helper()
	var l net.Listener
	var err error
	for range 50 {
		if l, err = net.Listen("tcp", r.Host); err == nil {
			r.serve(l)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.t.Fatalf("listen again on %s: %v", r.Host, err)
}

// Push writes the image of archive (the test image: Env.Archive) to
// repoTag on the registry and returns its digest.
func (r *Registry) Push(archive, repoTag string) string {
	r.t.Helper()
	ref, err := name.ParseReference(r.Host+"/"+repoTag, name.Insecure)
	if err != nil {
		r.t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(archive, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: r.user, Password: r.pass})); err != nil {
		r.t.Fatalf("push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		r.t.Fatal(err)
	}
	return d.String()
}

// WriteDockerConfig writes a Docker config.json (mode 0600, renamed into
// place) with the credentials for host.
func WriteDockerConfig(t testing.TB, path, host, user, pass string) {
	t.Helper()
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	content := fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`, host, auth)
	WriteFileMode(t, filepath.Dir(path), filepath.Base(path), content, 0o600)
}
