package observed

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"
)

func owned(task, hash string) Raw {
	return Raw{ID: ContainerID(task, hash), Labels: Labels(task, hash, task+".yaml", "SIGTERM", 5*time.Second), Status: Running}
}

func TestClassify(t *testing.T) {
	base := owned("web", "0123456789ab")
	tests := []struct {
		name   string
		mutate func(r *Raw)
		reason string // "" when the container is owned
	}{
		{name: "owned", mutate: func(r *Raw) {}},
		{name: "no labels", mutate: func(r *Raw) { r.Labels = nil }, reason: "no ownership label"},
		{name: "other owner", mutate: func(r *Raw) { r.Labels[LabelManagedBy] = "someone-else" }, reason: "no ownership label"},
		{name: "no task label", mutate: func(r *Raw) { delete(r.Labels, LabelTask) }, reason: "ownership label without task and spec-hash labels"},
		{name: "no hash label", mutate: func(r *Raw) { delete(r.Labels, LabelSpecHash) }, reason: "ownership label without task and spec-hash labels"},
		{name: "id does not match", mutate: func(r *Raw) { r.ID = "web-ffffffffffff" }, reason: "id does not match labels io.warren.task=web io.warren.spec-hash=0123456789ab"},
		{name: "task label tampered", mutate: func(r *Raw) { r.Labels[LabelTask] = "db" }, reason: "id does not match labels io.warren.task=db io.warren.spec-hash=0123456789ab"},
		{name: "bad grace", mutate: func(r *Raw) { r.Labels[LabelStopGrace] = "soon" }, reason: `bad io.warren.stop-grace label "soon"`},
		{name: "negative grace", mutate: func(r *Raw) { r.Labels[LabelStopGrace] = "-1s" }, reason: `bad io.warren.stop-grace label "-1s"`},
		{name: "revision", mutate: func(r *Raw) {
			r.ID = "web-0123456789ab-abcdefabcdef"
			r.Labels[LabelRevision] = "abcdefabcdef"
		}},
		{name: "revision not in the id", mutate: func(r *Raw) { r.Labels[LabelRevision] = "abcdefabcdef" },
			reason: "id does not match labels io.warren.task=web io.warren.spec-hash=0123456789ab io.warren.image-revision=abcdefabcdef"},
		{name: "revision not hex", mutate: func(r *Raw) { r.ID += "-xyz"; r.Labels[LabelRevision] = "xyz" },
			reason: "id does not match labels io.warren.task=web io.warren.spec-hash=0123456789ab io.warren.image-revision=xyz"},
		{name: "bad created-at", mutate: func(r *Raw) { r.Labels[LabelCreatedAt] = "yesterday" }, reason: `bad io.warren.created-at label "yesterday"`},
		{name: "bad proven", mutate: func(r *Raw) { r.Labels[LabelProven] = "1" }, reason: `bad io.warren.proven label "1"`},
		{name: "rolled-back not JSON", mutate: func(r *Raw) { r.Labels[LabelRolledBack] = "abc" }, reason: `bad io.warren.rolled-back label "abc"`},
		{name: "rolled-back without a hash", mutate: func(r *Raw) { r.Labels[LabelRolledBack] = `{"reason":"x"}` }, reason: `bad io.warren.rolled-back label "{\"reason\":\"x\"}"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := base
			r.Labels = map[string]string{}
			for k, v := range base.Labels {
				r.Labels[k] = v
			}
			tc.mutate(&r)
			s := Classify([]Raw{r})
			if tc.reason == "" {
				if len(s.Containers) != 1 || len(s.Unmanaged) != 0 {
					t.Fatalf("Classify = %+v, want one owned container", s)
				}
				c := s.Containers[0]
				if c.Task != "web" || c.SpecHash != "0123456789ab" || c.Source != "web.yaml" || c.StopSig != "SIGTERM" || c.StopGrace != 5*time.Second {
					t.Errorf("decoded %+v", c)
				}
				return
			}
			want := []Unmanaged{{ID: r.ID, Reason: tc.reason}}
			if len(s.Containers) != 0 || !reflect.DeepEqual(s.Unmanaged, want) {
				t.Errorf("Classify = %+v, want unmanaged %+v", s, want)
			}
		})
	}
}

func TestClassifyDefaultGrace(t *testing.T) {
	r := owned("web", "0123456789ab")
	delete(r.Labels, LabelStopGrace)
	s := Classify([]Raw{r})
	if len(s.Containers) != 1 || s.Containers[0].StopGrace != 30*time.Second {
		t.Fatalf("without a grace label the grace is %v, want the 30s default", s.Containers)
	}
}

func TestClassifySortsAndForTask(t *testing.T) {
	s := Classify([]Raw{owned("web", "bbbbbbbbbbbb"), owned("db", "aaaaaaaaaaaa"), owned("web", "aaaaaaaaaaaa")})
	var ids []string
	for _, c := range s.Containers {
		ids = append(ids, c.ID)
	}
	want := []string{"db-aaaaaaaaaaaa", "web-aaaaaaaaaaaa", "web-bbbbbbbbbbbb"}
	if !reflect.DeepEqual(ids, want) {
		t.Errorf("order %v, want %v", ids, want)
	}
	if got := s.ForTask("web"); len(got) != 2 {
		t.Errorf("ForTask(web) = %v", got)
	}
}

func TestParseStatus(t *testing.T) {
	for in, want := range map[string]Status{
		"running": Running, "RUNNING": Running, "created": Created, "stopped": Stopped,
		"paused": Paused, "pausing": Paused, "": NoTask, "weird": Unknown,
	} {
		if got := ParseStatus(in); got != want {
			t.Errorf("ParseStatus(%q) = %q, want %q", in, got, want)
		}
	}
}

type listerFunc func(ctx context.Context, task string) ([]Raw, error)

func (f listerFunc) List(ctx context.Context, task string) ([]Raw, error) { return f(ctx, task) }

func TestObserve(t *testing.T) {
	var asked string
	s, err := Observe(t.Context(), listerFunc(func(_ context.Context, task string) ([]Raw, error) {
		asked = task
		return []Raw{owned("web", "0123456789ab"), {ID: "foreign"}}, nil
	}), "web")
	if err != nil || asked != "web" || len(s.Containers) != 1 || len(s.Unmanaged) != 1 {
		t.Fatalf("Observe = %+v, %v (asked %q)", s, err, asked)
	}
	boom := errors.New("boom")
	_, err = Observe(t.Context(), listerFunc(func(context.Context, string) ([]Raw, error) { return nil, boom }), "")
	if !errors.Is(err, boom) || err.Error() != "list containers: boom" {
		t.Fatalf("Observe error = %v, want wrapped boom", err)
	}
}

func TestObserveOneTaskKeepsOnlyItsContainers(t *testing.T) {
	// A lister asked for "web" also returns "web-api" (its IDs share the
	// prefix): Observe must not hand them to a sync of "web".
	s, err := Observe(t.Context(), listerFunc(func(context.Context, string) ([]Raw, error) {
		return []Raw{owned("web", "0123456789ab"), owned("web-api", "0123456789ab"), {ID: "web-ffffffffffff"}}, nil
	}), "web")
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Containers) != 1 || s.Containers[0].Task != "web" {
		t.Errorf("containers %+v, want only web's", s.Containers)
	}
	if len(s.Unmanaged) != 1 || s.Unmanaged[0].ID != "web-ffffffffffff" {
		t.Errorf("unmanaged %+v, want the squatter", s.Unmanaged)
	}
}

// TestRolloutLabelsRoundTrip: what a rollout writes decodes to what it meant.
func TestRolloutLabelsRoundTrip(t *testing.T) {
	at := time.Date(2026, 12, 5, 12, 0, 0, 500, time.FixedZone("X", 3600))
	rb := Rollback{Hash: "bbbbbbbbbbbb", Reason: "unhealthy: tcp :80: refused", At: at}
	r := owned("web", "0123456789ab")
	r.Labels[LabelCreatedAt] = TimeLabel(at)
	r.Labels[LabelProven] = TimeLabel(at.Add(time.Minute))
	r.Labels[LabelHeldFor] = "cccccccccccc"
	r.Labels[LabelRolledBack] = RollbackLabel(rb)
	s := Classify([]Raw{r})
	if len(s.Containers) != 1 {
		t.Fatalf("Classify = %+v", s)
	}
	c := s.Containers[0]
	if !c.Created.Equal(at) || !c.Proven.Equal(at.Add(time.Minute)) || c.HeldFor != "cccccccccccc" ||
		c.RolledBack == nil || c.RolledBack.Hash != rb.Hash || c.RolledBack.Reason != rb.Reason || !c.RolledBack.At.Equal(at) {
		t.Errorf("decoded %+v (rolled back %+v)", c, c.RolledBack)
	}
}

func TestRevision(t *testing.T) {
	for _, tc := range []struct{ digest, want string }{
		{"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "0123456789ab"},
		{"sha256:bbb", "86de2f190187"}, // too short: the start of its SHA-256
	} {
		if got := Revision(tc.digest); got != tc.want {
			t.Errorf("Revision(%q) = %q, want %q", tc.digest, got, tc.want)
		}
	}
	if got := RevisionID("web", "0123456789ab", "sha256:abcdefabcdef00"); got != "web-0123456789ab-abcdefabcdef" {
		t.Errorf("RevisionID = %q", got)
	}
}
