package main

import (
	"fmt"
	"io"

	"github.com/warren/reconciler/pkg/desired"
)

// cmdSchema prints the JSON Schema of a Task manifest, for editors (the
// yaml-language-server modeline in docs/manifest.md) and for
// manifests/task.schema.json.
func cmdSchema(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("schema", args, stdout, stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: reconciler schema\n\nPrints the JSON Schema (draft 2020-12) of a Task manifest; manifests/task.schema.json is a copy.")
	}
	if err := fs.Parse(args); err != nil {
		return parseFailed(err, exitUsage)
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return exitUsage
	}
	if _, err := stdout.Write(desired.JSONSchema()); err != nil {
		fmt.Fprintln(stderr, "reconciler schema:", err)
		return exitFailure
	}
	return exitOK
}
