package main

// The command line on github.com/spf13/cobra: the command tree, help and
// usage, exit codes, shell completion, and the spellings of Go's flag
// package that the commands had before (-state-dir, -watch) and keep.

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// cli runs one command line: the commands write to stdout and stderr and
// set code, the exit code runMain returns.
type cli struct {
	stdout, stderr io.Writer
	code           int
}

// run adapts a command's body, which prints its own errors and returns its
// exit code, to cobra. Cobra's own errors (flags, arguments) are usage
// errors: execute prints them.
func (a *cli) run(body func(cmd *cobra.Command, args []string) int) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		a.code = body(cmd, args)
		return nil
	}
}

// usageExit is the annotation of a command whose bad flags or arguments
// exit with another code than exitUsage: plan, whose 2 means "changes
// pending".
const usageExit = "reconciler/usage-exit"

// command returns a subcommand with what every one of them has: its usage
// line as written (its flags included), and a body that sets the exit
// code. Its arguments complete as no file unless the caller says
// otherwise.
func (a *cli) command(use, short, long string, args cobra.PositionalArgs, body func(*cobra.Command, []string) int) *cobra.Command {
	return &cobra.Command{
		Use: use, Short: short, Long: long, Args: args,
		DisableFlagsInUseLine: true,
		RunE:                  a.run(body),
		ValidArgsFunction:     cobra.NoFileCompletions,
	}
}

// newRoot builds the command tree.
func (a *cli) newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "reconciler",
		Short: "keep the containers on this node equal to the manifests in a directory",
		// `reconciler --version`, as before the subcommands had cobra.
		Version:       version,
		SilenceErrors: true, // execute prints them, with the command's usage
		SilenceUsage:  true,
	}
	root.Flags().Bool("version", false, "print the version")
	root.SetVersionTemplate("reconciler {{.Version}}\n")
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetHelpFunc(a.help)
	root.SetUsageFunc(func(c *cobra.Command) error { a.usage(c.OutOrStderr(), c); return nil })
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return err })
	root.AddCommand(
		a.runCommand(), a.validateCommand(), a.schemaCommand(), a.convertCommand(), a.planCommand(),
		a.statusCommand(), a.waitCommand(), a.syncCommand(), a.logsCommand(), a.versionCommand(),
	)
	// --o, --c and --f: Go's flag package took a one-letter flag with two
	// dashes too; pflag names them -o/--output, -c/--container, -f/--follow.
	root.SetGlobalNormalizationFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		if long, ok := shorthands[name]; ok {
			return pflag.NormalizedName(long)
		}
		return pflag.NormalizedName(name)
	})
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			// Without a shell, or with one cobra does not know: a usage
			// error (exit 2), not the help (exit 0).
			shells := make([]string, 0, len(c.Commands()))
			for _, s := range c.Commands() {
				shells = append(shells, s.Name())
			}
			c.Use, c.DisableFlagsInUseLine = "completion bash|zsh|fish|powershell", true
			c.Args = func(_ *cobra.Command, args []string) error {
				if len(args) > 0 {
					return fmt.Errorf("unknown shell %q: one of %s", args[0], strings.Join(shells, ", "))
				}
				return nil
			}
			c.RunE = func(*cobra.Command, []string) error {
				return fmt.Errorf("missing the shell: one of %s", strings.Join(shells, ", "))
			}
		}
	}
	return root
}

// shorthands are the one-letter flags and their long names.
var shorthands = map[string]string{"o": "output", "c": "container", "f": "follow"}

// execute runs args on the command tree and returns the exit code.
func (a *cli) execute(args []string) int {
	root := a.newRoot()
	if cmd, _, err := root.Find(args); err == nil {
		args = goStyleFlags(cmd, args)
	}
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	if err != nil {
		return a.usageError(cmd, err)
	}
	return a.code
}

// usageError prints err, a wrong use of cmd (a flag or an argument), with
// cmd's usage line on stderr and returns the exit code of such an error:
// exitUsage, but exitFailure for plan.
func (a *cli) usageError(cmd *cobra.Command, err error) int {
	code := exitUsage
	if cmd != nil && cmd.Annotations[usageExit] != "" {
		code = exitFailure
	}
	if cmd == nil || !cmd.HasParent() {
		fmt.Fprintf(a.stderr, "reconciler: %v\n\n%s", err, usage)
		return code
	}
	fmt.Fprintf(a.stderr, "%s: %v\n", cmd.CommandPath(), err)
	fmt.Fprintf(a.stderr, "Usage: %s\nRun '%s --help' for more.\n", cmd.UseLine(), cmd.CommandPath())
	return code
}

// help prints a command's help on stdout: its usage line, what it does,
// its subcommands and its flags. The root's is the list of commands.
func (a *cli) help(c *cobra.Command, _ []string) {
	w := c.OutOrStdout()
	if !c.HasParent() {
		fmt.Fprint(w, usage)
		return
	}
	a.usage(w, c)
}

func (a *cli) usage(w io.Writer, c *cobra.Command) {
	fmt.Fprintf(w, "Usage: %s\n", c.UseLine())
	if long := strings.TrimSpace(c.Long); long != "" {
		fmt.Fprintf(w, "\n%s\n", long)
	} else if c.Short != "" {
		fmt.Fprintf(w, "\n%s.\n", strings.TrimSuffix(c.Short, "."))
	}
	if c.HasAvailableSubCommands() {
		fmt.Fprintln(w, "\nCommands:")
		for _, s := range c.Commands() {
			if s.IsAvailableCommand() {
				fmt.Fprintf(w, "  %-*s %s\n", s.NamePadding(), s.Name(), s.Short)
			}
		}
	}
	if c.HasAvailableLocalFlags() {
		fmt.Fprintf(w, "\nFlags:\n%s", c.LocalFlags().FlagUsages())
	}
	if c.HasAvailableInheritedFlags() {
		fmt.Fprintf(w, "\nGlobal flags:\n%s", c.InheritedFlags().FlagUsages())
	}
}

// goStyleFlags rewrites the single-dash long flags that Go's flag package
// accepted and pflag does not (-state-dir DIR, -watch, -help) as
// double-dash ones, for the flags of cmd. One-letter shorthands, the
// values of flags and whatever follows "--" are left as they are.
func goStyleFlags(cmd *cobra.Command, args []string) []string {
	cmd.InitDefaultHelpFlag()
	cmd.InitDefaultVersionFlag()
	fs := cmd.Flags()
	out := make([]string, 0, len(args))
	value := false // args[i] is the value of the flag before it
	for i, arg := range args {
		switch {
		case value:
			value = false
		case arg == "--":
			return append(out, args[i:]...)
		case len(arg) == 2 && arg[0] == '-' && arg[1] != '-':
			if f := fs.ShorthandLookup(arg[1:]); f != nil {
				value = f.NoOptDefVal == ""
			}
		case len(arg) > 2 && arg[0] == '-':
			name, hasValue := strings.CutPrefix(arg, "--")
			single := !hasValue
			if single {
				name = arg[1:]
			}
			name, _, hasValue = strings.Cut(name, "=")
			f := fs.Lookup(name)
			if f == nil {
				break // a shorthand with its value (-ojson), or unknown: pflag says
			}
			if single {
				arg = "-" + arg
			}
			value = !hasValue && f.NoOptDefVal == ""
		}
		out = append(out, arg)
	}
	return out
}

// Positional arguments. Their errors are usage errors (exit 2).

// noArgs refuses any.
func noArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("unexpected argument %q", args[0])
	}
	return nil
}

// oneArg wants exactly one, what.
func oneArg(what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		switch {
		case len(args) == 0:
			return fmt.Errorf("missing %s", what)
		case len(args) > 1:
			return fmt.Errorf("unexpected argument %q", args[1])
		}
		return nil
	}
}

// someArgs wants at least one, what.
func someArgs(what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) == 0 {
			return fmt.Errorf("missing %s", what)
		}
		return nil
	}
}

// maxOneArg takes one, what, or none.
func maxOneArg(_ *cobra.Command, args []string) error {
	if len(args) > 1 {
		return fmt.Errorf("unexpected argument %q", args[1])
	}
	return nil
}

// oneOf checks the value of a flag that takes one of a few words.
func oneOf(flag, got string, choices ...string) error {
	if slices.Contains(choices, got) {
		return nil
	}
	return fmt.Errorf("%s must be %s or %s, got %q", flag, strings.Join(choices[:len(choices)-1], ", "), choices[len(choices)-1], got)
}

// completeWords completes a flag's value from a fixed list.
func completeWords(cmd *cobra.Command, flag string, words ...string) {
	_ = cmd.RegisterFlagCompletionFunc(flag, cobra.FixedCompletions(words, cobra.ShellCompDirectiveNoFileComp))
}

// completeTasks completes the names of the tasks and pods the daemon knows,
// asked as the command would ask it (--state-dir, --api), for at most max
// arguments (-1: any number).
func completeTasks(cf *clientFlags, max int) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		const none = cobra.ShellCompDirectiveNoFileComp
		if max >= 0 && len(args) >= max {
			return nil, none
		}
		client, err := cf.client(cmd)
		if err != nil {
			return nil, none
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Second)
		defer cancel()
		var resp statusResponse
		if err := client.get(ctx, "/status", &resp); err != nil {
			return nil, none
		}
		var names []string
		for _, st := range resp.Tasks {
			for _, n := range []string{st.Name, st.Pod} {
				if n != "" && strings.HasPrefix(n, toComplete) && !slices.Contains(args, n) && !slices.Contains(names, n) {
					names = append(names, n)
				}
			}
		}
		slices.Sort(names)
		return names, none
	}
}
