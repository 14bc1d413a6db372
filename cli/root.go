// Package cli holds pipectl's commands. A custom binary (one that registers its own plugins)
// calls Main from its own main function, so every pipectl command works in it.
package cli

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/cobra"
)

// commands registered by the files of this package, added to every root command.
var subcommands []func() *cobra.Command

func register(f func() *cobra.Command) { subcommands = append(subcommands, f) }

// NewRoot builds the pipectl root command writing to out and errOut.
func NewRoot(out, errOut io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "pipectl",
		Short:         "Weir: store, replicate and export time series through pipes",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(out)
	root.SetErr(errOut)
	for _, f := range subcommands {
		root.AddCommand(f())
	}
	rejectUnknownSubcommands(root)
	return root
}

// rejectUnknownSubcommands makes every group below the root (pipe, region, ...) fail on an
// argument that names none of its subcommands; cobra checks that only at the root, and a
// group without a Run printed its help and exited 0 on `pipectl pipe strat`.
func rejectUnknownSubcommands(c *cobra.Command) {
	for _, sub := range c.Commands() {
		if sub.HasSubCommands() && !sub.Runnable() {
			sub.Args = func(cmd *cobra.Command, args []string) error {
				if len(args) == 0 {
					return nil
				}
				msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
				if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
					msg += fmt.Sprintf(" (did you mean %q?)", s[0])
				}
				return errors.New(msg)
			}
			sub.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
		}
		rejectUnknownSubcommands(sub)
	}
}

// ExitError carries a specific exit code out of a command.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// Main runs pipectl with args and returns the process exit code.
func Main(args []string) int {
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	root := NewRoot(os.Stdout, os.Stderr)
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "pipectl:", err)
		if ee, ok := err.(*ExitError); ok {
			return ee.Code
		}
		return 1
	}
	return 0
}
