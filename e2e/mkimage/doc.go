// Command mkimage builds the test program into an image archive that the
// reconciler imports from its images directory (used by `make run` and `make image`).
// It must never reach the network: the image is built from local sources.
package main
