//go:build embeddriver

package main

import _ "embed" // the standalone log driver

// embeddedDriver is the standalone log driver
// (pkg/runtime/logdriver/standalone), which `make build` compiles and adds
// with -overlay (so that the source tree never holds a binary).
//
//go:embed embedded/log-driver
var embeddedDriver string
