package chaos

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

// chaosRegistry is an in-memory registry on a fixed 127.0.0.1 port that
// can be stopped and started again (its content survives), requiring HTTP
// basic auth and counting the manifest requests it answers.
type chaosRegistry struct {
	t          *testing.T
	addr       string
	user, pass string
	handler    http.Handler
	manifests  atomic.Int64 // manifest requests (one or two per pull attempt)
	mu         sync.Mutex
	srv        *http.Server
}

func startChaosRegistry(t *testing.T, user, pass string) *chaosRegistry {
	t.Helper()
	r := &chaosRegistry{t: t, user: user, pass: pass, handler: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = l.Addr().String()
	r.serve(l)
	t.Cleanup(r.stop)
	return r
}

func (r *chaosRegistry) serve(l net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if strings.Contains(req.URL.Path, "/manifests/") {
			r.manifests.Add(1)
		}
		if u, p, ok := req.BasicAuth(); !ok || u != r.user || p != r.pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="chaos"`)
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

// stop closes the listener and every connection: the port refuses.
func (r *chaosRegistry) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.srv != nil {
		_ = r.srv.Close()
		r.srv = nil
	}
}

// start listens again on the same address.
func (r *chaosRegistry) start() {
	r.t.Helper()
	var l net.Listener
	var err error
	for range 50 {
		if l, err = net.Listen("tcp", r.addr); err == nil {
			r.serve(l)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.t.Fatalf("listen again on %s: %v", r.addr, err)
}

// push writes the test image to repoTag.
func (r *chaosRegistry) push(repoTag string) {
	r.t.Helper()
	ref, err := name.ParseReference(r.addr+"/"+repoTag, name.Insecure)
	if err != nil {
		r.t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(env.archive, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: r.user, Password: r.pass})); err != nil {
		r.t.Fatalf("push %s: %v", ref, err)
	}
}

func writeDockerConfig(t *testing.T, path, host, user, pass string) {
	t.Helper()
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	writeAtomic(t, path, fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`, host, auth))
}

// TestChaosImageUnavailable (fault 4): a task's image cannot be had (the
// registry on 127.0.0.1 stopped, or the credentials wrong), then can. The
// reconciler does not crash, says why on the status, retries with backoff
// (a handful of attempts, not a storm), leaves the other tasks alone, and
// runs the task once the image is there.
func TestChaosImageUnavailable(t *testing.T) {
	requireEnv(t)
	reg := startChaosRegistry(t, "chaos", "monkey")
	reg.push("chaos/app:v1")
	cfg := filepath.Join(env.dir, "registry-config.json")
	writeDockerConfig(t, cfg, reg.addr, "chaos", "monkey")
	w := newWorld(t, "image", "", "", "--registry-config", cfg)
	w.addStable("stable-a", "stable-b")
	w.addBystander("bystander")
	w.start()
	w.ready("set-up")
	ref := reg.addr + "/chaos/app:v1"
	iterations(t, func(i int) {
		b := w.baseline()
		if i > 0 {
			w.removeTask(fmt.Sprintf("pulled-%d", i-1))
		}
		name := fmt.Sprintf("pulled-%d", i)
		var want, fault string
		if i%2 == 0 {
			reg.stop()
			want, fault = "connection refused", "registry stopped"
		} else {
			writeDockerConfig(t, cfg, reg.addr, "chaos", "wrong")
			want, fault = "401 Unauthorized", "wrong credentials"
		}
		before := reg.manifests.Load()
		w.write(name+".yaml", strings.Replace(taskYAML(name, 1, "imagePullPolicy: Always"), "image: "+imageRef(), "image: "+ref, 1))
		w.versions[name] = 1
		var msg string
		waitFor(t, 30*time.Second, name+"'s pull error on the status", func() bool {
			var phase string
			phase, msg = w.taskStatus(name)
			return phase == "Error" && strings.Contains(msg, "pull image "+ref) && strings.Contains(msg, want)
		})
		// Backoff: over a few seconds, a handful of attempts.
		const window = 5 * time.Second
		since := time.Now()
		out := len(w.d.output())
		time.Sleep(window)
		w.noCrash()
		attempts := strings.Count(w.d.output()[out:], `msg="pulling image"`)
		// 500ms growing by 1.5 with jitter: at most 8 attempts in 5s.
		if attempts > 8 {
			t.Errorf("image %d: %d pull attempts (%d manifest requests) in %s: no backoff", i, attempts, reg.manifests.Load()-before, window)
		}
		if _, ok := w.running()[name]; ok {
			t.Errorf("image %d: %s runs without its image", i, name)
		}
		if i%2 == 0 {
			reg.start()
		} else {
			writeDockerConfig(t, cfg, reg.addr, "chaos", "monkey")
		}
		since = time.Now()
		w.converge(fmt.Sprintf("image %d (%s; status said %q)", i, fault, msg), since, b)
	})
}

func imageRef() string {
	s := taskYAML("x", 1)
	i := strings.Index(s, "image: ")
	return strings.TrimSpace(strings.SplitN(s[i+len("image: "):], "\n", 2)[0])
}
