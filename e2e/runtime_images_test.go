package e2e

import (
	"archive/tar"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/warren/reconciler/e2e/imagebuild"
	"github.com/warren/reconciler/pkg/observed"
	"github.com/warren/reconciler/pkg/runtime"
)

// testRegistry is an in-process registry on 127.0.0.1 that requires HTTP
// basic auth, counting every request it gets.
type testRegistry struct {
	host       string // 127.0.0.1:PORT
	user, pass string
	hits       atomic.Int64
}

func startRegistry(t *testing.T, user, pass string) *testRegistry {
	t.Helper()
	r := &testRegistry{user: user, pass: pass}
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.hits.Add(1)
		if u, p, ok := req.BasicAuth(); !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="e2e"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	r.host = strings.TrimPrefix(srv.URL, "http://")
	return r
}

// testImage is the test image as go-containerregistry sees it.
func testImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := tarball.ImageFromPath(env.archive, nil)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// push writes the test image to repoTag on the registry and returns its digest.
func (r *testRegistry) push(t *testing.T, repoTag string) string {
	t.Helper()
	ref, err := name.ParseReference(r.host+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img := testImage(t)
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: r.user, Password: r.pass})); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// writeDockerConfig writes a Docker config.json with credentials for host.
func writeDockerConfig(t *testing.T, path, host, user, pass string) {
	t.Helper()
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	content := fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`, host, auth)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func withImage(yaml, ref string) string {
	return strings.Replace(yaml, "image: localhost/reconciler/testapp:v1", "image: "+ref, 1)
}

// TestRuntimePullPolicies: Never does not pull an absent image; Always
// pulls each time; IfNotPresent does not pull an image present; the digest
// a container was created from is on its labels; Pull returns the digest;
// wrong credentials are a clear error.
func TestRuntimePullPolicies(t *testing.T) {
	reg := startRegistry(t, "alice", "wonderland")
	digest := reg.push(t, "e2e/pull:v1")
	ref := reg.host + "/e2e/pull:v1"
	cfg := filepath.Join(t.TempDir(), "config.json")
	writeDockerConfig(t, cfg, reg.host, "alice", "wonderland")
	e := newRT(t, "e2e-rt-pull", runtime.WithRegistryConfig(cfg))

	before := reg.hits.Load()
	_, err := e.create(withImage(taskYAML("never", "imagePullPolicy: Never"), ref))
	if !errors.Is(err, runtime.ErrImageNotPresent) || !strings.Contains(err.Error(), "imagePullPolicy is Never") {
		t.Errorf("Never with an absent image: %v, want ErrImageNotPresent", err)
	}
	if n := reg.hits.Load() - before; n != 0 {
		t.Errorf("Never made %d registry requests", n)
	}

	labelOf := func(id string) string {
		c, err := e.n.client.LoadContainer(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		l, err := c.Labels(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return l[observed.LabelImageDigest]
	}
	before = reg.hits.Load()
	always := e.run(withImage(taskYAML("always", "imagePullPolicy: Always"), ref))
	if reg.hits.Load() == before {
		t.Errorf("Always did not reach the registry")
	}
	if got := labelOf(always); got != digest {
		t.Errorf("image digest label %q, want %q", got, digest)
	}
	e.waitOutput(always, "testapp: start")

	before = reg.hits.Load()
	ifnp := e.run(withImage(taskYAML("ifnp", "imagePullPolicy: IfNotPresent"), ref))
	if n := reg.hits.Load() - before; n != 0 {
		t.Errorf("IfNotPresent with the image present made %d registry requests", n)
	}
	if got := labelOf(ifnp); got != digest {
		t.Errorf("image digest label %q, want %q", got, digest)
	}

	before = reg.hits.Load()
	again := e.run(withImage(taskYAML("always2", "imagePullPolicy: Always"), ref))
	if reg.hits.Load() == before || labelOf(again) != digest {
		t.Errorf("a second Always create did not pull again")
	}

	if d, err := e.rt.Pull(t.Context(), ref); err != nil || d != digest {
		t.Errorf("Pull = %q, %v; want %q", d, err, digest)
	}
	writeDockerConfig(t, cfg, reg.host, "alice", "wrong")
	_, err = e.rt.Pull(t.Context(), ref)
	if err == nil || !strings.Contains(err.Error(), "401 Unauthorized") || !strings.Contains(err.Error(), "check the credentials for this registry in "+cfg) {
		t.Errorf("Pull with wrong credentials: %v", err)
	}
}

// TestRuntimeRegistryAuthDaemon: the daemon with wrong credentials logs a
// clear error and retries without crashing; once the config file is
// fixed, the task runs from the registry's image.
func TestRuntimeRegistryAuthDaemon(t *testing.T) {
	reg := startRegistry(t, "bob", "builder")
	digest := reg.push(t, "e2e/auth:v1")
	cfg := filepath.Join(t.TempDir(), "config.json")
	writeDockerConfig(t, cfg, reg.host, "bob", "not-the-password")
	n := newNode(t, "e2e-rt-auth")
	dir := t.TempDir()
	d := startReconciler(t, n.ns, dir, "--registry-config", cfg)
	writeFile(t, dir, "auth.yaml", withImage(taskYAML("auth", "imagePullPolicy: Always"), reg.host+"/e2e/auth:v1"))
	hint := "check the credentials for this registry in " + cfg
	waitFor(t, converge, "two failed pulls in the log", func() bool {
		select {
		case <-d.done:
			t.Fatalf("the reconciler exited:\n%s", d.output())
		default:
		}
		return strings.Count(d.output(), hint) >= 2
	})
	if !strings.Contains(d.output(), "401 Unauthorized") {
		t.Errorf("the log does not say the registry refused the credentials:\n%s", d.output())
	}
	if cs := n.containers("auth"); len(cs) != 0 {
		t.Errorf("containers despite the failed pull: %+v", cs)
	}

	writeDockerConfig(t, cfg, reg.host, "bob", "builder")
	var c ctr
	waitFor(t, converge, "auth running after the config was fixed", func() (ok bool) { c, ok = n.running("auth"); return ok })
	if c.Labels[observed.LabelImageDigest] != digest {
		t.Errorf("image digest label %q, want %q", c.Labels[observed.LabelImageDigest], digest)
	}
}

// writeOCIArchive writes img as an OCI image layout tar whose index names it
// ref (org.opencontainers.image.ref.name).
func writeOCIArchive(t *testing.T, path, ref string, img v1.Image) {
	t.Helper()
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref})); err != nil {
		t.Fatal(err)
	}
	tmp := path + ".partial"
	f, err := os.Create(tmp)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		hdr, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		hdr.Name = rel
		if d.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		src, err := os.Open(p)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(tw, src)
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestRuntimeArchives: archives in the images directory are imported when
// the daemon starts and when one is added, before any task asks for them,
// in both docker-archive and OCI layout format; tasks with
// imagePullPolicy Never then run from them.
func TestRuntimeArchives(t *testing.T) {
	n := newNode(t, "e2e-rt-archives")
	images := t.TempDir()
	img := testImage(t)
	const dockerRef, ociRef = "localhost/e2e/docker-arch:v1", "localhost/e2e/oci-arch:v1"
	if err := imagebuild.WriteArchive(filepath.Join(images, "docker.tar"), dockerRef, img); err != nil {
		t.Fatal(err)
	}
	hasImage := func(ref string) bool { _, err := n.client.GetImage(t.Context(), ref); return err == nil }
	dir := t.TempDir()
	d := startReconciler(t, n.ns, dir, "--images", images)
	waitFor(t, converge, "the docker archive imported at start", func() bool { return hasImage(dockerRef) })

	writeOCIArchive(t, filepath.Join(images, "oci.tar"), ociRef, img)
	waitFor(t, converge, "the OCI archive imported when added", func() bool { return hasImage(ociRef) })

	// A layout that names its image by a bare tag names nothing: an error
	// in the log, nothing imported, the daemon goes on.
	writeOCIArchive(t, filepath.Join(images, "bare.tar"), "v1", img)
	d.waitLog("the archive names no image", converge)

	writeFile(t, dir, "d.yaml", strings.Replace(taskYAML("from-docker", "imagePullPolicy: Never"), "localhost/reconciler/testapp:v1", dockerRef, 1))
	writeFile(t, dir, "o.yaml", strings.Replace(taskYAML("from-oci", "imagePullPolicy: Never"), "localhost/reconciler/testapp:v1", ociRef, 1))
	waitFor(t, converge, "both tasks running", func() bool {
		_, a := n.running("from-docker")
		_, b := n.running("from-oci")
		return a && b
	})
}
