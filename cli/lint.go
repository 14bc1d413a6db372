package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"github.com/weir-dev/weir/pipe"
)

func init() { register(newLintCmd) }

func newLintCmd() *cobra.Command {
	var sql []string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "lint [FILE...] [--sql STATEMENT]",
		Short: "Check pipe specs offline and print them normalized",
		Long: `Check pipe specs against the registered plugins without a node: YAML or JSON spec
files, IoTDB SQL statements (files ending .sql, or --sql), or standard input ("-", where a
text starting with CREATE, START, STOP, DROP or SHOW is SQL).

When everything is valid, lint prints each normalized spec (canonical plugin names, keys
without IoTDB prefixes, defaults filled in) as YAML, or JSON with --json, and exits 0.
Otherwise it prints every problem on standard error, one per line, as
FILE:LINE:COLUMN: KEY: MESSAGE, and exits 1.`,
		Example: `  pipectl lint copy.yaml export.sql
  pipectl lint --sql "CREATE PIPE p WITH SINK ('sink'='stdout')"
  cat copy.yaml | pipectl lint -`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 && len(sql) == 0 {
				return &ExitError{Code: 2, Err: errors.New("lint: give spec files, - for standard input, or --sql STATEMENT")}
			}
			type input struct {
				name  string
				data  []byte
				isSQL bool
			}
			var inputs []input
			stdinUsed := false
			readStdin := func() ([]byte, error) {
				if stdinUsed {
					return nil, errors.New("lint: standard input given twice")
				}
				stdinUsed = true
				return io.ReadAll(cmd.InOrStdin())
			}
			for _, a := range args {
				if a == "-" {
					data, err := readStdin()
					if err != nil {
						return err
					}
					inputs = append(inputs, input{"<stdin>", data, looksLikeSQL(data)})
					continue
				}
				data, err := os.ReadFile(a)
				if err != nil {
					return &ExitError{Code: 1, Err: fmt.Errorf("lint: %w", err)}
				}
				inputs = append(inputs, input{a, data, strings.EqualFold(filepath.Ext(a), ".sql")})
			}
			for i, s := range sql {
				name := "--sql"
				if len(sql) > 1 {
					name = fmt.Sprintf("--sql[%d]", i)
				}
				data := []byte(s)
				if s == "-" {
					var err error
					if data, err = readStdin(); err != nil {
						return err
					}
					name = "<stdin>"
				}
				inputs = append(inputs, input{name, data, true})
			}

			out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
			var outputs [][]byte
			problems, failed := 0, 0
			for _, in := range inputs {
				var doc []byte
				var errs []error
				if in.isSQL {
					var st *pipe.Statement
					if st, errs = pipe.CheckSQL(string(in.data)); len(errs) == 0 {
						doc = lintStatement(st, asJSON)
					}
				} else {
					var spec *pipe.Spec
					if spec, errs = pipe.CheckSpec(in.data); len(errs) == 0 {
						doc = lintSpec(spec, asJSON)
					}
				}
				if len(errs) > 0 {
					failed++
					problems += len(errs)
					for _, e := range errs {
						fmt.Fprintln(errOut, formatLintProblem(in.name, e))
					}
					continue
				}
				outputs = append(outputs, doc)
			}
			for i, doc := range outputs {
				if i > 0 && !asJSON {
					fmt.Fprintln(out, "---")
				}
				if _, err := out.Write(doc); err != nil {
					return err
				}
			}
			if failed > 0 {
				err := fmt.Errorf("lint: %s", plural(problems, "problem"))
				if len(inputs) > 1 {
					err = fmt.Errorf("lint: %s in %d of %d inputs", plural(problems, "problem"), failed, len(inputs))
				}
				return &ExitError{Code: 1, Err: err}
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&sql, "sql", nil, "an IoTDB SQL statement to check (- reads it from standard input); may repeat")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the normalized specs as JSON")
	return cmd
}

func plural(n int, what string) string {
	if n == 1 || strings.HasSuffix(what, "s") { // "series" is its own plural
		return fmt.Sprintf("%d %s", n, what)
	}
	return fmt.Sprintf("%d %ss", n, what)
}

var sqlStart = regexp.MustCompile(`(?is)^\s*(?:(?:--[^\n]*\n|/\*.*?\*/)\s*)*(CREATE|START|STOP|DROP|SHOW)\b`)

// looksLikeSQL tells a SQL statement from a YAML or JSON spec on standard input.
func looksLikeSQL(data []byte) bool { return sqlStart.Match(data) }

// formatLintProblem writes a problem as NAME:LINE:COLUMN: KEY: MESSAGE (NAME: KEY: MESSAGE
// without a position).
func formatLintProblem(name string, err error) string {
	msg := err.Error()
	var se *pipe.SyntaxError
	if errors.As(err, &se) {
		msg = se.Msg
	}
	if p, ok := pipe.PositionOf(err); ok {
		return fmt.Sprintf("%s:%d:%d: %s", name, p.Line, p.Column, msg)
	}
	return fmt.Sprintf("%s: %s", name, msg)
}

func lintSpec(spec *pipe.Spec, asJSON bool) []byte {
	if asJSON {
		return spec.JSON()
	}
	return spec.YAML()
}

// lintStatement prints a CREATE PIPE's spec, and any other statement as its SQL (or JSON).
func lintStatement(st *pipe.Statement, asJSON bool) []byte {
	switch {
	case st.Kind == pipe.CreatePipe:
		return lintSpec(st.Spec, asJSON)
	case asJSON:
		b, _ := json.MarshalIndent(st, "", "  ")
		return append(b, '\n')
	}
	return []byte(st.String() + "\n")
}
