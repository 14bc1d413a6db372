package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/weir-dev/weir/node/api"
	"github.com/weir-dev/weir/node/client"
	"github.com/weir-dev/weir/pipe"
)

func init() {
	register(newWriteCmd)
	register(newQueryCmd)
	register(newDigestCmd)
	register(newFlushCmd)
	register(newDeleteCmd)
	register(newPipeCmd)
	register(newSQLCmd)
}

// serverEnv names the environment variable that sets the default --server.
const serverEnv = "WEIR_SERVER"

// clientFlags are the flags of every command that talks to a node.
type clientFlags struct {
	server string
	asJSON bool
}

func addClientFlags(cmd *cobra.Command) *clientFlags {
	cf := &clientFlags{}
	def := os.Getenv(serverEnv)
	if def == "" {
		def = client.DefaultServer
	}
	cmd.Flags().StringVar(&cf.server, "server", def, "the node's HTTP address (env "+serverEnv+")")
	cmd.Flags().BoolVar(&cf.asJSON, "json", false, "print JSON")
	return cf
}

func (cf *clientFlags) client() *client.Client { return client.New(cf.server) }

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeChunk is the most a write sends per request; a larger input goes in pieces that
// end at line ends, so that it stays under the node's body limit.
const writeChunk = 4 << 20

func newWriteCmd() *cobra.Command {
	var file string
	var cf *clientFlags
	cmd := &cobra.Command{
		Use:   "write [--file F]",
		Short: "Write points in the line format (standard input by default) to a node",
		Long: `Write points in the line format (docs/line-format.md) to a node: from --file, or from
standard input. Prints the points accepted; bad lines are listed on standard error with
their line numbers (the good lines are still written) and the exit code is 1.`,
		Example: `  echo 'root.demo.d1 temp=21.5,state=1i 1732530000000' | pipectl write
  pipectl write --file points.txt --server http://127.0.0.1:7070`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in := cmd.InOrStdin()
			if file != "" && file != "-" {
				f, err := os.Open(file)
				if err != nil {
					return fmt.Errorf("write: %w", err)
				}
				defer f.Close()
				in = f
			}
			total, err := writeChunks(cmd.Context(), cf.client(), in)
			out := cmd.OutOrStdout()
			if cf.asJSON {
				if jerr := printJSON(out, total); jerr != nil {
					return jerr
				}
			} else if err == nil || total.Points > 0 || len(total.LineErrors) > 0 {
				// (a request refused whole says so in its error alone)
				to := ""
				if len(total.Databases) > 0 {
					to = " to " + strings.Join(total.Databases, ", ")
				}
				fmt.Fprintf(out, "wrote %s (%s, %s)%s\n", plural(int(total.Points), "point"), plural(int(total.Lines), "line"),
					plural(int(total.Tablets), "tablet"), to)
			}
			if bad := len(total.LineErrors) + total.Omitted; bad > 0 {
				for _, le := range total.LineErrors {
					fmt.Fprintln(cmd.ErrOrStderr(), le.String())
				}
				if total.Omitted > 0 {
					fmt.Fprintf(cmd.ErrOrStderr(), "... and %d more\n", total.Omitted)
				}
				if err == nil {
					err = fmt.Errorf("write: %s", plural(bad, "bad line"))
				}
				return &ExitError{Code: 1, Err: err}
			}
			return err
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "file of lines (default: standard input)")
	cf = addClientFlags(cmd)
	return cmd
}

// writeChunks sends in by pieces of about writeChunk bytes ending at line ends, and sums
// the results (line numbers made relative to the whole input).
func writeChunks(ctx context.Context, c *client.Client, in io.Reader) (api.WriteResult, error) {
	var total api.WriteResult
	dbs := map[string]bool{}
	br := bufio.NewReaderSize(in, 64<<10)
	var buf bytes.Buffer
	firstLine, lines := 1, 0
	send := func() error {
		if buf.Len() == 0 {
			return nil
		}
		res, err := c.Write(ctx, bytes.NewReader(buf.Bytes()))
		total.Points += res.Points
		total.Lines += res.Lines
		total.Tablets += res.Tablets
		total.Omitted += res.Omitted
		for _, d := range res.Databases {
			dbs[d] = true
		}
		for _, le := range res.LineErrors {
			le.Line += firstLine - 1
			total.LineErrors = append(total.LineErrors, le)
		}
		buf.Reset()
		firstLine += lines
		lines = 0
		if e, ok := client.AsError(err); ok && e.Code == api.CodeBadLines {
			return nil
		}
		return err
	}
	var err error
	for {
		line, rerr := br.ReadBytes('\n')
		if len(line) > 0 {
			buf.Write(line)
			lines++
		}
		if buf.Len() >= writeChunk {
			if err = send(); err != nil {
				break
			}
		}
		if rerr == io.EOF {
			err = send()
			break
		}
		if rerr != nil {
			err = fmt.Errorf("write: reading input: %w", rerr)
			break
		}
	}
	for d := range dbs {
		total.Databases = append(total.Databases, d)
	}
	sort.Strings(total.Databases)
	return total, err
}

func newQueryCmd() *cobra.Command {
	var (
		q       api.Query
		start   string
		end     string
		asCSV   bool
		cf      *clientFlags
		measure []string
	)
	cmd := &cobra.Command{
		Use:   "query PATTERN",
		Short: "Query a node: the points of series matching a path pattern",
		Long: `Query the points of the series matching PATTERN (root.demo.**, root.demo.d1, ...), optionally
only some measurements and a time range (unix ms or RFC 3339, inclusive). Prints a table per
device; --csv and --json stream the node's answer as it comes.`,
		Example: `  pipectl query root.demo.d1 --measurements temp,state --start 1732530000000 --limit 10
  pipectl query 'root.demo.**' --csv > demo.csv`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q.Pattern = args[0]
			q.Measurements = measure
			for _, t := range []struct {
				flag, v string
				dst     *int64
			}{{"--start", start, &q.Start}, {"--end", end, &q.End}} {
				if t.v == "" {
					continue
				}
				v, err := pipe.ParseTime(t.v)
				if err != nil {
					return &ExitError{Code: 2, Err: fmt.Errorf("%s: %w", t.flag, err)}
				}
				*t.dst = v
			}
			c, out := cf.client(), cmd.OutOrStdout()
			switch {
			case asCSV && cf.asJSON:
				return &ExitError{Code: 2, Err: errors.New("query: --csv or --json, not both")}
			case asCSV:
				return c.QueryTo(cmd.Context(), q, "csv", out)
			case cf.asJSON:
				return c.QueryTo(cmd.Context(), q, "json", out)
			}
			res, err := c.Query(cmd.Context(), q)
			for i, s := range res.Series {
				if i > 0 {
					fmt.Fprintln(out)
				}
				tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
				fmt.Fprintf(tw, "%s\n", s.Device)
				fmt.Fprintln(tw, strings.ToUpper(strings.Join(s.Columns, "\t")))
				for _, row := range s.Rows {
					cells := make([]string, len(row))
					for k, v := range row {
						if v == nil {
							cells[k] = "-"
						} else {
							cells[k] = fmt.Sprint(v)
						}
					}
					fmt.Fprintln(tw, strings.Join(cells, "\t"))
				}
				tw.Flush()
			}
			if err == nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s, %s, %s\n", plural(len(res.Series), "series"), plural(int(res.Rows), "row"), plural(int(res.Points), "point"))
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&measure, "measurements", nil, "only these measurements (comma-separated)")
	f.StringVar(&start, "start", "", "first time, unix ms or RFC 3339")
	f.StringVar(&end, "end", "", "last time, unix ms or RFC 3339")
	f.Int64Var(&q.Limit, "limit", 0, "at most this many rows")
	f.BoolVar(&asCSV, "csv", false, "print CSV: device,time,<measurements>")
	cf = addClientFlags(cmd)
	return cmd
}

func newDigestCmd() *cobra.Command {
	var db string
	var regions bool
	var cf *clientFlags
	cmd := &cobra.Command{
		Use:   "digest [--db D]",
		Short: "Print the digest of a node's databases (equal digests: equal points)",
		Long: `Print a stable hash of every live point of a database (or of each database), with its
point count. Two databases with the same points have the same digest whatever their regions,
files or names: compare a replica with its source. --json prints
{"database":..,"digest":..,"points":..} (a list of them without --db).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, out := cf.client(), cmd.OutOrStdout()
			var ds []api.Digest
			if db != "" {
				d, err := c.Digest(cmd.Context(), db)
				if err != nil {
					return err
				}
				ds = []api.Digest{d}
			} else {
				var err error
				if ds, err = c.Digests(cmd.Context()); err != nil {
					return err
				}
			}
			if !regions {
				for i := range ds {
					ds[i].Regions = nil
				}
			}
			if cf.asJSON {
				if db != "" {
					return printJSON(out, ds[0])
				}
				return printJSON(out, ds)
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "DATABASE\tDIGEST\tPOINTS")
			for _, d := range ds {
				fmt.Fprintf(tw, "%s\t%s\t%d\n", d.Database, d.Digest, d.Points)
				for _, r := range d.Regions {
					fmt.Fprintf(tw, "  %s\t%s\t%d\n", r.Region, r.Digest, r.Points)
				}
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&db, "db", "", "the database (default: every database)")
	cmd.Flags().BoolVar(&regions, "regions", false, "also each region's digest")
	cf = addClientFlags(cmd)
	return cmd
}

func newFlushCmd() *cobra.Command {
	var db string
	var cf *clientFlags
	cmd := &cobra.Command{
		Use:   "flush [--db D]",
		Short: "Flush a node's memtables into TsFiles",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cf.client().Flush(cmd.Context(), db); err != nil {
				return err
			}
			if !cf.asJSON {
				fmt.Fprintln(cmd.OutOrStdout(), "flushed")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&db, "db", "", "the database (default: every database)")
	cf = addClientFlags(cmd)
	return cmd
}

func newDeleteCmd() *cobra.Command {
	var start, end string
	var cf *clientFlags
	cmd := &cobra.Command{
		Use:   "delete PATTERN [--start T --end T]",
		Short: "Delete the points of series matching a pattern, in a time range (default: all time)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d := api.Delete{Pattern: args[0]}
			for _, t := range []struct {
				flag, v string
				dst     *int64
			}{{"--start", start, &d.Start}, {"--end", end, &d.End}} {
				if t.v == "" {
					continue
				}
				v, err := pipe.ParseTime(t.v)
				if err != nil {
					return &ExitError{Code: 2, Err: fmt.Errorf("%s: %w", t.flag, err)}
				}
				*t.dst = v
			}
			res, err := cf.client().Delete(cmd.Context(), d)
			if err != nil {
				return err
			}
			if cf.asJSON {
				return printJSON(cmd.OutOrStdout(), res)
			}
			if len(res.Databases) == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "deleted %s: no database matches it\n", d.Pattern)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "deleted %s in %s\n", d.Pattern, strings.Join(res.Databases, ", "))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&start, "start", "", "first time, unix ms or RFC 3339")
	cmd.Flags().StringVar(&end, "end", "", "last time, unix ms or RFC 3339")
	cf = addClientFlags(cmd)
	return cmd
}

func newPipeCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "pipe", Short: "Create, list, describe, start, stop, drop and watch a node's pipes"}
	cmd.AddCommand(newPipeCreateCmd(), newPipeListCmd(), newPipeDescribeCmd(), newPipeWatchCmd(), newPipeWaitCmd())
	for _, op := range []string{"start", "stop", "drop"} {
		cmd.AddCommand(newPipeOpCmd(op))
	}
	return cmd
}

// printProblems prints an invalid_spec error's problems, one per line, as lint does.
func printProblems(w io.Writer, name string, err error) {
	e, ok := client.AsError(err)
	if !ok || e.Code != api.CodeInvalidSpec {
		return
	}
	for _, p := range e.Problems {
		if p.Line > 0 {
			fmt.Fprintf(w, "%s:%d:%d: %s\n", name, p.Line, p.Column, p.Message)
		} else {
			fmt.Fprintf(w, "%s: %s\n", name, p.Message)
		}
	}
}

func newPipeCreateCmd() *cobra.Command {
	var file, sql string
	var start, ifNotExists bool
	var cf *clientFlags
	cmd := &cobra.Command{
		Use:   "create -f SPEC | --sql STATEMENT",
		Short: "Create a pipe from a YAML/JSON spec (docs/pipes.md) or a CREATE PIPE statement",
		Example: `  pipectl pipe create -f examples/specs/copy.yaml --start
  pipectl pipe create --sql "CREATE PIPE p WITH SOURCE ('pattern'='root.demo.**') WITH SINK ('sink'='stdout')"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case file == "" && sql == "":
				return &ExitError{Code: 2, Err: errors.New("pipe create: give -f SPEC or --sql STATEMENT")}
			case file != "" && sql != "":
				return &ExitError{Code: 2, Err: errors.New("pipe create: give -f SPEC or --sql STATEMENT, not both")}
			}
			c, ctx := cf.client(), cmd.Context()
			var name string
			if sql != "" {
				st, errs := pipe.CheckSQL(sql)
				if len(errs) == 0 && st.Kind != pipe.CreatePipe {
					return &ExitError{Code: 2, Err: fmt.Errorf("pipe create: --sql takes a CREATE PIPE statement, not %s (see pipectl sql)", st.Kind)}
				}
				res, err := c.SQL(ctx, sql)
				if err != nil {
					printProblems(cmd.ErrOrStderr(), "--sql", err)
					return err
				}
				name = res.Name
			} else {
				data, err := readSpec(cmd, file)
				if err != nil {
					return err
				}
				p, err := c.CreatePipe(ctx, data, client.CreateOptions{IfNotExists: ifNotExists})
				if err != nil {
					printProblems(cmd.ErrOrStderr(), file, err)
					return err
				}
				name = p.Name
			}
			if start {
				if _, err := c.StartPipe(ctx, name); err != nil {
					return err
				}
			}
			p, err := c.Pipe(ctx, name)
			if err != nil {
				return err
			}
			if cf.asJSON {
				return printJSON(cmd.OutOrStdout(), p)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "pipe %s: %s (%s → %s)\n", p.Name, p.State, p.Source, p.Sink)
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the spec file (YAML or JSON; - for standard input)")
	cmd.Flags().StringVar(&sql, "sql", "", "a CREATE PIPE statement")
	cmd.Flags().BoolVar(&start, "start", false, "start the pipe once created")
	cmd.Flags().BoolVar(&ifNotExists, "if-not-exists", false, "an existing pipe of that name is no error")
	cf = addClientFlags(cmd)
	return cmd
}

func readSpec(cmd *cobra.Command, file string) ([]byte, error) {
	if file == "-" {
		return io.ReadAll(cmd.InOrStdin())
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("pipe create: %w", err)
	}
	return data, nil
}

func newPipeListCmd() *cobra.Command {
	var regions bool
	var cf *clientFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the pipes (in a cluster, every node's, per region): state, source, sink, carrier, lag, rate, last error",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ps, err := cf.client().Pipes(cmd.Context())
			if err != nil {
				return err
			}
			if cf.asJSON {
				return printJSON(cmd.OutOrStdout(), ps)
			}
			// a cluster's merged view is shown per region: which node runs each task
			inCluster := false
			for _, p := range ps {
				for _, r := range p.Regions {
					inCluster = inCluster || r.Node != 0
				}
			}
			if regions || inCluster {
				printPipeTable(cmd.OutOrStdout(), ps)
			} else {
				printPipeSummary(cmd.OutOrStdout(), ps)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&regions, "regions", false, "one row per pipe and region")
	cf = addClientFlags(cmd)
	return cmd
}

func newPipeDescribeCmd() *cobra.Command {
	var cf *clientFlags
	cmd := &cobra.Command{
		Use:   "describe NAME",
		Short: "Describe a pipe: its status per region and its normalized spec",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := cf.client().Pipe(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if cf.asJSON {
				return printJSON(out, p)
			}
			describePipe(out, p)
			return nil
		},
	}
	cf = addClientFlags(cmd)
	return cmd
}

func describePipe(out io.Writer, p api.Pipe) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "name\t%s\n", p.Name)
	fmt.Fprintf(tw, "state\t%s\n", p.State)
	fmt.Fprintf(tw, "source → sink\t%s → %s\n", p.Source, p.Sink)
	if len(p.Processors) > 0 {
		fmt.Fprintf(tw, "processors\t%s\n", strings.Join(p.Processors, ", "))
	}
	fmt.Fprintf(tw, "committed\t%d events, %s\n", p.CommittedEvents, humanBytes(p.CommittedBytes))
	fmt.Fprintf(tw, "lag\t%d events, %s, %.1f s\n", p.LagEvents, humanBytes(p.LagBytes), p.LagSeconds)
	fmt.Fprintf(tw, "rate\t%.0f events/s, %.0f points/s\n", p.EventsPerSec, p.PointsPerSec)
	fmt.Fprintf(tw, "carrier switches\t%d\n", p.Switches)
	fmt.Fprintf(tw, "retries\t%d\n", p.Retries)
	fmt.Fprintf(tw, "last error\t%s\n", orDash(p.LastError))
	tw.Flush()
	fmt.Fprintln(out)
	printPipeTable(out, []pipe.Status{p.Status})
	if p.Spec != nil {
		fmt.Fprintln(out, "\nspec")
		for _, l := range strings.Split(strings.TrimRight(string(p.Spec.YAML()), "\n"), "\n") {
			fmt.Fprintln(out, "  "+l)
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newPipeOpCmd(op string) *cobra.Command {
	var ifExists bool
	var cf *clientFlags
	cmd := &cobra.Command{
		Use:   op + " NAME",
		Short: map[string]string{"start": "Start a pipe", "stop": "Stop a pipe (it saves its progress)", "drop": "Drop a pipe"}[op],
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ctx, name := cf.client(), cmd.Context(), args[0]
			var p api.Pipe
			var err error
			switch op {
			case "start":
				p, err = c.StartPipe(ctx, name)
			case "stop":
				p, err = c.StopPipe(ctx, name)
			case "drop":
				var dropped bool
				dropped, err = c.DropPipe(ctx, name, ifExists)
				if err == nil {
					if cf.asJSON {
						return printJSON(cmd.OutOrStdout(), map[string]any{"name": name, "dropped": dropped})
					}
					if dropped {
						fmt.Fprintf(cmd.OutOrStdout(), "pipe %s dropped\n", name)
					} else {
						fmt.Fprintf(cmd.OutOrStdout(), "no pipe %s\n", name)
					}
				}
				return err
			}
			if err != nil {
				return err
			}
			if cf.asJSON {
				return printJSON(cmd.OutOrStdout(), p)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "pipe %s: %s\n", p.Name, p.State)
			return nil
		},
	}
	if op == "drop" {
		cmd.Flags().BoolVar(&ifExists, "if-exists", false, "a missing pipe is no error")
	}
	cf = addClientFlags(cmd)
	return cmd
}

func newPipeWatchCmd() *cobra.Command {
	var interval time.Duration
	var count int
	var cf *clientFlags
	cmd := &cobra.Command{
		Use:   "watch NAME",
		Short: "Watch a pipe live: lag, rate and carrier per region, refreshing (Ctrl-C to exit)",
		Long: `Show a pipe's status, refreshed every --interval, until Ctrl-C: per region the carrier
(tablet or tsfile), lag in events and seconds, commit rate, pinned WAL and the last error.
While the node is unreachable the view says so and keeps trying. On a terminal the view
redraws in place; otherwise each refresh is printed after the last.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if interval <= 0 {
				return &ExitError{Code: 2, Err: fmt.Errorf("--interval must be > 0, got %s", interval)}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			out := cmd.OutOrStdout()
			tty := false
			if f, ok := out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				tty = true
			}
			c := cf.client()
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for i := 0; count <= 0 || i < count; i++ {
				rctx, cancel := context.WithTimeout(ctx, interval+5*time.Second)
				p, err := c.Pipe(rctx, args[0])
				cancel()
				if ctx.Err() != nil {
					return nil
				}
				if e, ok := client.AsError(err); ok && e.Code == api.CodeNotFound {
					return err
				}
				var buf bytes.Buffer
				renderWatch(&buf, c.Server(), args[0], p, err, cf.asJSON)
				if tty && !cf.asJSON {
					io.WriteString(out, "\x1b[H\x1b[2J")
				} else if i > 0 && !cf.asJSON {
					fmt.Fprintln(out)
				}
				out.Write(buf.Bytes())
				if count > 0 && i == count-1 {
					break
				}
				select {
				case <-ctx.Done():
					return nil
				case <-tick.C:
				}
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&interval, "interval", time.Second, "refresh interval")
	cmd.Flags().IntVar(&count, "count", 0, "stop after this many refreshes (0: until Ctrl-C)")
	cf = addClientFlags(cmd)
	return cmd
}

// renderWatch draws one refresh of pipe watch.
func renderWatch(w io.Writer, server, name string, p api.Pipe, err error, asJSON bool) {
	now := time.Now().Format("15:04:05")
	if asJSON {
		if err != nil {
			json.NewEncoder(w).Encode(map[string]any{"time": now, "pipe": name, "error": err.Error()})
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"time": now, "pipe": p.Status})
		return
	}
	if err != nil {
		fmt.Fprintf(w, "%s  pipe %s on %s: %v (retrying)\n", now, name, server, err)
		return
	}
	fmt.Fprintf(w, "%s  pipe %s  %s  %s → %s  lag %d events %.1f s  %.0f events/s  carrier %s  switches %d\n",
		now, p.Name, p.State, p.Source, p.Sink, p.LagEvents, p.LagSeconds, p.EventsPerSec, carriers(p.Status), p.Switches)
	printPipeTable(w, []pipe.Status{p.Status})
	for _, r := range p.Regions {
		if r.LastSwitch != "" {
			fmt.Fprintf(w, "  %s last switch: %s\n", r.Region, r.LastSwitch)
		}
	}
	if p.LastError != "" {
		fmt.Fprintf(w, "  last error: %s\n", p.LastError)
	}
}

func newSQLCmd() *cobra.Command {
	var cf *clientFlags
	cmd := &cobra.Command{
		Use:   "sql STATEMENT",
		Short: "Run a pipe statement on a node: CREATE/START/STOP/DROP PIPE, SHOW PIPES",
		Long: `Run one statement of IoTDB's pipe SQL (docs/pipes.md) on a node. SHOW PIPES prints the pipe
table (as pipe list); the other statements print what they did. "-" reads the statement from
standard input.`,
		Example: `  pipectl sql "CREATE PIPE p WITH SOURCE ('pattern'='root.demo.**') WITH SINK ('sink'='stdout')"
  pipectl sql "START PIPE p"
  pipectl sql "SHOW PIPES"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			stmt := args[0]
			if stmt == "-" {
				b, err := io.ReadAll(cmd.InOrStdin())
				if err != nil {
					return err
				}
				stmt = string(b)
			}
			res, err := cf.client().SQL(cmd.Context(), stmt)
			if err != nil {
				printProblems(cmd.ErrOrStderr(), "sql", err)
				return err
			}
			out := cmd.OutOrStdout()
			if cf.asJSON {
				return printJSON(out, res)
			}
			switch {
			case res.Statement == pipe.ShowPipes.String():
				printPipeSummary(out, res.Pipes)
			case !res.Done:
				fmt.Fprintf(out, "%s %s: nothing to do\n", res.Statement, res.Name)
			default:
				fmt.Fprintf(out, "%s %s: done\n", res.Statement, res.Name)
			}
			return nil
		},
	}
	cf = addClientFlags(cmd)
	return cmd
}

func newPipeWaitCmd() *cobra.Command {
	var timeout time.Duration
	var cf *clientFlags
	cmd := &cobra.Command{
		Use:   "wait NAME",
		Short: "Wait until a running pipe has caught up (no lag, nothing in flight); for scripts",
		Long: `Wait until the pipe is RUNNING, every region's task runs, and nothing written to its
source is left uncommitted (lag 0 events, none in flight). Exit 0 then, or 1 with the pipe's
status after --timeout.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if timeout <= 0 {
				return &ExitError{Code: 2, Err: fmt.Errorf("--timeout must be > 0, got %s", timeout)}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			c := cf.client()
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			var last api.Pipe
			var lastErr error
			for {
				p, err := c.Pipe(ctx, args[0])
				if e, ok := client.AsError(err); ok && e.Code == api.CodeNotFound {
					return err
				}
				if err != nil && ctx.Err() != nil && (lastErr != nil || last.Name != "") {
					// the deadline cut this poll short: keep the last status seen to report it
				} else {
					last, lastErr = p, err
				}
				if err == nil && caughtUp(p.Status) {
					if cf.asJSON {
						return printJSON(cmd.OutOrStdout(), p)
					}
					fmt.Fprintf(cmd.OutOrStdout(), "pipe %s caught up: %d events committed\n", p.Name, p.CommittedEvents)
					return nil
				}
				select {
				case <-ctx.Done():
					if lastErr != nil {
						return fmt.Errorf("pipe wait %s: not caught up after %s: %w", args[0], timeout, lastErr)
					}
					return fmt.Errorf("pipe wait %s: not caught up after %s: state %s, lag %d events, in flight %d, last error %q",
						args[0], timeout, last.State, last.LagEvents, last.InFlightEvents, last.LastError)
				case <-tick.C:
				}
			}
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "give up after this long")
	cf = addClientFlags(cmd)
	return cmd
}

// caughtUp reports whether a running pipe has committed everything its source holds.
func caughtUp(p pipe.Status) bool {
	if p.State != pipe.StateRunning || len(p.Regions) == 0 || p.LagEvents != 0 || p.InFlightEvents != 0 {
		return false
	}
	for _, r := range p.Regions {
		if r.Phase != pipe.PhaseRunning && r.Phase != pipe.PhaseFinished {
			return false
		}
	}
	return true
}
