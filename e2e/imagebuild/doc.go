// Package imagebuild packs the static test program into an image archive that
// containerd can import, so that examples and e2e tests need no registry.
//
// It builds with the Go toolchain on PATH and writes a Docker-format image
// tarball (manifest.json with the reference as repo tag), which containerd's
// importer reads. It must never reach the network.
package imagebuild
