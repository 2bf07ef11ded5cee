package main

import (
	"encoding/json"
	"fmt"
	goruntime "runtime"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// versionInfo is `version -o json|yaml`.
type versionInfo struct {
	Version   string `json:"version"`   // what `make build` stamped (git describe), or dev
	GoVersion string `json:"goVersion"` // the Go release it was built with
	Platform  string `json:"platform"`  // GOOS/GOARCH
}

func (a *cli) versionCommand() *cobra.Command {
	var output string
	cmd := a.command("version [-o text|json|yaml]", "print the version",
		"Prints the version: what `make build` stamped (git describe), or dev.\n"+
			"-o json and -o yaml add the Go release and the platform.",
		noArgs, func(cmd *cobra.Command, _ []string) int {
			if err := oneOf("-o", output, "text", "json", "yaml"); err != nil {
				return a.usageError(cmd, err)
			}
			info := versionInfo{Version: version, GoVersion: goruntime.Version(), Platform: goruntime.GOOS + "/" + goruntime.GOARCH}
			switch output {
			case "json":
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				_ = enc.Encode(info)
			case "yaml":
				b, _ := yaml.Marshal(info)
				_, _ = a.stdout.Write(b)
			default:
				fmt.Fprintln(a.stdout, "reconciler", version)
			}
			return exitOK
		})
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text, json or yaml")
	completeWords(cmd, "output", "text", "json", "yaml")
	return cmd
}
