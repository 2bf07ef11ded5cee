package runtime

import (
	"fmt"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// replaceOrAppendEnv must merge as containerd's oci.WithImageConfig does.
func TestReplaceOrAppendEnv(t *testing.T) {
	for _, tc := range []struct {
		defaults, overrides, want []string
	}{
		{[]string{"PATH=/bin", "A=1"}, nil, []string{"PATH=/bin", "A=1"}},
		{[]string{"PATH=/bin", "A=1"}, []string{"A=2", "B=3"}, []string{"PATH=/bin", "A=2", "B=3"}},
		{[]string{"PATH=/bin", "A=1"}, []string{"A"}, []string{"PATH=/bin"}},                 // unset
		{[]string{"PATH=/bin"}, []string{"B"}, []string{"PATH=/bin"}},                        // unset of a name not there
		{[]string{"PATH=/bin"}, []string{"B=1", "B=2"}, []string{"PATH=/bin", "B=1", "B=2"}}, // appended twice, as containerd
		{nil, []string{"A=1"}, []string{"A=1"}},
	} {
		if got := replaceOrAppendEnv(tc.defaults, tc.overrides); !slices.Equal(got, tc.want) {
			t.Errorf("replaceOrAppendEnv(%q, %q) = %q, want %q", tc.defaults, tc.overrides, got, tc.want)
		}
	}
}

func TestUsersMemory(t *testing.T) {
	var u users
	k := userKey{image: "sha256:a", user: "1000"}
	if _, ok := u.get(k); ok {
		t.Fatal("an empty memory knows a user")
	}
	gids := []uint32{1, 2}
	u.put(k, specs.User{UID: 1000, GID: 1, AdditionalGids: gids})
	gids[0] = 99 // the caller's slice is not kept
	got, ok := u.get(k)
	if !ok || got.UID != 1000 || !slices.Equal(got.AdditionalGids, []uint32{1, 2}) {
		t.Fatalf("get = %+v, %v", got, ok)
	}
	got.AdditionalGids[0] = 98 // nor is the one given out
	if again, _ := u.get(k); again.AdditionalGids[0] != 1 {
		t.Fatalf("the memory changed through a returned slice: %v", again.AdditionalGids)
	}
	// Full: it starts over rather than grow.
	for i := range maxUsers {
		u.put(userKey{image: fmt.Sprint(i)}, specs.User{})
	}
	if len(u.m) > maxUsers {
		t.Fatalf("%d pairs kept, want at most %d", len(u.m), maxUsers)
	}
}
