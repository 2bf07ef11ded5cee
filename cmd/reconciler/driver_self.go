//go:build !embeddriver

package main

// embeddedDriver is empty in a build without the standalone log driver
// (a plain `go build`): the daemon has the shims run its own binary as the
// log driver.
var embeddedDriver string
