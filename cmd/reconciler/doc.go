// Command reconciler keeps the containers on a node equal to the YAML
// manifests in a directory. See docs/manifest.md for the manifest format and
// docs/cli.md for the subcommands.
//
// This package is flags, wiring, subcommands and the local API; the logic
// lives in pkg/. It must never talk to containerd other than through
// pkg/runtime, and no command but run may change anything on the node
// (plan, validate, status, wait and logs only read).
package main
