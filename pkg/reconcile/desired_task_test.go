package reconcile

import (
	"errors"
	"testing"

	"github.com/warren/reconciler/pkg/desired"
)

// TestDesiredTask: the spec the controller holds, kept while the
// directory cannot be read, gone once the task is not desired.
func TestDesiredTask(t *testing.T) {
	web := parseTask(t, "web.yaml", "web")
	c := New(newFakeRuntime(), Config{})
	if _, _, ok := c.DesiredTask("web"); ok {
		t.Error("a fresh controller has a desired task")
	}
	c.SetDesired(stateOf(web))
	got, hash, ok := c.DesiredTask("web")
	if !ok || got.Spec.Image != web.Spec.Image || hash != web.Hash() {
		t.Errorf("DesiredTask(web) = %v %q %v, want the spec of %s, hash %s", got.Spec.Image, hash, ok, web.Spec.Image, web.Hash())
	}
	c.SetDesired(desired.State{Err: errors.New("manifests directory unreadable")})
	if _, h, ok := c.DesiredTask("web"); !ok || h != hash {
		t.Error("an unreadable directory dropped the desired task")
	}
	c.SetDesired(stateOf())
	if _, _, ok := c.DesiredTask("web"); ok {
		t.Error("a task no longer desired is still returned")
	}
}
