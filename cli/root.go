// Package cli holds pipectl's commands. A custom binary (one that registers its own plugins)
// calls Main from its own main function, so every pipectl command works in it.
package cli

import (
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
	return root
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
