package desired

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"iter"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	yaml3 "go.yaml.in/yaml/v3"
	"sigs.k8s.io/yaml"
)

// MaxFileSize is the largest manifest file, in bytes, that is read. A larger
// file is an error and is not parsed.
const MaxFileSize = 1 << 20

// Parse reads every document of one file. file is used, by its base name, in
// error messages and as Task.Source.
//
// It returns the valid tasks with defaults applied, or a non-nil error that
// lists every problem of the file (an [errors.Join] of *[Error]). When err is
// non-nil the file is broken, tasks is nil, and the file's tasks must be
// treated as absent (or as last known good, see [Loader]). A Kubernetes Pod
// document (apiVersion v1, kind Pod) gives one task per container, named
// POD-CONTAINER (see [Pod]).
func Parse(file string, data []byte) ([]Task, error) {
	tasks, _, err := ParseWithWarnings(file, data)
	return tasks, err
}

// ParseWithWarnings is [Parse], and the warnings of a valid file: what it
// asks for that is accepted and has no effect here (see [Warning]).
func ParseWithWarnings(file string, data []byte) ([]Task, []Warning, error) {
	pts, warns, err := parseFile(baseName(file), data)
	if err != nil {
		return nil, nil, err
	}
	tasks := make([]Task, len(pts))
	for i, pt := range pts {
		tasks[i] = pt.task
	}
	return tasks, warns, nil
}

// Warning is something a valid manifest asks for that is accepted and has
// no effect on this node (a Kubernetes Pod's resources.requests, a volume
// no container mounts): said, never an error.
type Warning struct {
	File  string // base name
	Line  int    // 1-based line in the file; 0 if unknown
	Doc   int    // 0-based index of the document in the file
	Field string // field path, e.g. "spec.containers[0].resources.requests"
	Msg   string
}

// String formats as an [Error] does: `pod.yaml:14: spec.volumes[0]: ...`.
func (w Warning) String() string {
	return (&Error{File: w.File, Line: w.Line, Doc: w.Doc, Field: w.Field, Msg: w.Msg}).Error()
}

func baseName(file string) string {
	if file == "" {
		return ""
	}
	return filepath.Base(file)
}

// parsedTask is a valid task and where it was found.
type parsedTask struct {
	task      Task
	doc       int
	nameLine  int
	nameField string   // where the name is written: "metadata.name", or a pod's "spec.containers[0].name"
	depLines  []int    // of each spec.dependsOn[i].task
	portLine  []int    // of each spec.ports[i].hostPort
	portField []string // the field of each port's hostPort, when not spec.ports[i].hostPort (a pod's)
	hash      string   // task.Hash(), once per parse (the Loader sets it)
}

// parseFile parses every document of a file: the valid tasks and the
// warnings, or every problem.
func parseFile(name string, data []byte) ([]parsedTask, []Warning, error) {
	if len(data) > MaxFileSize {
		return nil, nil, &Error{File: name, Msg: fmt.Sprintf("file is larger than %d bytes", MaxFileSize)}
	}
	var (
		errs  []*Error
		warns []Warning
		out   []parsedTask
		names = map[string]parsedTask{}
	)
	for i, d := range splitDocuments(data) {
		pts, derrs, dwarns := parseDocument(name, i, d)
		errs = append(errs, derrs...)
		warns = append(warns, dwarns...)
		for _, pt := range pts {
			if n := pt.task.Metadata.Name; n != "" {
				if first, dup := names[n]; dup {
					errs = append(errs, &Error{File: name, Line: pt.nameLine, Doc: i, Field: pt.nameField,
						Msg: fmt.Sprintf("duplicate task name %q, first defined at line %d", n, first.nameLine)})
					continue
				}
				names[n] = pt
			}
			if len(derrs) == 0 {
				out = append(out, pt)
			}
		}
	}
	if err := joinErrors(errs); err != nil {
		return nil, nil, err
	}
	return out, warns, nil
}

// document is the text of one YAML document and the file line it starts on.
type document struct {
	line int // 1-based file line of the document's first line
	text []byte
}

// splitDocuments splits data on separator lines ("---", optionally followed
// by blanks and a comment) and drops documents that hold only blanks and
// comments.
func splitDocuments(data []byte) []document {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // UTF-8 byte order mark
	var (
		docs  []document
		start = 0 // offset of the current document
		first = 1 // its first line
		line  = 0
		off   = 0
	)
	for l := range yamlLines(data) {
		line++
		if isSeparator(l) {
			docs = append(docs, document{line: first, text: data[start:off]})
			start, first = off+len(l), line+1
		}
		off += len(l)
	}
	docs = append(docs, document{line: first, text: data[start:]})
	out := docs[:0]
	for _, d := range docs {
		if !isBlank(d.text) {
			out = append(out, d)
		}
	}
	return out
}

// yamlLines yields the lines of data, each with its line break, splitting
// where YAML's scanner counts a new line: at LF, CRLF, a lone CR, NEL, LS
// and PS. Lines must be counted alike, or error lines would be off.
func yamlLines(data []byte) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		for len(data) > 0 {
			n := len(data)
			for i := 0; i < len(data); i++ {
				if w := lineBreak(data[i:]); w > 0 {
					n = i + w
					break
				}
			}
			if !yield(data[:n]) {
				return
			}
			data = data[n:]
		}
	}
}

// lineBreak returns the length of the line break at the start of b, or 0.
func lineBreak(b []byte) int {
	switch {
	case b[0] == '\n':
		return 1
	case b[0] == '\r':
		if len(b) > 1 && b[1] == '\n' {
			return 2
		}
		return 1
	case bytes.HasPrefix(b, []byte("\u0085")): // NEL
		return 2
	case bytes.HasPrefix(b, []byte("\u2028")), bytes.HasPrefix(b, []byte("\u2029")): // LS, PS
		return 3
	}
	return 0
}

func isSeparator(line []byte) bool {
	rest, ok := bytes.CutPrefix(line, []byte("---"))
	if !ok {
		return false
	}
	rest = bytes.TrimLeft(rest, " \t")
	return len(rest) == 0 || rest[0] == '#' || lineBreak(rest) == len(rest)
}

func isBlank(text []byte) bool {
	for l := range yamlLines(text) {
		l = bytes.TrimSpace(l)
		if len(l) > 0 && l[0] != '#' {
			return false
		}
	}
	return true
}

// docState collects what is learned about one document: its problems and
// the file line of every field path seen.
type docState struct {
	file     string
	doc      int
	start    int            // file line of the document's first line
	top      int            // file line of the document's top node
	lastLine int            // number of lines in the document
	lines    map[string]int // field path -> line within the document
	errs     []*Error
	warns    []Warning
	bad      []string // field paths with a type error, nulled in the tree
	nodes    int      // nodes visited, bounded against alias bombs
}

// fileLine turns a line within the document into a line of the file.
func (ds *docState) fileLine(docLine int) int {
	if docLine <= 0 {
		return ds.top
	}
	return ds.start + docLine - 1
}

// lineOf returns the file line of field, or of its nearest parent that was
// seen, or of the document.
func (ds *docState) lineOf(field string) int {
	for p := field; p != ""; p = parentPath(p) {
		if l, ok := ds.lines[p]; ok {
			return ds.fileLine(l)
		}
	}
	return ds.top
}

// maxErrors bounds the problems reported per document.
const maxErrors = 100

// errorAt records a problem at a line within the document.
func (ds *docState) errorAt(docLine int, field, msg string) {
	ds.add(&Error{File: ds.file, Line: ds.fileLine(docLine), Doc: ds.doc, Field: field, Msg: msg})
}

// errorField records a problem about a field, at the field's line.
func (ds *docState) errorField(field, msg string) {
	ds.add(&Error{File: ds.file, Line: ds.lineOf(field), Doc: ds.doc, Field: field, Msg: msg})
}

// warnField records a warning about a field, at the field's line.
func (ds *docState) warnField(field, msg string) {
	ds.warns = append(ds.warns, Warning{File: ds.file, Line: ds.lineOf(field), Doc: ds.doc, Field: field, Msg: msg})
}

func (ds *docState) add(e *Error) {
	switch n := len(ds.errs); {
	case n < maxErrors:
		ds.errs = append(ds.errs, e)
	case n == maxErrors:
		// At the document's last line, so that it sorts last.
		ds.errs = append(ds.errs, &Error{File: ds.file, Line: ds.fileLine(max(ds.lastLine, 1)), Doc: ds.doc,
			Msg: fmt.Sprintf("too many problems, only the first %d are shown", maxErrors)})
	}
}

// parentPath returns "spec.env[1]" for "spec.env[1].name", "spec.env" for
// "spec.env[1]", and "" for "spec".
func parentPath(p string) string {
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndexByte(p, '['); i >= 0 {
			return p[:i]
		}
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// parseDocument decodes and validates one document. It returns the task
// (with defaults; a Pod's tasks) when the document could be decoded at all,
// so that names can still be checked for duplicates, every problem found,
// and the warnings.
func parseDocument(file string, idx int, d document) ([]parsedTask, []*Error, []Warning) {
	ds := &docState{file: file, doc: idx, start: d.line, top: d.line, lines: map[string]int{}}
	for range yamlLines(d.text) {
		ds.lastLine++
	}

	// The node tree gives lines and the schema check; sigs.k8s.io/yaml
	// below does the decoding.
	dec := yaml3.NewDecoder(bytes.NewReader(d.text))
	var root yaml3.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, nil
		}
		ds.yamlError(err)
		return nil, ds.errs, nil
	}
	if len(root.Content) == 0 {
		return nil, nil, nil
	}
	top := root.Content[0]
	ds.top = ds.fileLine(top.Line)
	var extra yaml3.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		ds.errorAt(extra.Line, "", `unexpected second document; separate documents with a line that is only "---"`)
		return nil, ds.errs, nil
	case !errors.Is(err, io.EOF):
		ds.yamlError(err)
		return nil, ds.errs, nil
	}

	top = ds.deref(top)
	if top == nil || top.Kind != yaml3.MappingNode {
		ds.errorAt(0, "", "document must be a mapping with apiVersion, kind, metadata and spec, got "+nodeWord(top))
		return nil, ds.errs, nil
	}
	pod, ok := ds.checkHeader(top)
	if !ok {
		return nil, ds.errs, nil
	}
	if pod {
		return ds.parsePod(&root, top, d.text), ds.errs, ds.warns
	}
	ds.walk(top, taskType, "", 0)
	schemaOK := len(ds.errs) == 0

	var t Task
	if err := yaml.UnmarshalStrict(d.text, &t); err != nil {
		if schemaOK {
			// The schema check missed something the decoder caught;
			// report the decoder's words.
			ds.decodeError(err)
		}
		// Decode leniently what is left once the values of the wrong
		// type are nulled, so that validation can still report
		// everything else that is wrong.
		t = Task{}
		if !decodePruned(&root, &t) {
			return nil, ds.errs, nil
		}
	}
	for _, fe := range validateBody(&t) {
		if !ds.reported(fe.field) {
			ds.errorField(fe.field, fe.msg)
		}
	}
	// An explicit "retries: 0" would silently mean the default.
	if _, set := ds.lines["spec.healthCheck.retries"]; set && t.Spec.HealthCheck != nil && t.Spec.HealthCheck.Retries == 0 &&
		!ds.reported("spec.healthCheck.retries") {
		ds.errorField("spec.healthCheck.retries", "must be positive, got 0")
	}
	t.Source = file
	t.Spec = t.Spec.withDefaults()
	pt := parsedTask{task: t, doc: idx, nameLine: ds.lineOf("metadata.name"), nameField: "metadata.name"}
	for i := range t.Spec.DependsOn {
		pt.depLines = append(pt.depLines, ds.lineOf(fmt.Sprintf("spec.dependsOn[%d].task", i)))
	}
	for i := range t.Spec.Ports {
		pt.portLine = append(pt.portLine, ds.lineOf(fmt.Sprintf("spec.ports[%d].hostPort", i)))
	}
	return []parsedTask{pt}, ds.errs, ds.warns
}

// parsePod decodes a document whose header is a Kubernetes Pod's, checks it
// and maps it onto its tasks (see pod.go).
func (ds *docState) parsePod(root, top *yaml3.Node, text []byte) []parsedTask {
	ds.walk(top, podType, "", 0)
	ds.podUnknownFields()
	schemaOK := len(ds.errs) == 0
	var p Pod
	if err := yaml.UnmarshalStrict(text, &p); err != nil {
		if schemaOK {
			ds.decodeError(err)
			ds.podUnknownFields()
		}
		p = Pod{}
		if !decodePruned(root, &p) {
			return nil
		}
	}
	return ds.podTasks(&p)
}

// decodePruned re-encodes the node tree and decodes it leniently into t
// (a *Task or a *Pod). The errors that matter were reported already; any
// failure, a panic of the encoder included, just means there is nothing
// more to validate.
func decodePruned(root *yaml3.Node, t any) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	pruned, err := yaml3.Marshal(root)
	return err == nil && yaml.Unmarshal(pruned, t) == nil
}

// checkHeader checks apiVersion and kind from the node tree, before anything
// else: with a wrong kind, the rest of the schema is not ours to judge. A
// document is a Kubernetes Pod when its kind is Pod, or its apiVersion v1
// and its kind not Task.
func (ds *docState) checkHeader(top *yaml3.Node) (pod, ok bool) {
	var apiVersion, kind string
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], ds.deref(top.Content[i+1])
		if k.Kind != yaml3.ScalarNode || (k.Value != "apiVersion" && k.Value != "kind") {
			continue
		}
		ds.lines[k.Value] = k.Line
		if v != nil && v.Kind == yaml3.ScalarNode && v.Tag != "!!null" {
			if k.Value == "apiVersion" {
				apiVersion = v.Value
			} else {
				kind = v.Value
			}
		}
	}
	pod = kind == KindPod || (apiVersion == PodAPIVersion && kind != KindTask)
	fes := validateHeader(apiVersion, kind)
	if pod {
		fes = validatePodHeader(apiVersion, kind)
	}
	for _, fe := range fes {
		ds.errorField(fe.field, fe.msg)
	}
	return pod, len(fes) == 0
}

var yamlLineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlParserProblems are the messages of go-yaml's parser (as opposed to its
// scanner). go-yaml reports their line 0-based, and none at all on the
// first line; scanner errors have the right 1-based line.
var yamlParserProblems = map[string]bool{
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"did not find expected '-' indicator":    true,
	"did not find expected <document start>": true,
	"did not find expected <stream-start>":   true,
	"did not find expected key":              true,
	"did not find expected node content":     true,
	"found duplicate %TAG directive":         true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found undefined tag handle":             true,
}

// yamlError records a YAML syntax error, turning its document line into a
// file line.
func (ds *docState) yamlError(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		if n, convErr := strconv.Atoi(m[1]); convErr == nil {
			line, msg = n, m[2]
		}
	}
	if yamlParserProblems[msg] {
		line++
	}
	// An error at the end of the stream is on the line after the last one.
	line = min(line, ds.lastLine)
	ds.errorAt(line, "", "invalid yaml: "+msg)
}

var (
	unknownFieldRE = regexp.MustCompile(`unknown field "([^"]*)"`)
	unmarshalRE    = regexp.MustCompile(`line (\d+): (.*)`)
)

// decodeError records an error of sigs.k8s.io/yaml, keeping its message but
// giving it a field and a line when the message says which.
func (ds *docState) decodeError(err error) {
	msg := err.Error()
	for _, p := range []string{"error converting YAML to JSON: ", "error unmarshaling JSON: ", "while decoding JSON: "} {
		msg = strings.TrimPrefix(msg, p)
	}
	if ute, ok := errors.AsType[*jsonTypeError](err); ok && ute.Field != "" {
		ds.errorField(ute.Field, fmt.Sprintf("cannot decode a %s into %s", ute.Value, ute.Type))
		return
	}
	if m := unknownFieldRE.FindStringSubmatch(msg); m != nil {
		field := m[1]
		var seen []string
		for p := range ds.lines {
			if p == field || strings.HasSuffix(p, "."+field) {
				seen = append(seen, p)
			}
		}
		if len(seen) > 0 {
			field = slices.Min(seen)
		}
		ds.errorField(field, "unknown field "+strconv.Quote(m[1]))
		return
	}
	if m := unmarshalRE.FindStringSubmatch(msg); m != nil {
		if n, convErr := strconv.Atoi(m[1]); convErr == nil {
			ds.errorAt(n, "", m[2])
			return
		}
	}
	ds.errorAt(0, "", strings.ReplaceAll(msg, "\n", " "))
}
