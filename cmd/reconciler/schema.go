package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/warren/reconciler/pkg/desired"
)

// schemaCommand prints the JSON Schema of a Task manifest, for editors
// (the yaml-language-server modeline in docs/manifest.md) and for
// manifests/task.schema.json.
func (a *cli) schemaCommand() *cobra.Command {
	return a.command("schema", "print the JSON Schema of a manifest",
		"Prints the JSON Schema (draft 2020-12) of a Task manifest; manifests/task.schema.json is a copy.",
		noArgs, func(*cobra.Command, []string) int {
			if _, err := a.stdout.Write(desired.JSONSchema()); err != nil {
				fmt.Fprintln(a.stderr, "reconciler schema:", err)
				return exitFailure
			}
			return exitOK
		})
}
