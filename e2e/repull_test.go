package e2e

import (
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/warren/reconciler/e2e/testenv"
	"github.com/warren/reconciler/pkg/observed"
)

// TestRepullFollowsAMovedTag runs an imagePullPolicy: Always task with
// --repull-interval: when the tag is pushed again with another image, the
// container is replaced by one from the new digest.
func TestRepullFollowsAMovedTag(t *testing.T) {
	n := newNode(t, "e2e-repull")
	reg := testenv.StartRegistry(t, "alice", "wonderland")
	cfg := t.TempDir() + "/config.json"
	testenv.WriteDockerConfig(t, cfg, reg.Host, "alice", "wonderland")
	first := reg.Push(env.archive, "app:stable")

	dir := t.TempDir()
	startReconciler(t, n.ns, dir, "--registry-config", cfg, "--repull-interval", "500ms")
	testenv.WriteFile(t, dir, "app.yaml", testenv.WithImage(testenv.Manifest("app", "imagePullPolicy: Always"), reg.Host+"/app:stable"))
	var before ctr
	testenv.WaitFor(t, converge, "app running", func() (ok bool) { before, ok = n.running("app"); return ok })
	if got := before.Labels[observed.LabelImageDigest]; got != first {
		t.Fatalf("digest label %q, want %q", got, first)
	}

	// Push another image under the same tag.
	base := testImage(t)
	cf, err := base.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	conf := cf.Config
	conf.Env = append(append([]string{}, conf.Env...), "BUILD=2")
	img, err := mutate.Config(base, conf)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(reg.Host+"/app:stable", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "alice", Password: "wonderland"})); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	second := d.String()
	var after ctr
	testenv.WaitFor(t, converge, "app replaced from the moved tag", func() (ok bool) {
		after, ok = n.running("app")
		return ok && after.Labels[observed.LabelImageDigest] == second
	})
	if after.Pid == before.Pid {
		t.Errorf("same process after the tag moved")
	}
}
