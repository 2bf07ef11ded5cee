package desired

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	yaml2 "go.yaml.in/yaml/v2"
	yaml3 "go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/api/resource"
)

// The schema check walks the YAML node tree of a document along the Go types
// it decodes into (by their json tags), so that every unknown field, duplicate
// key and wrong type is reported at once, with its line. Decoding itself is
// left to sigs.k8s.io/yaml. New fields of Task need nothing here: the walk
// follows the types.

type jsonTypeError = json.UnmarshalTypeError

var (
	taskType        = reflect.TypeFor[Task]()
	durationType    = reflect.TypeFor[Duration]()
	quantityType    = reflect.TypeFor[resource.Quantity]()
	unmarshalerType = reflect.TypeFor[json.Unmarshaler]()
)

const (
	maxNodes = 100_000 // nodes visited per document, aliases included
	maxDepth = 64
)

// deref follows aliases, counting visits so that an alias bomb ends in an
// error instead of a hang. It returns nil when the budget is spent.
func (ds *docState) deref(n *yaml3.Node) *yaml3.Node {
	for i := 0; n != nil && n.Kind == yaml3.AliasNode; i++ {
		if i > 100 {
			return nil
		}
		n = n.Alias
	}
	ds.nodes++
	if ds.nodes == maxNodes {
		ds.errorAt(0, "", fmt.Sprintf("document is too large: more than %d nodes, aliases expanded", maxNodes))
	}
	if ds.nodes >= maxNodes {
		return nil
	}
	return n
}

// walk checks node n against type t; path is n's field path.
func (ds *docState) walk(n *yaml3.Node, t reflect.Type, path string, depth int) {
	n = ds.deref(n)
	if n == nil || (n.Kind == yaml3.ScalarNode && n.Tag == "!!null") {
		return // null decodes to the zero value
	}
	if depth > maxDepth {
		ds.errorAt(n.Line, path, "nested too deeply")
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		ds.walkUnmarshaler(n, t, path)
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if !ds.expect(n, yaml3.MappingNode, t, path) {
			return
		}
		fields := jsonFields(t)
		for _, p := range ds.pairs(n, path, depth) {
			kp := joinPath(path, p.name)
			ds.lines[kp] = p.key.Line
			ft, ok := fields[p.name]
			if !ok {
				ds.errorAt(p.key.Line, kp, unknownFieldMsg(p.name, fields))
				continue
			}
			ds.walk(p.val, ft, kp, depth+1)
		}
	case reflect.Map:
		if !ds.expect(n, yaml3.MappingNode, t, path) {
			return
		}
		for _, p := range ds.pairs(n, path, depth) {
			kp := joinPath(path, p.name)
			ds.lines[kp] = p.key.Line
			ds.walk(p.val, t.Elem(), kp, depth+1)
		}
	case reflect.Slice, reflect.Array:
		if !ds.expect(n, yaml3.SequenceNode, t, path) {
			return
		}
		for i, item := range n.Content {
			ip := fmt.Sprintf("%s[%d]", path, i)
			ds.lines[ip] = item.Line
			ds.walk(item, t.Elem(), ip, depth+1)
		}
	case reflect.String:
		if ds.expect(n, yaml3.ScalarNode, t, path) {
			ds.checkPlainString(n, path)
		}
	case reflect.Bool:
		ds.expectTag(n, t, path, "!!bool")
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		ds.expectTag(n, t, path, "!!int")
	case reflect.Float32, reflect.Float64:
		ds.expectTag(n, t, path, "!!int", "!!float")
	}
}

// walkUnmarshaler checks a scalar that decodes through UnmarshalJSON by
// running it, so that its own message is reported at the right line.
func (ds *docState) walkUnmarshaler(n *yaml3.Node, t reflect.Type, path string) {
	if n.Kind != yaml3.ScalarNode {
		ds.typeError(n, path, fmt.Sprintf("must be %s, got %s", typeWord(t), nodeWord(n)))
		return
	}
	var b []byte
	if n.Tag != "!!str" && json.Valid([]byte(n.Value)) {
		b = []byte(n.Value)
	} else {
		b, _ = json.Marshal(n.Value)
	}
	v := reflect.New(t).Interface().(json.Unmarshaler)
	if err := v.UnmarshalJSON(b); err != nil {
		msg := err.Error()
		if t == quantityType {
			msg = fmt.Sprintf("must be %s, got %s", typeWord(t), nodeWord(n))
		}
		ds.typeError(n, path, msg)
	}
}

func (ds *docState) expect(n *yaml3.Node, kind yaml3.Kind, t reflect.Type, path string) bool {
	if n.Kind == kind {
		return true
	}
	ds.typeError(n, path, fmt.Sprintf("must be %s, got %s", typeWord(t), nodeWord(n)))
	return false
}

func (ds *docState) expectTag(n *yaml3.Node, t reflect.Type, path string, tags ...string) {
	if n.Kind == yaml3.ScalarNode {
		for _, tag := range tags {
			if n.ShortTag() == tag {
				return
			}
		}
	}
	ds.typeError(n, path, fmt.Sprintf("must be %s, got %s", typeWord(t), nodeWord(n)))
}

// typeError records a value that cannot be decoded into its field, and
// replaces it by null in the tree, so that the rest of the document can
// still be decoded and validated. Validation problems under path are not
// reported: this one says it all.
func (ds *docState) typeError(n *yaml3.Node, path, msg string) {
	ds.errorAt(n.Line, path, msg)
	ds.bad = append(ds.bad, path)
	*n = yaml3.Node{Kind: yaml3.ScalarNode, Tag: "!!null", Value: "null", Anchor: n.Anchor, Line: n.Line, Column: n.Column}
}

// reported reports whether a problem about field was already reported by
// the schema check.
func (ds *docState) reported(field string) bool {
	for _, p := range ds.bad {
		if field == p || strings.HasPrefix(field, p+".") || strings.HasPrefix(field, p+"[") {
			return true
		}
	}
	return false
}

// checkPlainString rejects an unquoted scalar for a string field when the
// YAML 1.1 decoder underneath sigs.k8s.io/yaml would change its text (0755 is
// read as 493, 1.10 as 1.1, yes as true): the manifest would not mean what
// it says.
func (ds *docState) checkPlainString(n *yaml3.Node, path string) {
	if n.Style != 0 || n.Value == "" {
		return // quoted, block, explicitly tagged, or empty
	}
	if !strings.ContainsAny(n.Value[:1], "0123456789+-.") && !yaml11Words[strings.ToLower(n.Value)] {
		return // cannot be a YAML 1.1 number, boolean or timestamp: skip the parse
	}
	var v any
	if yaml2.Unmarshal([]byte(n.Value), &v) != nil {
		return
	}
	var s string
	switch x := v.(type) {
	case bool:
		s = strconv.FormatBool(x)
	case int:
		s = strconv.Itoa(x)
	case int64:
		s = strconv.FormatInt(x, 10)
	case uint64:
		s = strconv.FormatUint(x, 10)
	case float64:
		s = strconv.FormatFloat(x, 'g', -1, 32)
	case time.Time:
		s = x.Format(time.RFC3339Nano)
	default:
		return
	}
	if s != n.Value {
		ds.errorAt(n.Line, path, fmt.Sprintf("unquoted %s would be read as %s; quote it to keep it as written", n.Value, s))
	}
}

// yaml11Words are the plain scalars that YAML 1.1 reads as booleans or
// null although they start with a letter.
var yaml11Words = map[string]bool{
	"y": true, "yes": true, "n": true, "no": true, "true": true, "false": true,
	"on": true, "off": true, "null": true,
}

type pair struct {
	name     string
	key, val *yaml3.Node
}

// pairs returns the entries of mapping n with merge keys ("<<") resolved.
// Duplicate keys, merged or not, and non-scalar keys are errors.
func (ds *docState) pairs(n *yaml3.Node, path string, depth int) []pair {
	var out, merged []pair
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := ds.deref(n.Content[i]), n.Content[i+1]
		if k == nil {
			return out
		}
		if k.Kind != yaml3.ScalarNode {
			ds.errorAt(k.Line, path, "keys must be strings, got "+nodeWord(k))
			continue
		}
		if k.ShortTag() == "!!merge" {
			merged = append(merged, ds.mergePairs(v, path, depth+1)...)
			continue
		}
		out = append(out, pair{name: k.Value, key: k, val: v})
	}
	// Merged keys come first, as if written before the explicit ones.
	// A key set twice is an error even when one of them is merged: the
	// strict decoder underneath refuses overrides, and so do we.
	all := append(merged, out...)
	out = all[:0]
	for _, p := range all {
		if line, dup := seen[p.name]; dup {
			ds.errorAt(p.key.Line, joinPath(path, p.name), fmt.Sprintf("duplicate key, first at line %d", ds.fileLine(line)))
			continue
		}
		seen[p.name] = p.key.Line
		out = append(out, p)
	}
	return out
}

func (ds *docState) mergePairs(v *yaml3.Node, path string, depth int) []pair {
	v = ds.deref(v)
	if v == nil {
		return nil
	}
	if depth > maxDepth {
		ds.errorAt(v.Line, path, "nested too deeply")
		return nil
	}
	switch v.Kind {
	case yaml3.MappingNode:
		return ds.pairs(v, path, depth)
	case yaml3.SequenceNode:
		var out []pair
		for _, item := range v.Content {
			if item = ds.deref(item); item == nil {
				return out
			}
			if item.Kind != yaml3.MappingNode {
				ds.errorAt(item.Line, path, "merge (<<) needs a mapping or a list of mappings, got "+nodeWord(item))
				continue
			}
			out = append(out, ds.pairs(item, path, depth)...)
		}
		return out
	}
	ds.errorAt(v.Line, path, "merge (<<) needs a mapping or a list of mappings, got "+nodeWord(v))
	return nil
}

// jsonFields maps the json names of struct type t to their types. The
// maps are computed once per type and must not be changed.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	if m, ok := fieldsCache.Load(t); ok {
		return m.(map[string]reflect.Type)
	}
	m := map[string]reflect.Type{}
	for _, f := range structFields(t) {
		m[f.name] = f.typ
	}
	fieldsCache.Store(t, m)
	return m
}

var fieldsCache sync.Map // reflect.Type -> map[string]reflect.Type

// jsonField is one field of a struct as JSON sees it.
type jsonField struct {
	name      string
	typ       reflect.Type
	omitEmpty bool
}

// structFields lists the JSON fields of struct type t in declaration order.
func structFields(t reflect.Type) []jsonField {
	var out []jsonField
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = f.Name
		}
		out = append(out, jsonField{name: name, typ: f.Type, omitEmpty: slices.Contains(strings.Split(opts, ","), "omitempty")})
	}
	return out
}

// schemaFields returns every field path of the manifest ("spec.mounts[].target")
// with its fieldDocs key, in schema order. Tests use it to check that the
// the docs (docs/manifest.md) cover every field.
func schemaFields() [][2]string {
	var out [][2]string
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			if t.Kind() == reflect.Slice {
				prefix += "[]"
			}
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || t == durationType || t == quantityType || seen[t] {
			return
		}
		seen[t] = true
		for _, f := range structFields(t) {
			p := joinPath(prefix, f.name)
			out = append(out, [2]string{p, t.Name() + "." + f.name})
			walk(f.typ, p)
		}
	}
	walk(taskType, "")
	return out
}

func unknownFieldMsg(name string, fields map[string]reflect.Type) string {
	for f := range fields {
		if strings.EqualFold(f, name) {
			return fmt.Sprintf("unknown field %q, did you mean %q?", name, f)
		}
	}
	return fmt.Sprintf("unknown field %q", name)
}

// typeWord says in a user's words what a value of type t is written as.
func typeWord(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == durationType:
		return `a duration such as "30s" or "1m30s"`
	case t == quantityType:
		return `a quantity such as "500m", "0.5", "256Mi" or "1G"`
	case reflect.PointerTo(t).Implements(unmarshalerType):
		return "a single value"
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "a mapping"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	}
	return "a " + t.Kind().String()
}

// nodeWord says in a user's words what node n is.
func nodeWord(n *yaml3.Node) string {
	if n == nil {
		return "nothing"
	}
	switch n.Kind {
	case yaml3.MappingNode:
		return "a mapping"
	case yaml3.SequenceNode:
		return "a list"
	case yaml3.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!bool":
			return "a boolean (" + n.Value + ")"
		case "!!int", "!!float":
			return "a number (" + n.Value + ")"
		}
		return strconv.Quote(n.Value)
	}
	return "an alias"
}
