package desired

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"sigs.k8s.io/yaml"
)

// schemaFile is the committed copy of JSONSchema().
var schemaFile = filepath.Join("..", "..", "manifests", "task.schema.json")

// TestJSONSchemaCommitted fails when manifests/task.schema.json is stale.
// Refresh it with `go test ./pkg/desired -run JSONSchemaCommitted -update`,
// `go generate ./pkg/desired` or `make schema`.
func TestJSONSchemaCommitted(t *testing.T) {
	got := JSONSchema()
	if *update {
		if err := os.WriteFile(schemaFile, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatalf("%v (run `make schema`)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is stale: run `make schema` (or go generate ./pkg/desired) and commit it", schemaFile)
	}
}

func TestJSONSchemaDocumentsEveryField(t *testing.T) {
	keys := map[string]bool{}
	for _, f := range schemaFields() {
		keys[f[1]] = true
		if d := fieldDocs[f[1]]; d.desc == "" {
			t.Errorf("field %s (%s) has no description in fieldDocs", f[0], f[1])
		}
	}
	for k := range fieldDocs {
		if !keys[k] {
			t.Errorf("fieldDocs has %s, which is no field", k)
		}
	}
}

// TestDocsDocumentEveryField checks that the manifest reference
// (docs/manifest.md) names every field of the schema.
func TestDocsDocumentEveryField(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "docs", "manifest.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range schemaFields() {
		if !bytes.Contains(readme, []byte("`"+f[0]+"`")) {
			t.Errorf("docs/manifest.md does not document `%s`", f[0])
		}
	}
	if !bytes.Contains(readme, []byte("# yaml-language-server: $schema=")) {
		t.Errorf("docs/manifest.md does not show the yaml-language-server modeline")
	}
}

// compiledSchema compiles JSONSchema() with an independent validator,
// which also proves it is a valid draft 2020-12 schema.
func compiledSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(JSONSchema()))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource("task.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("task.schema.json")
	if err != nil {
		t.Fatalf("compile the schema: %v", err)
	}
	return s
}

// schemaCheck validates one YAML document against the schema.
func schemaCheck(t *testing.T, s *jsonschema.Schema, doc string) error {
	t.Helper()
	j, err := yaml.YAMLToJSON([]byte(doc))
	if err != nil {
		t.Fatalf("yaml to json: %v\n%s", err, doc)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		t.Fatal(err)
	}
	return s.Validate(v)
}

// TestJSONSchemaAcceptsValidManifests: whatever Parse accepts, the schema
// accepts (an editor must never flag a valid manifest).
func TestJSONSchemaAcceptsValidManifests(t *testing.T) {
	s := compiledSchema(t)
	var files []string
	for _, glob := range []string{"testdata/parse/full.yaml", "testdata/parse/valid.yaml", "../../manifests/*.yaml", "../../manifests/examples/*.yaml"} {
		m, _ := filepath.Glob(glob)
		files = append(files, m...)
	}
	if len(files) < 5 {
		t.Fatalf("found only %v", files)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(f, data); err != nil {
			t.Fatalf("%s does not parse: %v", f, err)
		}
		for _, d := range splitDocuments(data) {
			if bytes.Contains(d.text, []byte("\nkind: Pod\n")) {
				continue // a Kubernetes Pod: the Kubernetes schema is its (docs/pods.md)
			}
			if err := schemaCheck(t, s, string(d.text)); err != nil {
				t.Errorf("%s (document at line %d): the schema refuses a valid manifest: %v", f, d.line, err)
			}
		}
	}
	// Other spellings Parse accepts.
	for _, frag := range []string{
		"  stopSignal: term\n",
		"  stopSignal: Sigquit\n",
		"  securityContext: {capabilities: {add: [cap_net_raw, Net_Admin], drop: [all]}}\n",
		"  resources: {cpu: 0.5, memory: 1e9, pids: 1}\n",
		"  resources: {cpu: \"2\", memory: 1.5Gi}\n",
		"  stopGracePeriod: 1h2m3.5s\n",
		"  restartBackoff: {initial: 500ms, max: 1m}\n",
		"  healthCheck: {exec: {command: [a]}, retries: 1}\n",
		"  mounts: [{type: tmpfs, target: /t, readOnly: true}]\n",
		"  env: [{name: A}]\n",
	} {
		doc := specDoc(frag)
		if _, err := Parse("t.yaml", []byte(doc)); err != nil {
			t.Fatalf("%q does not parse: %v", frag, err)
		}
		if err := schemaCheck(t, s, doc); err != nil {
			t.Errorf("%q: the schema refuses a valid manifest: %v", frag, err)
		}
	}
}

// TestJSONSchemaRefusesMistakes: the mistakes a schema can express are
// flagged in the editor too.
func TestJSONSchemaRefusesMistakes(t *testing.T) {
	s := compiledSchema(t)
	for _, frag := range []string{
		"  bogus: 1\n",
		"  imagePullPolicy: always\n",
		"  network: overlay\n",
		"  restartPolicy: Sometimes\n",
		"  updateStrategy: rolling\n",
		"  user: nginx\n",
		"  workingDir: srv\n",
		"  stopSignal: TERMINATE\n",
		"  stopGracePeriod: 10\n",
		"  stopGracePeriod: soon\n",
		"  resources: {cpu: lots}\n",
		"  resources: {memory: -1Gi}\n",
		"  resources: {pids: 0}\n",
		"  env: [{value: x}]\n",
		"  env: [{name: 1X}]\n",
		"  mounts: [{type: nfs, target: /a}]\n",
		"  mounts: [{type: tmpfs}]\n",
		"  mounts: [{type: tmpfs, target: a}]\n",
		"  mounts: [{type: tmpfs, source: x, target: /a}]\n",
		"  mounts: [{type: volume, target: /a}]\n",
		"  mounts: [{type: volume, source: /x, target: /a}]\n",
		"  mounts: [{type: bind, source: x, target: /a}]\n",
		"  mounts: [{type: bind, source: /x, target: /a, size: 1Mi}]\n",
		"  secrets: [{name: a/b, file: /a}]\n",
		"  secrets: [{name: a}]\n",
		"  securityContext: {capabilities: {add: [ALL]}}\n",
		"  securityContext: {capabilities: {drop: [FLY]}}\n",
		"  healthCheck: {interval: 5s}\n",
		"  healthCheck: {tcp: {port: 1}, http: {port: 1}}\n",
		"  healthCheck: {tcp: {port: 0}}\n",
		"  healthCheck: {http: {port: 65536}}\n",
		"  healthCheck: {http: {port: 80, path: healthz}}\n",
		"  healthCheck: {exec: {command: []}}\n",
		"  healthCheck: {tcp: {port: 1}, retries: 0}\n",
	} {
		doc := specDoc(frag)
		if _, err := Parse("t.yaml", []byte(doc)); err == nil {
			t.Errorf("%q: Parse accepts it; the case is wrong", frag)
		}
		if err := schemaCheck(t, s, doc); err == nil {
			t.Errorf("%q: the schema accepts it", frag)
		}
	}
	for _, doc := range []string{
		"apiVersion: warren/v2\nkind: Task\nmetadata: {name: t}\nspec: {image: busybox}\n",
		"apiVersion: warren/v1\nkind: Pod\nmetadata: {name: t}\nspec: {image: busybox}\n",
		"apiVersion: warren/v1\nkind: Task\nmetadata: {name: Web}\nspec: {image: busybox}\n",
		"apiVersion: warren/v1\nkind: Task\nmetadata: {name: t}\nspec: {}\n",
		"apiVersion: warren/v1\nkind: Task\nmetadata: {name: t}\n",
	} {
		if err := schemaCheck(t, s, doc); err == nil {
			t.Errorf("%q: the schema accepts it", doc)
		}
	}
}

// TestJSONSchemaPatternsAgree checks the patterns shared by the validator
// and the schema, and the hand-written ones against the parsers.
func TestJSONSchemaPatternsAgree(t *testing.T) {
	dur := regexp.MustCompile(durationPattern)
	for _, d := range []string{"0", "30s", "1m30s", "1.5h", "500ms", "10us", "10µs", "+5s", ".5s"} {
		if !dur.MatchString(d) {
			t.Errorf("duration pattern refuses %q", d)
		}
	}
	for _, d := range []string{"", "10", "5 minutes", "1d", "s", "-1s"} {
		if dur.MatchString(d) {
			t.Errorf("duration pattern accepts %q", d)
		}
	}
	q := regexp.MustCompile(quantityPattern)
	for _, v := range []string{"1", "0.5", "500m", "256Mi", "1G", "1e3", "1.5Gi", ".5", "+1"} {
		if !q.MatchString(v) {
			t.Errorf("quantity pattern refuses %q", v)
		}
	}
	for _, v := range []string{"", "-1", "1 Gi", "lots", "1GB", "1gi"} {
		if q.MatchString(v) {
			t.Errorf("quantity pattern accepts %q", v)
		}
	}
	sig := regexp.MustCompile(signalSchema()[1].Pattern)
	for n := range signals {
		for _, v := range []string{n, strings.ToLower(n), strings.TrimPrefix(n, "SIG")} {
			if !sig.MatchString(v) {
				t.Errorf("signal pattern refuses %q", v)
			}
		}
	}
	if sig.MatchString("SIGFOO") || sig.MatchString("SIGTERMX") {
		t.Errorf("signal pattern too loose")
	}
	capRE := regexp.MustCompile(capSchema(true).AnyOf[1].Pattern)
	for n := range capabilities {
		for _, v := range []string{n, strings.ToLower(n), strings.TrimPrefix(n, "CAP_")} {
			if !capRE.MatchString(v) {
				t.Errorf("capability pattern refuses %q", v)
			}
		}
	}
	if !slices.Contains(capSchema(true).AnyOf[0].Enum, "ALL") || slices.Contains(capSchema(false).AnyOf[0].Enum, "ALL") {
		t.Errorf("ALL must be offered in drop only")
	}
}
