package main

import (
	"bytes"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// flagDoc is a flag as README.md, docs/cli.md and docs/daemon.md document
// it: its name, a value it takes ("" for a boolean) and its default as
// pflag prints it.
type flagDoc struct{ name, value, def string }

// commonFlags are the flags run and plan share (docs/daemon.md).
var commonFlags = []flagDoc{
	{"manifests", "/srv/m", "/etc/reconciler/manifests"},
	{"images", "/srv/i", ""},
	{"address", "/run/c.sock", "/run/containerd/containerd.sock"},
	{"containerd", "external", "auto"},
	{"namespace", "ns", "warren"},
	{"state-dir", "/srv/s", "/var/lib/reconciler"},
	{"containerd-bin", "/usr/bin/containerd", "containerd"},
	{"runc-root", "/run/r", ""},
	{"log-format", "json", "text"},
	{"insecure-manifests-dir", "", "false"},
	{"v", "1", "0"},
	{"allow-privileged", "", "false"},
	{"allow-capabilities", "NET_ADMIN,SYS_TIME", ""},
	{"allowed-bind-sources", "/srv", ""},
	{"allowed-secret-sources", "/etc/s", ""},
	{"allow-compat-syscalls", "", "false"},
	{"allowed-host-ports", "8080-8090", "80,443,1024-65535"},
	{"bridge", "br1", "reconciler0"},
	{"bridge-subnet", "10.48.0.0/22", "10.47.0.0/22"},
	{"cni-plugin-dirs", "/opt/cni/bin", ""},
	{"network-run-dir", "/run/n", ""},
	{"age-identity", "/etc/k", ""},
	{"registry-config", "/etc/c.json", ""},
	{"log-max-size", "512Ki", "10Mi"},
	{"log-max-files", "3", "5"},
}

// clientFlagDocs are those of the commands that ask the daemon.
var clientFlagDocs = []flagDoc{
	{"state-dir", "/srv/s", "/var/lib/reconciler"},
	{"api", "127.0.0.1:9090", ""},
	{"api-token-file", "/etc/t", ""},
}

// documented is every command of docs/cli.md with its flags and the exit
// code of a wrong use.
var documented = []struct {
	cmd   []string
	usage int // the exit code of bad flags or arguments
	flags []flagDoc
	bad   [][]string // wrong arguments
}{
	{cmd: []string{"run"}, usage: exitUsage, bad: [][]string{{"extra"}}, flags: append(slices.Clone(commonFlags),
		flagDoc{"git", "https://example.com/r.git", ""}, flagDoc{"git-ref", "main", ""}, flagDoc{"git-path", "common", ""},
		flagDoc{"git-interval", "1m", "30s"}, flagDoc{"git-timeout", "1m", "2m0s"}, flagDoc{"git-max-size", "10Mi", "100Mi"},
		flagDoc{"git-credentials", "/etc/c", ""}, flagDoc{"git-ssh-key", "/etc/k", ""}, flagDoc{"git-known-hosts", "/etc/kh", ""},
		flagDoc{"git-accept-new-host-key", "", "false"}, flagDoc{"git-verify", "/etc/as", ""},
		flagDoc{"workers", "8", "4"}, flagDoc{"resync", "1m", "30s"}, flagDoc{"debounce", "50ms", "20ms"},
		flagDoc{"listen", "127.0.0.1:9090", ""}, flagDoc{"api-token-file", "/etc/t", ""},
		flagDoc{"status-dir", "/run/st", ""}, flagDoc{"repull-interval", "1h", "0s"})},
	{cmd: []string{"plan"}, usage: exitFailure, bad: [][]string{{"extra"}},
		flags: append(slices.Clone(commonFlags), flagDoc{"output", "json", "text"})},
	{cmd: []string{"validate"}, usage: exitUsage, bad: [][]string{{}}, flags: []flagDoc{{"output", "json", "text"}}},
	{cmd: []string{"schema"}, usage: exitUsage, bad: [][]string{{"extra"}}},
	{cmd: []string{"convert"}, usage: exitUsage, bad: [][]string{{}, {"a", "b"}},
		flags: []flagDoc{{"output", "json", "yaml"}, {"kind", "Deployment", "Pod"}}},
	{cmd: []string{"status"}, usage: exitUsage, bad: [][]string{{"a", "b"}},
		flags: append(slices.Clone(clientFlagDocs), flagDoc{"output", "wide", "table"}, flagDoc{"watch", "", "false"})},
	{cmd: []string{"wait"}, usage: exitUsage, bad: [][]string{{}},
		flags: append(slices.Clone(clientFlagDocs), flagDoc{"for", "healthy", "running"}, flagDoc{"timeout", "10s", "1m0s"})},
	{cmd: []string{"sync"}, usage: exitUsage, bad: [][]string{{"extra"}},
		flags: append(slices.Clone(clientFlagDocs), flagDoc{"timeout", "1m", "3m0s"})},
	{cmd: []string{"logs"}, usage: exitUsage, bad: [][]string{{}, {"a", "b"}},
		flags: append(slices.Clone(clientFlagDocs), flagDoc{"container", "front", ""}, flagDoc{"follow", "", "false"}, flagDoc{"tail", "10", "-1"})},
	{cmd: []string{"version"}, usage: exitUsage, bad: [][]string{{"extra"}}, flags: []flagDoc{{"output", "json", "text"}}},
	{cmd: []string{"completion"}, usage: exitUsage, bad: [][]string{{}, {"tcsh"}}},
	{cmd: []string{"completion", "bash"}, usage: exitUsage, flags: []flagDoc{{"no-descriptions", "", "false"}}},
	{cmd: []string{"completion", "zsh"}, usage: exitUsage, flags: []flagDoc{{"no-descriptions", "", "false"}}},
	{cmd: []string{"completion", "fish"}, usage: exitUsage, flags: []flagDoc{{"no-descriptions", "", "false"}}},
}

// TestDocumentedCommands runs every documented command with -h (exit 0,
// its usage on stdout), a flag it does not know and wrong arguments (exit
// 2, 1 for plan), and each documented flag with a value (accepted: -h
// after it exits 0), in the spelling of the docs and in Go's single-dash
// one; and checks each flag's default.
func TestDocumentedCommands(t *testing.T) {
	t.Setenv(tokenFileEnv, "")
	root := (&cli{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}).newRoot()
	for _, tc := range documented {
		name := strings.Join(tc.cmd, " ")
		cmdArgs := func(args ...string) []string { return append(slices.Clone(tc.cmd), args...) }
		t.Run(name, func(t *testing.T) {
			run := func(t *testing.T, args []string, code int) (string, string) {
				t.Helper()
				var out, errb bytes.Buffer
				if got := runMain(args, &out, &errb); got != code {
					t.Errorf("%q: exit %d, want %d\nstdout: %s\nstderr: %s", args, got, code, out.String(), errb.String())
				}
				return out.String(), errb.String()
			}
			for _, h := range []string{"-h", "--help", "-help"} {
				out, errb := run(t, cmdArgs(h), exitOK)
				if !strings.HasPrefix(out, "Usage: reconciler "+name) || errb != "" {
					t.Errorf("%s %s: stdout %q, stderr %q", name, h, out, errb)
				}
			}
			if _, errb := run(t, cmdArgs("--frobnicate"), tc.usage); !strings.Contains(errb, "unknown flag: --frobnicate") || !strings.Contains(errb, "Usage: reconciler "+name) {
				t.Errorf("%s --frobnicate: stderr %q", name, errb)
			}
			for _, args := range tc.bad {
				if _, errb := run(t, cmdArgs(args...), tc.usage); !strings.Contains(errb, "Usage: reconciler "+name) {
					t.Errorf("%s %q: stderr %q", name, args, errb)
				}
			}
			cmd, _, err := root.Find(tc.cmd)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range tc.flags {
				flag := cmd.Flags().Lookup(f.name)
				if flag == nil {
					t.Errorf("%s: no flag --%s", name, f.name)
					continue
				}
				if flag.DefValue != f.def {
					t.Errorf("%s --%s: default %q, want %q", name, f.name, flag.DefValue, f.def)
				}
				spellings := []string{"--" + f.name}
				if len(f.name) > 1 {
					spellings = append(spellings, "-"+f.name) // Go's flag package took it so
				}
				if flag.Shorthand != "" {
					spellings = append(spellings, "-"+flag.Shorthand)
				}
				for _, s := range spellings {
					args := cmdArgs(s)
					if f.value != "" {
						args = append(args, f.value)
					}
					run(t, append(args, "-h"), exitOK)
				}
			}
		})
	}
}

// TestGoStyleFlags: the single-dash long flags Go's flag package took
// become pflag's, and nothing else changes.
func TestGoStyleFlags(t *testing.T) {
	root := (&cli{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}).newRoot()
	logs, _, err := root.Find([]string{"logs"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ in, want []string }{
		{[]string{"logs", "-state-dir", "/x", "web"}, []string{"logs", "--state-dir", "/x", "web"}},
		{[]string{"logs", "web", "-tail=5", "-follow"}, []string{"logs", "web", "--tail=5", "--follow"}},
		{[]string{"logs", "-help"}, []string{"logs", "--help"}},
		{[]string{"logs", "-o", "json", "-ojson", "-f", "-c", "x"}, []string{"logs", "-o", "json", "-ojson", "-f", "-c", "x"}},
		{[]string{"logs", "--state-dir", "-tail", "-c", "-tail"}, []string{"logs", "--state-dir", "-tail", "-c", "-tail"}}, // values
		{[]string{"logs", "web", "--", "-tail"}, []string{"logs", "web", "--", "-tail"}},
		{[]string{"logs", "-nope", "--tail", "1"}, []string{"logs", "-nope", "--tail", "1"}},
	} {
		if got := goStyleFlags(logs, tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("goStyleFlags(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// --o, --c and --f, as Go's flag package took them.
	var out, errb bytes.Buffer
	if code := runMain([]string{"version", "--o", "json"}, &out, &errb); code != exitOK || !strings.Contains(out.String(), `"version": "dev"`) {
		t.Errorf("version --o json: %d, %q, %q", code, out.String(), errb.String())
	}
}

// TestCompletion: each shell's script, and what the scripts ask the
// binary for (`reconciler __complete ...`): the documented commands, not
// the hidden ones; the values of -o.
func TestCompletion(t *testing.T) {
	for shell, want := range map[string]string{"bash": "complete -o default -F __start_reconciler reconciler", "zsh": "#compdef reconciler", "fish": "complete -c reconciler"} {
		var out, errb bytes.Buffer
		if code := runMain([]string{"completion", shell}, &out, &errb); code != exitOK || !strings.Contains(out.String(), want) || !strings.Contains(out.String(), "__complete") {
			t.Errorf("completion %s: exit %d, %d bytes without %q; stderr %q", shell, code, out.Len(), want, errb.String())
		}
	}
	complete := func(args ...string) []string {
		var out, errb bytes.Buffer
		if code := runMain(append([]string{"__complete"}, args...), &out, &errb); code != exitOK {
			t.Fatalf("__complete %q: exit %d, %s", args, code, errb.String())
		}
		var words []string
		for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			if w, _, _ := strings.Cut(l, "\t"); !strings.HasPrefix(w, ":") {
				words = append(words, w)
			}
		}
		return words
	}
	cmds := complete("")
	for _, c := range []string{"run", "validate", "schema", "convert", "plan", "status", "wait", "sync", "logs", "version", "completion"} {
		if !slices.Contains(cmds, c) {
			t.Errorf("the completion of the commands %q lacks %s", cmds, c)
		}
	}
	for _, hidden := range []string{"log-driver", "git-fetch", "__complete"} {
		if slices.Contains(cmds, hidden) {
			t.Errorf("the completion of the commands names the hidden %s", hidden)
		}
	}
	if got := complete("status", "-o", ""); !reflect.DeepEqual(got, []string{"table", "wide", "json", "yaml"}) {
		t.Errorf("status -o completes %q", got)
	}
	if got := complete("completion", ""); !slices.Contains(got, "bash") || !slices.Contains(got, "zsh") || !slices.Contains(got, "fish") {
		t.Errorf("completion completes %q", got)
	}
	// The daemon's tasks and pods, for the commands that take them.
	addr := startDaemon(t, podFixture())
	if got := complete("logs", "--api", addr, "pa"); !reflect.DeepEqual(got, []string{"pair", "pair-back", "pair-front", "pair-setup"}) {
		t.Errorf("logs pa<TAB> completes %q", got)
	}
}

// TestVersion: the text of `version` and `--version`, as before; -o json
// and yaml.
func TestVersion(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"version"}, "reconciler dev\n"},
		{[]string{"--version"}, "reconciler dev\n"},
		{[]string{"version", "-o", "json"}, `"version": "dev",`},
		{[]string{"version", "-o", "yaml"}, "version: dev\n"},
	} {
		var out, errb bytes.Buffer
		if code := runMain(tc.args, &out, &errb); code != exitOK || !strings.Contains(out.String(), tc.want) {
			t.Errorf("%q: exit %d, %q; want %q", tc.args, code, out.String(), tc.want)
		}
	}
	var out, errb bytes.Buffer
	if code := runMain([]string{"version", "-o", "xml"}, &out, &errb); code != exitUsage || !strings.Contains(errb.String(), `-o must be text, json or yaml, got "xml"`) {
		t.Errorf("version -o xml: exit %d, %q", code, errb.String())
	}
}
