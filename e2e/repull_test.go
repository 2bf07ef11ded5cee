package e2e

import (
	"strings"
	"testing"
	"time"

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

// TestRepullRollsBackABadImage: a tag that moves to an image that crashes
// is rolled back to the container of the previous digest (the same
// container, started again), that digest is not tried again at the next
// re-pulls, and a later move of the tag to a good image rolls out.
func TestRepullRollsBackABadImage(t *testing.T) {
	n := newNode(t, "e2e-repull-back")
	reg := testenv.StartRegistry(t, "alice", "wonderland")
	cfg := t.TempDir() + "/config.json"
	testenv.WriteDockerConfig(t, cfg, reg.Host, "alice", "wonderland")
	reg.Push(env.archive, "app:stable")
	push := func(cmd []string, env string) string {
		t.Helper()
		base := testImage(t)
		cf, err := base.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		conf := cf.Config
		if cmd != nil {
			conf.Cmd = cmd
		}
		conf.Env = append(append([]string{}, conf.Env...), env)
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
		return d.String()
	}

	dir := t.TempDir()
	startReconciler(t, n.ns, dir, "--registry-config", cfg, "--repull-interval", "500ms")
	testenv.WriteFile(t, dir, "app.yaml", testenv.WithImage(testenv.Manifest("app", "imagePullPolicy: Always",
		"minReady: 2s", "stopGracePeriod: 1s", "restartBackoff: {initial: 200ms, max: 1s}"), reg.Host+"/app:stable"))
	var good ctr
	testenv.WaitFor(t, converge, "app running", func() (ok bool) { good, ok = n.running("app"); return ok })
	time.Sleep(2500 * time.Millisecond) // minReady: it is a rollback target

	bad := push([]string{"-exit-after", "200ms", "-exit-code", "4"}, "BUILD=bad")
	var st testenv.TaskStatus
	testenv.WaitFor(t, 90*time.Second, "app rolled back to the old digest", func() bool {
		st = taskStatus(t, n.ns, "app")
		x, ok := n.running("app")
		return ok && x.ID == good.ID && st.RolledBack.RefusedHash != ""
	})
	if !strings.HasSuffix(st.RolledBack.RefusedHash, "@"+bad) || !strings.HasPrefix(st.RolledBack.Reason, "exited with code 4, 3 times in") {
		t.Errorf("status after the rollback: %+v", st.RolledBack)
	}
	// Re-pulls find the same bad digest: nothing is tried again.
	back, _ := n.running("app")
	time.Sleep(3 * time.Second)
	if x, ok := n.running("app"); !ok || x.ID != good.ID || x.Pid != back.Pid {
		t.Errorf("the refused digest was tried again: %+v (running %v), want %s pid %d", x, ok, good.ID, back.Pid)
	}

	fixed := push(nil, "BUILD=fixed")
	var after ctr
	testenv.WaitFor(t, 60*time.Second, "app rolled out from the fixed image, the old container gone", func() (ok bool) {
		after, ok = n.running("app")
		return ok && after.Labels[observed.LabelImageDigest] == fixed && after.Labels[observed.LabelProven] != ""
	})
	if after.ID != observed.RevisionID("app", after.Labels[observed.LabelSpecHash], fixed) {
		t.Errorf("container of the moved tag %s, want it named by its revision", after.ID)
	}
}
