package reconcile

import (
	"errors"
	"strings"
	"testing"

	"github.com/warren/reconciler/pkg/desired"
)

// TestManifestStatus: the status says why the directory is not applied
// (kept while it lasts, with the tasks) and which files are broken.
func TestManifestStatus(t *testing.T) {
	web := parseTask(t, "web.yaml", "web")
	c := New(newFakeRuntime(), Config{})
	if m := c.Manifests(); m.Error != "" || m.Broken != nil {
		t.Errorf("fresh controller: %+v", m)
	}
	st := stateOf(web)
	st.Broken = map[string]error{"bad.yaml": &desired.Error{File: "bad.yaml", Msg: "refused: the file is writable by group or others"}}
	c.SetDesired(st)
	if m := c.Manifests(); m.Error != "" || !strings.Contains(m.Broken["bad.yaml"], "writable by group or others") {
		t.Errorf("broken file: %+v", m)
	}
	c.SetDesired(desired.State{Err: errors.New("manifests directory /m: refusing to apply any manifest")})
	m := c.Manifests()
	if !strings.Contains(m.Error, "refusing to apply") || m.Broken["bad.yaml"] == "" {
		t.Errorf("unreadable directory: %+v (want its error, and the broken files as they were)", m)
	}
	if _, ok := c.want.Tasks["web"]; !ok {
		t.Error("an unreadable directory dropped the tasks")
	}
	c.SetDesired(stateOf(web))
	if m := c.Manifests(); m.Error != "" || m.Broken != nil {
		t.Errorf("fixed: %+v", m)
	}
}
