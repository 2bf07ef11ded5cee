package main

import (
	"bytes"
	"os"
	"path/filepath"
	goruntime "runtime"
	"runtime/debug"
	"strings"
	"testing"
)

const good = "apiVersion: warren/v1\nkind: Task\nmetadata: {name: web}\nspec: {image: nginx}\n"

func TestCommands(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "web.yaml"), []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	badDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(badDir, "bad.yaml"), []byte("apiVersion: warren/v1\nkind: Task\nmetadata: {name: Bad}\nspec: {image: nginx}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	type cmdCase struct {
		name   string
		args   []string
		code   int
		stdout string // substring expected on stdout
		stderr string // substring expected on stderr
	}
	tests := []cmdCase{
		{name: "no command", args: nil, code: exitUsage, stderr: "Usage:"},
		{name: "unknown command", args: []string{"frobnicate"}, code: exitUsage, stderr: `unknown command "frobnicate"`},
		{name: "help", args: []string{"help"}, code: exitOK, stdout: "reconciler validate PATH"},
		{name: "version", args: []string{"version"}, code: exitOK, stdout: "reconciler dev"},
		{name: "validate dir", args: []string{"validate", dir}, code: exitOK, stdout: "ok: 1 task(s)"},
		{name: "validate file", args: []string{"validate", filepath.Join(dir, "web.yaml")}, code: exitOK, stdout: "ok: 1 task(s)"},
		{name: "validate bad dir", args: []string{"validate", badDir}, code: exitFailure, stderr: "bad.yaml:3: metadata.name: must be a DNS-1123 label"},
		{name: "validate bad file", args: []string{"validate", filepath.Join(badDir, "bad.yaml")}, code: exitFailure, stderr: "bad.yaml:3: metadata.name"},
		{name: "validate missing", args: []string{"validate", filepath.Join(dir, "nope")}, code: exitFailure, stderr: "no such file or directory"},
		{name: "validate no args", args: []string{"validate"}, code: exitUsage, stderr: "Usage: reconciler validate"},
		{name: "run bad managed", args: []string{"run", "--containerd", "sometimes"}, code: exitUsage, stderr: "--containerd must be auto, external or managed"},
		{name: "run bad log format", args: []string{"run", "--log-format", "xml"}, code: exitUsage, stderr: "--log-format must be text or json"},
		{name: "run unknown flag", args: []string{"run", "--frob"}, code: exitUsage, stderr: "unknown flag: --frob"},
		{name: "plan bad managed", args: []string{"plan", "--containerd", "x"}, code: exitFailure, stderr: "--containerd must be"},
		{name: "plan bad output", args: []string{"plan", "-o", "xml"}, code: exitFailure, stderr: "-o must be text or json"},
		{
			name: "plan json",
			args: []string{"plan", "-o", "json", "--manifests", dir, "--address", filepath.Join(dir, "none.sock"), "--containerd", "external"},
			code: exitPending, stdout: `"op": "create"`,
		},
		{
			name: "plan without containerd",
			args: []string{"plan", "--manifests", dir, "--address", filepath.Join(dir, "none.sock"), "--containerd", "external"},
			code: exitPending, stdout: "create  web", stderr: "planning against an empty node",
		},
		{
			name: "plan with a broken file warns",
			args: []string{"plan", "--manifests", badDir, "--address", filepath.Join(dir, "none.sock"), "--containerd", "external"},
			code: exitOK, stdout: "nothing to do", stderr: "warning: bad.yaml:3",
		},
		{
			name: "plan with a missing directory deletes nothing",
			args: []string{"plan", "--manifests", filepath.Join(dir, "gone"), "--address", filepath.Join(dir, "none.sock"), "--containerd", "external"},
			code: exitOK, stdout: "nothing to do", stderr: "(nothing would be deleted)",
		},
	}
	// Every command: -h prints its usage on stdout and exits 0; a wrong
	// flag exits 2 (1 for plan, whose 2 means "changes pending").
	usages := map[string]string{
		"run": "Usage: reconciler run", "validate": "Usage: reconciler validate", "schema": "Usage: reconciler schema",
		"plan": "Usage: reconciler plan", "status": "Usage: reconciler status", "wait": "Usage: reconciler wait",
		"logs": "Usage: reconciler logs", "version": "Usage: reconciler version",
	}
	for cmd, usage := range usages {
		for _, h := range []string{"-h", "--help"} {
			tests = append(tests, cmdCase{name: cmd + " " + h, args: []string{cmd, h}, code: exitOK, stdout: usage})
		}
		bad := exitUsage
		if cmd == "plan" {
			bad = exitFailure
		}
		tests = append(tests, cmdCase{name: cmd + " wrong flag", args: []string{cmd, "--frobnicate"}, code: bad, stderr: "unknown flag: --frobnicate"})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := runMain(tc.args, &out, &errb)
			if code != tc.code {
				t.Errorf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out.String(), errb.String())
			}
			if !strings.Contains(out.String(), tc.stdout) {
				t.Errorf("stdout %q lacks %q", out.String(), tc.stdout)
			}
			if !strings.Contains(errb.String(), tc.stderr) {
				t.Errorf("stderr %q lacks %q", errb.String(), tc.stderr)
			}
		})
	}
}

func TestSetMaxProcs(t *testing.T) {
	orig := goruntime.GOMAXPROCS(0)
	defer goruntime.GOMAXPROCS(orig)
	for _, tc := range []struct {
		env  string
		want int
	}{
		{"", DefaultMaxProcs},
		{"3", 3}, // the operator's GOMAXPROCS (applied by the Go runtime at start) stands
	} {
		goruntime.GOMAXPROCS(3)
		setMaxProcs(func(k string) string { return map[string]string{"GOMAXPROCS": tc.env}[k] })
		if got := goruntime.GOMAXPROCS(0); got != tc.want {
			t.Errorf("GOMAXPROCS=%q: %d processors, want %d", tc.env, got, tc.want)
		}
	}
}

func TestSetGCPercent(t *testing.T) {
	orig := debug.SetGCPercent(100)
	defer debug.SetGCPercent(orig)
	for _, tc := range []struct {
		gogc string
		want int
	}{
		{"", DefaultGCPercent},
		{"200", 100}, // the operator's GOGC (applied by the Go runtime at start) stands
		{"off", 100},
	} {
		debug.SetGCPercent(100)
		setGCPercent(func(k string) string { return map[string]string{"GOGC": tc.gogc}[k] })
		if got := debug.SetGCPercent(100); got != tc.want {
			t.Errorf("GOGC=%q: GC percent %d, want %d", tc.gogc, got, tc.want)
		}
	}
}
