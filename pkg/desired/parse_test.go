package desired

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// baseManifest is valid; each case of TestParseErrors changes one thing.
// Line numbers matter to the tests: keep them.
const baseManifest = `apiVersion: warren/v1
kind: Task
metadata:
  name: web
  labels: {tier: frontend}
spec:
  image: docker.io/library/nginx:1.27
  command: [nginx]
  args: ["-g", "daemon off;"]
  env:
    - {name: MODE, value: production}
    - {name: PORT, value: "8080"}
  workingDir: /
  stopSignal: SIGQUIT
  stopGracePeriod: 10s
`

func baseTask() Task {
	return Task{
		APIVersion: APIVersion,
		Kind:       KindTask,
		Metadata:   Metadata{Name: "web", Labels: map[string]string{"tier": "frontend"}},
		Spec: Spec{
			Image:           "docker.io/library/nginx:1.27",
			Command:         []string{"nginx"},
			Args:            []string{"-g", "daemon off;"},
			Env:             []EnvVar{{"MODE", "production"}, {"PORT", "8080"}},
			WorkingDir:      "/",
			StopSignal:      "SIGQUIT",
			StopGracePeriod: &Duration{10 * time.Second},
		},
		Source: "web.yaml",
	}
}

func TestParseBase(t *testing.T) {
	tasks, err := Parse("/etc/manifests/web.yaml", []byte(baseManifest))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := baseTask()
	// The defaults Parse fills in.
	want.Spec.ImagePullPolicy = PullIfNotPresent
	want.Spec.Network = NetworkHost
	want.Spec.RestartPolicy = RestartAlways
	want.Spec.UpdateStrategy = UpdateStopFirst
	want.Spec.MinReady = &Duration{DefaultMinReady}
	want.Spec.ProgressDeadline = &Duration{DefaultProgressDeadline}
	if want := []Task{want}; !reflect.DeepEqual(tasks, want) {
		t.Errorf("Parse:\n got %+v\nwant %+v", tasks, want)
	}
}

// mutate replaces exactly one occurrence of old in baseManifest.
func mutate(t *testing.T, old, new string) string {
	t.Helper()
	if strings.Count(baseManifest, old) != 1 {
		t.Fatalf("mutation %q must match baseManifest exactly once", old)
	}
	return strings.Replace(baseManifest, old, new, 1)
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name     string
		old, new string
		want     []string // Error() of every *Error, in order
	}{
		{"wrong apiVersion", "apiVersion: warren/v1", "apiVersion: v1",
			[]string{`web.yaml:1: apiVersion: must be "warren/v1", got "v1"`}},
		{"missing apiVersion", "apiVersion: warren/v1\n", "",
			[]string{`web.yaml:1: apiVersion: required, must be "warren/v1"`}},
		{"wrong kind", "kind: Task", "kind: Job",
			[]string{`web.yaml:2: kind: must be "Task", got "Job"`}},
		{"kind Pod of apiVersion warren/v1", "kind: Task", "kind: Pod",
			[]string{`web.yaml:1: apiVersion: must be "v1" for kind Pod (a Task's is "warren/v1"), got "warren/v1"`}},
		{"missing name", "  name: web\n", "",
			[]string{`web.yaml:3: metadata.name: required`}},
		{"name not dns-1123", "name: web", "name: Web_1",
			[]string{`web.yaml:4: metadata.name: must be a DNS-1123 label (at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit), got "Web_1"`}},
		{"name too long", "name: web", "name: " + strings.Repeat("a", 64),
			[]string{`web.yaml:4: metadata.name: must be a DNS-1123 label (at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit), got "` + strings.Repeat("a", 64) + `"`}},
		{"unknown top-level field", "kind: Task\n", "kind: Task\nstatus: {}\n",
			[]string{`web.yaml:3: status: unknown field "status"`}},
		{"unknown spec field with hint", "  workingDir: /\n", "  workingDir: /\n  Image: x\n",
			[]string{`web.yaml:14: spec.Image: unknown field "Image", did you mean "image"?`}},
		{"duplicate key", "  workingDir: /\n", "  workingDir: /\n  workingDir: /srv\n",
			[]string{`web.yaml:14: spec.workingDir: duplicate key, first at line 13`}},
		{"missing image", "  image: docker.io/library/nginx:1.27\n", "",
			[]string{`web.yaml:6: spec.image: required`}},
		{"invalid image", "image: docker.io/library/nginx:1.27", "image: Docker.io/NGINX",
			[]string{`web.yaml:7: spec.image: invalid image reference "Docker.io/NGINX": invalid reference format: repository name (NGINX) must be lowercase`}},
		{"command not a list", "command: [nginx]", "command: nginx",
			[]string{`web.yaml:8: spec.command: must be a list, got "nginx"`}},
		{"args item not a string", `args: ["-g", "daemon off;"]`, `args: ["-g", {a: b}]`,
			[]string{`web.yaml:9: spec.args[1]: must be a string, got a mapping`}},
		{"env name invalid", "{name: PORT,", "{name: 1X,",
			[]string{`web.yaml:12: spec.env[1].name: must be a valid environment variable name, got "1X"`}},
		{"env name missing", "{name: PORT, value", "{value",
			[]string{`web.yaml:12: spec.env[1].name: required`}},
		{"env name duplicate", "{name: PORT,", "{name: MODE,",
			[]string{`web.yaml:12: spec.env[1].name: duplicate environment variable "MODE", first at spec.env[0]`}},
		{"env value that yaml would change", `value: "8080"`, `value: 0755`,
			[]string{`web.yaml:12: spec.env[1].value: unquoted 0755 would be read as 493; quote it to keep it as written`}},
		{"env unknown field", `value: "8080"`, `valu: "8080"`,
			[]string{`web.yaml:12: spec.env[1].valu: unknown field "valu"`}},
		{"workingDir relative", "workingDir: /", "workingDir: srv",
			[]string{`web.yaml:13: spec.workingDir: must be an absolute path, got "srv"`}},
		{"unknown signal", "stopSignal: SIGQUIT", "stopSignal: SIGFOO",
			[]string{`web.yaml:14: spec.stopSignal: unknown signal "SIGFOO", must be a signal name such as SIGTERM, SIGINT, SIGQUIT or SIGKILL`}},
		{"grace not a duration", "stopGracePeriod: 10s", "stopGracePeriod: 10",
			[]string{`web.yaml:15: spec.stopGracePeriod: must be a duration such as "30s" or "1m30s", got 10`}},
		{"grace bad string", "stopGracePeriod: 10s", "stopGracePeriod: soon",
			[]string{`web.yaml:15: spec.stopGracePeriod: must be a duration such as "30s" or "1m30s", got "soon"`}},
		{"grace negative", "stopGracePeriod: 10s", "stopGracePeriod: -1s",
			[]string{`web.yaml:15: spec.stopGracePeriod: must not be negative, got "-1s"`}},
		{"minReady negative", "stopGracePeriod: 10s", "stopGracePeriod: 10s\n  minReady: -1s",
			[]string{`web.yaml:16: spec.minReady: must not be negative, got "-1s"`}},
		{"progressDeadline not past minReady", "stopGracePeriod: 10s", "stopGracePeriod: 10s\n  minReady: 1m\n  progressDeadline: 1m",
			[]string{`web.yaml:17: spec.progressDeadline: must be longer than minReady (1m0s), got "1m0s": no new container could prove itself in time`}},
		{"progressDeadline below the default minReady", "stopGracePeriod: 10s", "stopGracePeriod: 10s\n  progressDeadline: 5s",
			[]string{`web.yaml:16: spec.progressDeadline: must be longer than minReady (10s), got "5s": no new container could prove itself in time`}},
		{"progressDeadline zero", "stopGracePeriod: 10s", "stopGracePeriod: 10s\n  minReady: 0s\n  progressDeadline: 0s",
			[]string{`web.yaml:17: spec.progressDeadline: must be positive, got "0s"`}},
		{"labels not a mapping", "labels: {tier: frontend}", "labels: [frontend]",
			[]string{`web.yaml:5: metadata.labels: must be a mapping, got a list`}},
		{"metadata not a mapping", "metadata:\n  name: web\n  labels: {tier: frontend}\n", "metadata: web\n",
			[]string{`web.yaml:3: metadata: must be a mapping, got "web"`}},
		{"all problems at once", "name: web", "name: WEB\n  foo: 1",
			[]string{
				`web.yaml:4: metadata.name: must be a DNS-1123 label (at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit), got "WEB"`,
				`web.yaml:5: metadata.foo: unknown field "foo"`,
			}},
		{"yaml syntax error", "command: [nginx]", "command: [nginx",
			[]string{`web.yaml:8: invalid yaml: did not find expected ',' or ']'`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := mutate(t, tt.old, tt.new)
			tasks, err := Parse("dir/web.yaml", []byte(in))
			if err == nil {
				t.Fatalf("Parse succeeded, want errors %q", tt.want)
			}
			if tasks != nil {
				t.Errorf("Parse returned tasks %v with an error", tasks)
			}
			var got []string
			for _, e := range Errors(err) {
				got = append(got, e.Error())
				if e.File != "web.yaml" || e.Doc != 0 {
					t.Errorf("error %q: File=%q Doc=%d, want web.yaml and 0", e, e.File, e.Doc)
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors:\n got %q\nwant %q", got, tt.want)
			}
			if got := err.Error(); got != strings.Join(tt.want, "\n") {
				t.Errorf("err.Error() = %q", got)
			}
		})
	}
}

func TestParseDefaultsAndNormalization(t *testing.T) {
	in := `apiVersion: warren/v1
kind: Task
metadata: {name: a}
spec: {image: busybox, stopSignal: hup}
`
	tasks, err := Parse("a.yml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	s := tasks[0].Spec
	if s.StopSignal != "SIGHUP" || s.StopSig() != "SIGHUP" {
		t.Errorf("StopSignal = %q, StopSig() = %q, want SIGHUP", s.StopSignal, s.StopSig())
	}
	if s.StopGracePeriod == nil || s.StopGracePeriod.Duration != DefaultStopGracePeriod || s.StopGrace() != DefaultStopGracePeriod {
		t.Errorf("StopGracePeriod = %v, want the default %v", s.StopGracePeriod, DefaultStopGracePeriod)
	}
	var zero Spec
	if zero.StopSig() != DefaultStopSignal || zero.StopGrace() != DefaultStopGracePeriod {
		t.Errorf("zero Spec: StopSig() = %q, StopGrace() = %v", zero.StopSig(), zero.StopGrace())
	}
	if tasks[0].Source != "a.yml" {
		t.Errorf("Source = %q", tasks[0].Source)
	}
}

func TestParseDocuments(t *testing.T) {
	doc := func(name string) string {
		return "apiVersion: warren/v1\nkind: Task\nmetadata: {name: " + name + "}\nspec: {image: busybox}\n"
	}
	tests := []struct {
		name      string
		in        string
		wantNames []string
		wantErrs  []string
	}{
		{name: "empty file", in: ""},
		{name: "only comments and separators", in: "# nothing\n---\n\n--- # still nothing\n   \n"},
		{name: "leading separator and comment", in: "# header\n---\n" + doc("a"), wantNames: []string{"a"}},
		{name: "three documents", in: doc("a") + "---\n" + doc("b") + "--- \t# c next\n" + doc("c"), wantNames: []string{"a", "b", "c"}},
		{name: "crlf and byte order mark", in: "\ufeff" + strings.ReplaceAll(doc("a")+"---\n"+doc("b"), "\n", "\r\n"), wantNames: []string{"a", "b"}},
		{name: "error lines count from the file, not the document", in: doc("a") + "---\n# comment\n" + strings.Replace(doc("b"), "busybox", "Busy:Box", 1),
			wantErrs: []string{`f.yaml:10: document 2: spec.image: invalid image reference "Busy:Box": invalid reference format: repository name (library/Busy) must be lowercase`}},
		{name: "duplicate name in one file", in: doc("a") + "---\n" + doc("a"),
			wantErrs: []string{`f.yaml:8: document 2: metadata.name: duplicate task name "a", first defined at line 3`}},
		{name: "a broken document breaks the file", in: doc("a") + "---\nkind: Task\n",
			wantErrs: []string{`f.yaml:6: document 2: apiVersion: required, must be "warren/v1"`}},
		{name: "document that is not a mapping", in: "---\n- a\n- b\n",
			wantErrs: []string{`f.yaml:2: document must be a mapping with apiVersion, kind, metadata and spec, got a list`}},
		{name: "separator with content is not a separator", in: doc("a") + "--- {a: b}\n",
			wantErrs: []string{`f.yaml:5: unexpected second document; separate documents with a line that is only "---"`}},
		{name: "merge keys may not override", in: strings.Replace(doc("a"), "spec: {image: busybox}", "spec:\n  <<: {image: busybox, workingDir: /srv}\n  workingDir: /", 1),
			wantErrs: []string{`f.yaml:6: spec.workingDir: duplicate key, first at line 5`}},
		{name: "syntax error on the first line", in: "a: [\n", wantErrs: []string{`f.yaml:1: invalid yaml: did not find expected node content`}},
		{name: "syntax error from the scanner", in: "---\n# c\na: 1\n b: 2\n", wantErrs: []string{`f.yaml:4: invalid yaml: mapping values are not allowed in this context`}},
		{name: "syntax error from the parser", in: "---\n# c\na: 1\nb: {x\nc: 2\n", wantErrs: []string{`f.yaml:4: invalid yaml: did not find expected ',' or '}'`}},
		{name: "unterminated quote", in: "a: 1\nb: 'x\n", wantErrs: []string{`f.yaml:2: invalid yaml: found unexpected end of stream`}},
		{name: "errors in two documents", in: strings.Replace(doc("a"), "a}", "A}", 1) + "---\n" + strings.Replace(doc("b"), "Task", "Job", 1),
			wantErrs: []string{
				`f.yaml:3: metadata.name: must be a DNS-1123 label (at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit), got "A"`,
				`f.yaml:7: document 2: kind: must be "Task", got "Job"`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tasks, err := Parse("f.yaml", []byte(tt.in))
			var gotErrs []string
			for _, e := range Errors(err) {
				gotErrs = append(gotErrs, e.Error())
			}
			if !reflect.DeepEqual(gotErrs, tt.wantErrs) {
				t.Fatalf("errors:\n got %q\nwant %q", gotErrs, tt.wantErrs)
			}
			var names []string
			for _, task := range tasks {
				names = append(names, task.Metadata.Name)
			}
			if !reflect.DeepEqual(names, tt.wantNames) {
				t.Errorf("names = %q, want %q", names, tt.wantNames)
			}
		})
	}
}

func TestParseMergeKeysAndAnchors(t *testing.T) {
	in := `apiVersion: warren/v1
kind: Task
metadata: {name: a}
spec:
  <<: &common {image: busybox, stopSignal: INT}
  workingDir: /
  command: &cmd [sleep, "1"]
  args: *cmd
`
	tasks, err := Parse("f.yaml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	s := tasks[0].Spec
	if s.Image != "busybox" || s.StopSignal != "SIGINT" || s.WorkingDir != "/" || !reflect.DeepEqual(s.Args, []string{"sleep", "1"}) {
		t.Errorf("spec = %+v", s)
	}
}

func TestParseAliasBomb(t *testing.T) {
	// Ten merges of ten merges of ...: 10^7 keys once expanded, each a
	// duplicate. Parse must stop early, in bounded time and output.
	in := `defs:
  - &a {k: v}
  - &b {<<: [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]}
  - &c {<<: [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]}
  - &d {<<: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]}
  - &e {<<: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]}
  - &f {<<: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]}
  - &g {<<: [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]}
apiVersion: warren/v1
kind: Task
metadata: {name: a, labels: {<<: *g}}
spec: {image: busybox}
`
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := Parse("bomb.yaml", []byte(in))
		done <- err
	}()
	select {
	case err := <-done:
		t.Logf("refused in %s", time.Since(start))
		es := Errors(err)
		if len(es) == 0 || len(es) > maxErrors+1 {
			t.Fatalf("got %d errors, want 1 to %d: %v", len(es), maxErrors+1, err)
		}
		if last := es[len(es)-1].Msg; !strings.Contains(last, "too many problems") && !strings.Contains(last, "too large") {
			t.Errorf("last error %q does not say the output was cut", last)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Parse of an alias bomb did not finish in 10s")
	}
}

// TestParseBillionLaughs: the classic alias bomb, 9^9 strings once
// expanded, at the top level (an unknown field) and under a list field.
// Each must be refused in milliseconds.
func TestParseBillionLaughs(t *testing.T) {
	var b strings.Builder
	b.WriteString("a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	for c := 'b'; c <= 'i'; c++ {
		p := string(c - 1)
		fmt.Fprintf(&b, "%c: &%c [*%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s]\n", c, c, p, p, p, p, p, p, p, p, p)
	}
	laughs := b.String()
	docs := map[string]string{
		"top level":    "apiVersion: warren/v1\nkind: Task\nmetadata: {name: a}\nspec: {image: busybox}\n" + laughs,
		"in spec.args": "apiVersion: warren/v1\nkind: Task\nmetadata: {name: a}\nspec:\n  image: busybox\n  command: [sh]\n  x:\n" + indent(laughs, "    ") + "  args: *i\n",
	}
	for name, doc := range docs {
		start := time.Now()
		_, err := Parse("bomb.yaml", []byte(doc))
		took := time.Since(start)
		t.Logf("%s: refused in %s: %v", name, took, firstLine(err))
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
		if took > 2*time.Second {
			t.Errorf("%s: took %s, want milliseconds", name, took)
		}
	}
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n"+prefix) + "\n"
}

func firstLine(err error) string {
	if err == nil {
		return ""
	}
	l, _, _ := strings.Cut(err.Error(), "\n")
	return l
}

func TestParseTooLarge(t *testing.T) {
	_, err := Parse("big.yaml", make([]byte, MaxFileSize+1))
	if got, want := err.Error(), "big.yaml: file is larger than 1048576 bytes"; got != want {
		t.Errorf("err = %q, want %q", got, want)
	}
	if _, err := Parse("ok.yaml", []byte(strings.Repeat("#", MaxFileSize))); err != nil {
		t.Errorf("file of exactly MaxFileSize: %v", err)
	}
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		e    Error
		want string
	}{
		{Error{File: "web.yaml", Line: 14, Field: "spec.env[1].name", Msg: `must be a valid environment variable name, got "1X"`},
			`web.yaml:14: spec.env[1].name: must be a valid environment variable name, got "1X"`},
		{Error{File: "web.yaml", Field: "spec", Msg: "m"}, "web.yaml: spec: m"},
		{Error{File: "web.yaml", Line: 3, Msg: "m"}, "web.yaml:3: m"},
		{Error{File: "web.yaml", Msg: "m"}, "web.yaml: m"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
	joined := errors.Join(&Error{File: "a", Msg: "1"}, errors.New("other"), &Error{File: "b", Msg: "2"})
	if got := Errors(joined); len(got) != 2 || got[0].File != "a" || got[1].File != "b" {
		t.Errorf("Errors(joined) = %v", got)
	}
}

func TestDecodeErrorFallback(t *testing.T) {
	// The schema check catches what sigs.k8s.io/yaml would; its errors
	// are still turned into readable *Error values if it ever does not.
	ds := &docState{file: "f.yaml", start: 10, top: 10, lines: map[string]int{"spec": 2, "spec.foo": 3}}
	ds.decodeError(errors.New(`error unmarshaling JSON: while decoding JSON: json: unknown field "foo"`))
	ds.decodeError(errors.New("error converting YAML to JSON: yaml: line 4: mapping values are not allowed in this context"))
	ds.decodeError(errors.New("something else\nentirely"))
	var got []string
	for _, e := range ds.errs {
		got = append(got, e.Error())
	}
	want := []string{
		`f.yaml:12: spec.foo: unknown field "foo"`,
		`f.yaml:13: mapping values are not allowed in this context`,
		`f.yaml:10: something else entirely`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

// TestParseGolden checks the full output for the files in testdata/parse;
// run with -update to rewrite the .golden files after a deliberate change.
func TestParseGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "parse", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			tasks, err := Parse(f, data)
			if err != nil {
				b.WriteString(err.Error() + "\n")
			}
			for _, task := range tasks {
				b.WriteString(task.Metadata.Name + " " + task.Hash() + "\n")
			}
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if b.String() != string(want) {
				t.Errorf("output differs from %s (run with -update after a deliberate change):\n got:\n%s\nwant:\n%s", golden, b.String(), want)
			}
		})
	}
}
