package runtime

import (
	"slices"
	"strings"
	"testing"
)

func TestIndex(t *testing.T) {
	ids := func(x *index, task string) []string {
		t.Helper()
		got, ok := x.of(task)
		if !ok {
			t.Fatalf("of(%q): not valid", task)
		}
		slices.Sort(got)
		return got
	}
	var x index
	if _, ok := x.of("web"); ok {
		t.Fatal("valid before any full listing")
	}
	x.add("web-aaaaaaaaaaaa", "web") // before: the first listing includes it or not
	since := x.begin()
	x.reset(map[string]string{
		"web-aaaaaaaaaaaa":    "web",
		"web-bbbbbbbbbbbb":    "web",
		"webapp-cccccccccccc": "webapp", // another task whose name starts the same
		"odd":                 "web",    // labelled web, any ID
		"web-foreign":         "",       // unlabelled, squatting on web's IDs
	}, since)
	if got, want := ids(&x, "web"), []string{"odd", "web-aaaaaaaaaaaa", "web-bbbbbbbbbbbb", "web-foreign"}; !slices.Equal(got, want) {
		t.Errorf("web: %v, want %v", got, want)
	}
	if got, want := ids(&x, "webapp"), []string{"webapp-cccccccccccc"}; !slices.Equal(got, want) {
		t.Errorf("webapp: %v, want %v", got, want)
	}
	if got := ids(&x, "new"); len(got) != 0 {
		t.Errorf("new: %v, want none", got)
	}

	// A listing that began before a create and a delete does not undo them.
	since = x.begin()
	x.add("new-dddddddddddd", "new")
	x.remove("web-bbbbbbbbbbbb")
	x.reset(map[string]string{"web-aaaaaaaaaaaa": "web", "web-bbbbbbbbbbbb": "web"}, since)
	if got, want := ids(&x, "new"), []string{"new-dddddddddddd"}; !slices.Equal(got, want) {
		t.Errorf("new after a listing in flight: %v, want %v", got, want)
	}
	if got, want := ids(&x, "web"), []string{"web-aaaaaaaaaaaa"}; !slices.Equal(got, want) {
		t.Errorf("web after a listing in flight: %v, want %v", got, want)
	}

	// Of two listings in flight, the older one finishing last is dropped.
	older := x.begin()
	x.add("late-eeeeeeeeeeee", "late")
	newer := x.begin()
	x.reset(map[string]string{"late-eeeeeeeeeeee": "late"}, newer)
	x.reset(map[string]string{}, older)
	if got, want := ids(&x, "late"), []string{"late-eeeeeeeeeeee"}; !slices.Equal(got, want) {
		t.Errorf("late: %v, want %v", got, want)
	}

	// A create records its container before it exists and again once it
	// does: a listing that began in between (and did not see it) leaves
	// it known whichever ends first.
	x.add("born-gggggggggggg", "born")
	since = x.begin()
	x.reset(map[string]string{"late-eeeeeeeeeeee": "late"}, since)
	x.add("born-gggggggggggg", "born")
	if got, want := ids(&x, "born"), []string{"born-gggggggggggg"}; !slices.Equal(got, want) {
		t.Errorf("born, listing ended first: %v, want %v", got, want)
	}
	x.add("born2-hhhhhhhhhhhh", "born2")
	since = x.begin()
	x.add("born2-hhhhhhhhhhhh", "born2")
	x.reset(map[string]string{"late-eeeeeeeeeeee": "late", "born-gggggggggggg": "born"}, since)
	if got, want := ids(&x, "born2"), []string{"born2-hhhhhhhhhhhh"}; !slices.Equal(got, want) {
		t.Errorf("born2, create ended first: %v, want %v", got, want)
	}

	// Too many changes with no full listing: given up until the next one;
	// a listing that began before the changes were dropped cannot bring it
	// back.
	inFlight := x.begin()
	for range maxChanges + 1 {
		x.add("churn-ffffffffffff", "churn")
	}
	if _, ok := x.of("churn"); ok {
		t.Error("still valid after more than maxChanges changes without a listing")
	}
	x.reset(map[string]string{}, inFlight)
	if _, ok := x.of("churn"); ok {
		t.Error("valid again from a listing that began before changes were dropped")
	}
	x.reset(map[string]string{"churn-ffffffffffff": "churn"}, x.begin())
	if got, want := ids(&x, "churn"), []string{"churn-ffffffffffff"}; !slices.Equal(got, want) {
		t.Errorf("churn after the next listing: %v, want %v", got, want)
	}
}

func TestSameTask(t *testing.T) {
	want := map[string]string{"io.warren.managed-by": "reconciler", "io.warren.task": "web", "io.warren.spec-hash": "0123456789ab", "io.warren.source": "web.yaml"}
	for _, tc := range []struct {
		name string
		have map[string]string
		err  string // "" for none
	}{
		{"the task's own", map[string]string{"io.warren.managed-by": "reconciler", "io.warren.task": "web", "io.warren.spec-hash": "0123456789ab", "io.warren.restarts": "3"}, ""},
		{"unlabelled", nil, "label io.warren.managed-by"},
		{"another task's", map[string]string{"io.warren.managed-by": "reconciler", "io.warren.task": "db", "io.warren.spec-hash": "0123456789ab"}, "label io.warren.task"},
		{"another spec's", map[string]string{"io.warren.managed-by": "reconciler", "io.warren.task": "web", "io.warren.spec-hash": "ba9876543210"}, "label io.warren.spec-hash"},
	} {
		err := sameTask("web-0123456789ab", tc.have, want)
		if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.err)
		}
	}
}
