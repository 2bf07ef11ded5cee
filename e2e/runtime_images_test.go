package e2e

import (
	"archive/tar"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/warren/reconciler/e2e/imagebuild"
	"github.com/warren/reconciler/e2e/testenv"
	"github.com/warren/reconciler/pkg/observed"
	"github.com/warren/reconciler/pkg/runtime"
)

// testImage is the test image as go-containerregistry sees it.
func testImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := tarball.ImageFromPath(env.archive, nil)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestRuntimePullPolicies: Never does not pull an absent image; Always
// pulls each time; IfNotPresent does not pull an image present; the digest
// a container was created from is on its labels; Pull returns the digest;
// wrong credentials are a clear error.
func TestRuntimePullPolicies(t *testing.T) {
	reg := testenv.StartRegistry(t, "alice", "wonderland")
	digest := reg.Push(env.archive, "e2e/pull:v1")
	ref := reg.Host + "/e2e/pull:v1"
	cfg := filepath.Join(t.TempDir(), "config.json")
	testenv.WriteDockerConfig(t, cfg, reg.Host, "alice", "wonderland")
	e := newRT(t, "e2e-rt-pull", runtime.WithRegistryConfig(cfg))

	before := reg.Hits.Load()
	_, err := e.create(testenv.WithImage(testenv.Manifest("never", "imagePullPolicy: Never"), ref))
	if !errors.Is(err, runtime.ErrImageNotPresent) || !strings.Contains(err.Error(), "imagePullPolicy is Never") {
		t.Errorf("Never with an absent image: %v, want ErrImageNotPresent", err)
	}
	if n := reg.Hits.Load() - before; n != 0 {
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
	before = reg.Hits.Load()
	always := e.run(testenv.WithImage(testenv.Manifest("always", "imagePullPolicy: Always"), ref))
	if reg.Hits.Load() == before {
		t.Errorf("Always did not reach the registry")
	}
	if got := labelOf(always); got != digest {
		t.Errorf("image digest label %q, want %q", got, digest)
	}
	e.waitOutput(always, "testapp: start")

	before = reg.Hits.Load()
	ifnp := e.run(testenv.WithImage(testenv.Manifest("ifnp", "imagePullPolicy: IfNotPresent"), ref))
	if n := reg.Hits.Load() - before; n != 0 {
		t.Errorf("IfNotPresent with the image present made %d registry requests", n)
	}
	if got := labelOf(ifnp); got != digest {
		t.Errorf("image digest label %q, want %q", got, digest)
	}

	before = reg.Hits.Load()
	again := e.run(testenv.WithImage(testenv.Manifest("always2", "imagePullPolicy: Always"), ref))
	if reg.Hits.Load() == before || labelOf(again) != digest {
		t.Errorf("a second Always create did not pull again")
	}

	if d, err := e.rt.Pull(t.Context(), ref); err != nil || d != digest {
		t.Errorf("Pull = %q, %v; want %q", d, err, digest)
	}
	testenv.WriteDockerConfig(t, cfg, reg.Host, "alice", "wrong")
	_, err = e.rt.Pull(t.Context(), ref)
	if err == nil || !strings.Contains(err.Error(), "401 Unauthorized") || !strings.Contains(err.Error(), "check the credentials for this registry in "+cfg) {
		t.Errorf("Pull with wrong credentials: %v", err)
	}
}

// TestRuntimeRegistryAuthDaemon: the daemon with wrong credentials logs a
// clear error and retries without crashing; once the config file is
// fixed, the task runs from the registry's image.
func TestRuntimeRegistryAuthDaemon(t *testing.T) {
	reg := testenv.StartRegistry(t, "bob", "builder")
	digest := reg.Push(env.archive, "e2e/auth:v1")
	cfg := filepath.Join(t.TempDir(), "config.json")
	testenv.WriteDockerConfig(t, cfg, reg.Host, "bob", "not-the-password")
	n := newNode(t, "e2e-rt-auth")
	dir := t.TempDir()
	d := startReconciler(t, n.ns, dir, "--registry-config", cfg)
	testenv.WriteFile(t, dir, "auth.yaml", testenv.WithImage(testenv.Manifest("auth", "imagePullPolicy: Always"), reg.Host+"/e2e/auth:v1"))
	hint := "check the credentials for this registry in " + cfg
	d.Until(converge, "two failed pulls in the log", func() bool { return strings.Count(d.Output(), hint) >= 2 })
	if !strings.Contains(d.Output(), "401 Unauthorized") {
		t.Errorf("the log does not say the registry refused the credentials:\n%s", d.Output())
	}
	if cs := n.containers("auth"); len(cs) != 0 {
		t.Errorf("containers despite the failed pull: %+v", cs)
	}

	testenv.WriteDockerConfig(t, cfg, reg.Host, "bob", "builder")
	var c ctr
	testenv.WaitFor(t, converge, "auth running after the config was fixed", func() (ok bool) { c, ok = n.running("auth"); return ok })
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
	testenv.WaitFor(t, converge, "the docker archive imported at start", func() bool { return hasImage(dockerRef) })

	writeOCIArchive(t, filepath.Join(images, "oci.tar"), ociRef, img)
	testenv.WaitFor(t, converge, "the OCI archive imported when added", func() bool { return hasImage(ociRef) })

	// A layout that names its image by a bare tag names nothing: an error
	// in the log, nothing imported, the daemon goes on.
	writeOCIArchive(t, filepath.Join(images, "bare.tar"), "v1", img)
	d.WaitLog("the archive names no image", converge)

	testenv.WriteFile(t, dir, "d.yaml", testenv.WithImage(testenv.Manifest("from-docker", "imagePullPolicy: Never"), dockerRef))
	testenv.WriteFile(t, dir, "o.yaml", testenv.WithImage(testenv.Manifest("from-oci", "imagePullPolicy: Never"), ociRef))
	testenv.WaitFor(t, converge, "both tasks running", func() bool {
		_, a := n.running("from-docker")
		_, b := n.running("from-oci")
		return a && b
	})
}
