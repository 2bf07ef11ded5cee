package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// newFlagSet returns the flag set of command name. Its usage and messages
// go to stdout when args ask for help (-h, -help or --help before "--"):
// asked-for help is output, exit 0; anything else goes to stderr.
func newFlagSet(name string, args []string, stdout, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	if wantsHelp(args) {
		fs.SetOutput(stdout)
	}
	return fs
}

func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help", "-h=true", "--h", "--h=true", "-help=true", "--help=true":
			return true
		}
	}
	return false
}

// parseFailed is the exit code of a failed parse: 0 when help was asked
// for (the usage was printed), else code.
func parseFailed(err error, code int) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return code
}

func cmdVersion(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("version", args, stdout, stderr)
	fs.Usage = func() { fmt.Fprintln(fs.Output(), "Usage: reconciler version\n\nPrints the version.") }
	if err := fs.Parse(args); err != nil {
		return parseFailed(err, exitUsage)
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return exitUsage
	}
	fmt.Fprintln(stdout, "reconciler", version)
	return exitOK
}
