package desired

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Error is one problem in one manifest file. A file's problems are returned
// together as an [errors.Join] of *Error values; use [errors.As] or
// [Errors] to get at them.
type Error struct {
	File  string // base name
	Line  int    // 1-based line in the file; 0 if unknown
	Doc   int    // 0-based index of the document in the file, empty documents not counted
	Field string // field path, e.g. "spec.env[1].name"; "" when about the whole document or file
	Msg   string
}

// Error formats as `web.yaml:14: spec.env[1].name: must be ...`, leaving out
// ":line" when the line is unknown and "field: " when there is no field.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Doc > 0 {
		// Documents after the first are named too: in a file of many,
		// the task a line belongs to is not always obvious.
		fmt.Fprintf(&b, "document %d: ", e.Doc+1)
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors returns every *Error inside err (which may be a join of them, or
// wrap them), in order. It returns nil when err holds none.
func Errors(err error) []*Error {
	var out []*Error
	var walk func(error)
	walk = func(err error) {
		switch x := err.(type) {
		case nil:
		case *Error:
			out = append(out, x)
		case interface{ Unwrap() []error }:
			for _, e := range x.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			walk(x.Unwrap())
		}
	}
	walk(err)
	return out
}

// joinErrors sorts errs by position and joins them; nil when empty.
func joinErrors(errs []*Error) error {
	if len(errs) == 0 {
		return nil
	}
	slices.SortStableFunc(errs, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.Doc, b.Doc), cmp.Compare(a.Line, b.Line))
	})
	es := make([]error, len(errs))
	for i, e := range errs {
		es[i] = e
	}
	return errors.Join(es...)
}
