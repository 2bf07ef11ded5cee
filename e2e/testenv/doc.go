// Package testenv is what the end-to-end tests, the chaos suite and the
// benchmark share to run the reconciler: the check of what the machine
// needs, the reconciler built the way it ships (`make build`, the
// standalone log driver embedded), the test image, and a private
// containerd in a short temporary directory.
//
// It must never build the binary any other way than `make build` does: the
// tests would then check a binary that nobody installs.
package testenv
