package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/warren/reconciler/pkg/desired"
)

const validateUsage = `Checks manifest files and directories without containerd: every error of
every file, with file, line and field. A directory is read as the daemon
reads it (*.yaml and *.yml directly in it; task names unique across its
files). Warnings (what a valid file asks for that has no effect here, such
as a Kubernetes Pod's resources.requests) are printed too and change no
exit code. Exits 0 when all is valid, 1 on any error, 2 on bad arguments.

  -o text   one "file:line: field: message" line per error, and per warning
            ("file:line: warning: field: message"), on stderr (default)
  -o json   {"errors": [{file, line, doc, field, message}], "warnings": [...], "summary": {...}} on stdout
`

// validateReport is the output of `validate -o json`.
type validateReport struct {
	Errors   []validateError `json:"errors"`
	Warnings []validateError `json:"warnings"` // of the valid files
	Summary  validateSummary `json:"summary"`
}

// validateError is one problem. Line is 0 and Field "" when unknown; Doc is
// the 0-based index of the document in the file.
type validateError struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Doc     int    `json:"doc"`
	Field   string `json:"field"`
	Message string `json:"message"`
}

type validateSummary struct {
	Files    int  `json:"files"`   // manifest files read
	Invalid  int  `json:"invalid"` // files with at least one error
	Tasks    int  `json:"tasks"`   // tasks in the valid files
	Errors   int  `json:"errors"`
	Warnings int  `json:"warnings"`
	Valid    bool `json:"valid"`
}

func (a *cli) validateCommand() *cobra.Command {
	var output string
	cmd := a.command("validate PATH... [-o text|json]", "check manifest files or directories; exit 1 on errors", validateUsage,
		someArgs("PATH"), func(cmd *cobra.Command, paths []string) int { return a.validate(cmd, paths, output) })
	cmd.ValidArgsFunction = nil // files and directories
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	completeWords(cmd, "output", "text", "json")
	return cmd
}

// validate is `validate PATH...` once its flags are parsed.
func (a *cli) validate(cmd *cobra.Command, paths []string, output string) int {
	stdout, stderr := a.stdout, a.stderr
	if err := oneOf("-o", output, "text", "json"); err != nil {
		return a.usageError(cmd, err)
	}

	var r validateReport
	for _, p := range paths {
		r.check(p)
	}
	r.Summary.Errors = len(r.Errors)
	r.Summary.Warnings = len(r.Warnings)
	r.Summary.Valid = len(r.Errors) == 0

	if output == "json" {
		if r.Errors == nil {
			r.Errors = []validateError{}
		}
		if r.Warnings == nil {
			r.Warnings = []validateError{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			fmt.Fprintln(stderr, "reconciler validate:", err)
			return exitFailure
		}
	} else {
		for _, e := range r.Errors {
			fmt.Fprintln(stderr, (&desired.Error{File: e.File, Line: e.Line, Doc: e.Doc, Field: e.Field, Msg: e.Message}).Error())
		}
		for _, w := range r.Warnings {
			// "file:line: warning: field: message"
			fmt.Fprintln(stderr, (&desired.Error{File: w.File, Line: w.Line, Doc: w.Doc, Field: "warning: " + w.Field, Msg: w.Message}).Error())
		}
		if r.Summary.Valid {
			fmt.Fprintf(stdout, "ok: %d task(s) in %d file(s)\n", r.Summary.Tasks, r.Summary.Files)
		} else {
			fmt.Fprintf(stderr, "invalid: %d error(s) in %d of %d file(s)\n", r.Summary.Errors, r.Summary.Invalid, r.Summary.Files)
		}
	}
	if !r.Summary.Valid {
		return exitFailure
	}
	return exitOK
}

// check validates one PATH argument: a directory as the daemon loads it, or
// one file.
func (r *validateReport) check(p string) {
	fi, err := os.Stat(p)
	if err != nil {
		r.fail(p, err)
		return
	}
	if !fi.IsDir() {
		r.Summary.Files++
		data, err := readManifest(p)
		if err != nil {
			r.fail(p, err)
			return
		}
		tasks, warns, err := desired.ParseWithWarnings(p, data)
		if err != nil {
			r.fail(p, err)
			return
		}
		r.Summary.Tasks += len(tasks)
		r.warn(p, warns)
		return
	}
	// Content only: who may write the files is the daemon's check (a
	// checkout being linted in CI is often group-writable).
	s := desired.NewLoader(p, desired.InsecureDir()).Load()
	if s.Err != nil {
		r.fail(p, s.Err)
		return
	}
	r.Summary.Files += len(s.Files)
	for _, name := range s.Files {
		if err := s.Broken[name]; err != nil {
			r.fail(filepath.Join(p, name), err)
		}
		r.warn(filepath.Join(p, name), s.Warnings[name])
	}
	// A fresh Loader keeps nothing from before: its tasks are those of the
	// valid files.
	r.Summary.Tasks += len(s.Tasks)
}

// fail records the errors of one file (or PATH): each *desired.Error with
// its position, anything else as a message.
func (r *validateReport) fail(file string, err error) {
	r.Summary.Invalid++
	es := desired.Errors(err)
	if len(es) == 0 {
		msg := err.Error()
		if pe, ok := errors.AsType[*fs.PathError](err); ok && pe.Path == file {
			msg = pe.Err.Error() // the file is named already
		}
		r.Errors = append(r.Errors, validateError{File: file, Message: msg})
		return
	}
	for _, e := range es {
		r.Errors = append(r.Errors, validateError{File: file, Line: e.Line, Doc: e.Doc, Field: e.Field, Message: e.Msg})
	}
}

// warn records the warnings of one valid file.
func (r *validateReport) warn(file string, warns []desired.Warning) {
	for _, w := range warns {
		r.Warnings = append(r.Warnings, validateError{File: file, Line: w.Line, Doc: w.Doc, Field: w.Field, Message: w.Msg})
	}
}

// readManifest reads a file named on the command line, refusing what the
// daemon would refuse to read.
func readManifest(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	return io.ReadAll(io.LimitReader(f, desired.MaxFileSize+1)) // Parse reports a larger file
}
