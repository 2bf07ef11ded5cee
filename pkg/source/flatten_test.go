package source

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestExpandPaths(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values []string
		host   string
		want   []string
		err    string
	}{
		{name: "default is the root", want: []string{"."}},
		{name: "root spellings", values: []string{"", ".", "/"}, want: []string{"."}},
		{name: "common and node", values: []string{"common/", "nodes/{{hostname}}/"}, host: "edge-1", want: []string{"common", "nodes/edge-1"}},
		{name: "comma-separated", values: []string{"common,nodes/{{ hostname }}"}, host: "edge-1", want: []string{"common", "nodes/edge-1"}},
		{name: "duplicates once", values: []string{"a", "./a/", "/a"}, want: []string{"a"}},
		{name: "dotdot refused", values: []string{"a/../../b"}, err: ".. is not allowed"},
		{name: "unknown placeholder", values: []string{"nodes/{{zone}}"}, err: "unknown placeholder {{zone}}"},
		{name: "bad host name", values: []string{"nodes/{{hostname}}"}, host: "a/b", err: "not a directory name"},
		{name: "no host name", values: []string{"nodes/{{hostname}}"}, host: "", err: "not a directory name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ExpandPaths(tc.values, tc.host)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestSelectFiles(t *testing.T) {
	tree := map[string][]entry{
		".": {{Name: "README.md", Regular: true, Size: 10}, {Name: "common", Regular: false}, {Name: "top.yaml", Regular: true, Size: 5}},
		"common": {{Name: "web.yaml", Regular: true, Size: 100}, {Name: ".hidden.yaml", Regular: true, Size: 1}, {Name: "sub", Regular: false}, {Name: "link.yaml", Regular: false},
			{Name: "db.age", Regular: true, Size: 30}, {Name: ".key.age", Regular: true, Size: 1}, {Name: "notes.txt", Regular: true, Size: 3}, {Name: "link.age", Regular: false}, {Name: "db.age.bak", Regular: true, Size: 1}},
		"nodes/edge-1": {{Name: "db.yml", Regular: true, Size: 50}, {Name: "web.yaml.bak", Regular: true, Size: 1}, {Name: "api key.age", Regular: true, Size: 1}, {Name: "api.age", Regular: true, Size: 20}},
		"nodes/edge-2": {{Name: "web.yaml", Regular: true, Size: 70}},
		"nodes/edge-3": {{Name: "db.age", Regular: true, Size: 40}, {Name: "cache.yaml", Regular: true, Size: 10}},
	}
	list := func(dir string) ([]entry, error) {
		if es, ok := tree[dir]; ok {
			return es, nil
		}
		return nil, errNoPath
	}
	names := func(s []selected) string {
		var out []string
		for _, x := range s {
			out = append(out, x.Name+"<"+x.From)
		}
		return strings.Join(out, " ")
	}
	for _, tc := range []struct {
		name  string
		paths []string
		max   int64
		want  string
		err   string
	}{
		{name: "root: top-level manifests only", paths: []string{"."}, want: "top.yaml<top.yaml"},
		{name: "common and a node, with their age files", paths: []string{"common", "nodes/edge-1"},
			want: "api.age<nodes/edge-1/api.age db.age<common/db.age db.yml<nodes/edge-1/db.yml web.yaml<common/web.yaml"},
		{name: "one name in two paths", paths: []string{"common", "nodes/edge-2"}, err: "two manifests named web.yaml: common/web.yaml and nodes/edge-2/web.yaml"},
		{name: "one age file name in two paths", paths: []string{"common", "nodes/edge-3"}, err: "two age files named db.age: common/db.age and nodes/edge-3/db.age"},
		{name: "an age file of the node only", paths: []string{"nodes/edge-3"}, want: "cache.yaml<nodes/edge-3/cache.yaml db.age<nodes/edge-3/db.age"},
		{name: "missing path", paths: []string{"common", "nodes/edge-9"}, err: "path nodes/edge-9: no such directory"},
		{name: "over the size limit", paths: []string{"common"}, max: 99, err: "more than the size limit of 99"},
		{name: "age files count in the size", paths: []string{"common"}, max: 129, err: "the selected manifests and age files are 130 bytes, more than the size limit of 129"},
		{name: "at the size limit", paths: []string{"common"}, max: 130, want: "db.age<common/db.age web.yaml<common/web.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			max := tc.max
			if max == 0 {
				max = 1 << 20
			}
			got, err := selectFiles(tc.paths, max, list)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || names(got) != tc.want {
				t.Fatalf("got %q, %v; want %q", names(got), err, tc.want)
			}
		})
	}
	// A list error other than a missing path is passed on.
	_, err := selectFiles([]string{"x"}, 1, func(string) ([]entry, error) { return nil, fmt.Errorf("boom") })
	if err == nil || errors.Is(err, errNoPath) {
		t.Fatalf("error %v", err)
	}
}

func TestReadCredentials(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ content, user, pass, err string }{
		{content: "alice:s3cr:et\n", user: "alice", pass: "s3cr:et"},
		{content: "ghp_token\r\nignored", user: TokenUser, pass: "ghp_token"},
		{content: "\n", err: "first line is empty"},
	} {
		f := dir + "/c"
		if err := writeFileString(f, tc.content); err != nil {
			t.Fatal(err)
		}
		a, err := readCredentials(f)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("%q: error %v, want %q", tc.content, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if got := a.String(); !strings.Contains(got, tc.user) || strings.Contains(got, tc.pass) {
			t.Fatalf("%q: auth %s (the password must not show)", tc.content, got)
		}
	}
	if _, err := readCredentials(dir + "/missing"); err == nil {
		t.Fatal("a missing file must be an error")
	}
}
