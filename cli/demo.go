package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/sourcegraph/conc/pool"
	"github.com/spf13/cobra"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/tsfile"
	"github.com/weir-dev/weir/workload"
)

func init() { register(newDemoCmd) }

func newDemoCmd() *cobra.Command {
	var (
		dir         string
		points      int64
		compression string
		durability  string
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run Weir on embedded defaults: write synthetic points, flush to TsFiles, query, digest",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			comp, err := tsfile.ParseCompression(compression)
			if err != nil {
				return fmt.Errorf("--compression: %w", err)
			}
			dur, err := parseDurability(durability)
			if err != nil {
				return err
			}
			if points <= 0 {
				return fmt.Errorf("--points must be > 0, got %d", points)
			}
			if dir == "" {
				dir, err = os.MkdirTemp("", "weir-demo-")
				if err != nil {
					return err
				}
			}
			return runDemo(cmd, demoConfig{dir: filepath.Join(dir, "root.demo-0"), points: points, comp: comp, dur: dur})
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "data directory (default: a new temporary directory)")
	cmd.Flags().Int64Var(&points, "points", 2_000_000, "number of points to write")
	cmd.Flags().StringVar(&compression, "compression", "lz4", "TsFile compression: zstd|lz4|none")
	cmd.Flags().StringVar(&durability, "durability", "sync", "WAL durability: sync|batch|async")
	return cmd
}

type demoConfig struct {
	dir    string
	points int64
	comp   tsfile.Compression
	dur    walDurability
}

func runDemo(cmd *cobra.Command, c demoConfig) error {
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "Weir demo: one region in %s (durability %s, compression %s)\n", c.dir, c.dur, c.comp)
	r, err := engine.Open(engine.Options{Dir: c.dir, Name: "root.demo/0", Durability: c.dur, Compression: c.comp, MemtableSize: 8 << 20})
	if err != nil {
		return err
	}
	defer r.Close()
	// a second database that a hybrid pipe keeps equal to the first (origin 2: its own writes
	// would be told apart from replicated ones)
	base := filepath.Dir(c.dir)
	cp, err := engine.Open(engine.Options{Dir: filepath.Join(base, "root.copy-0"), Name: "root.copy/0", Origin: 2, Durability: c.dur, Compression: c.comp})
	if err != nil {
		return err
	}
	defer cp.Close()
	mgr, err := pipe.NewManager(pipe.ManagerOptions{
		Dir:           filepath.Join(base, "pipes"),
		SourceRegions: func(*pipe.Spec) ([]*engine.Region, error) { return []*engine.Region{r}, nil },
		Databases: func(name string) (*engine.Region, error) {
			if name == "root.copy" {
				return cp, nil
			}
			return nil, fmt.Errorf("no database %s in the demo (root.copy only)", name)
		},
		Logger: slog.Default(),
	})
	if err != nil {
		return err
	}
	defer mgr.Close()
	spec, err := pipe.ParseSpec([]byte(demoPipe))
	if err != nil {
		return err
	}
	if err := mgr.Create(spec, true); err != nil {
		return err
	}
	if err := mgr.Start("demo-copy"); err != nil {
		return err
	}
	fmt.Fprintf(out, "pipe demo-copy: hybrid source on root.demo → write-back into root.copy\n")

	gen := &workload.Generator{Database: "root.demo", Devices: 100, RowsPerTablet: 1000, Start: 1_732_530_000_000, Step: 1000}
	per := int64(gen.PointsPerTablet())
	tablets := (c.points + per - 1) / per
	if tablets < 1 {
		tablets = 1
	}
	total := tablets * per
	prog := newProgress(cmd.ErrOrStderr(), total, "writing points")
	start := time.Now()
	// two writers share the WAL's group commit
	ch := make(chan *tsfile.Tablet, 8)
	p := pool.New().WithErrors().WithContext(context.Background()).WithCancelOnError()
	for w := 0; w < 2; w++ {
		p.Go(func(ctx context.Context) error {
			for t := range ch {
				_, err := r.Write(t)
				n := int64(t.Points())
				t.Release()
				if err != nil {
					return err
				}
				prog.add(n)
			}
			return nil
		})
	}
	for i := int64(0); i < tablets; i++ {
		ch <- gen.Next()
	}
	close(ch)
	if err := p.Wait(); err != nil {
		prog.finish()
		return err
	}
	writeDur := time.Since(start)
	prog.finish()
	fstart := time.Now()
	if err := r.Flush(); err != nil {
		return err
	}
	flushDur := time.Since(fstart)

	// the pipe catches up: wait (bounded) for lag 0
	if err := waitCaughtUp(mgr, "demo-copy", r, 2*time.Minute); err != nil {
		return err
	}
	// query one device back
	dev := gen.Device(7)
	pat, _ := tsfile.ParsePattern(dev)
	rows := 0
	var first arrow.Record
	err = r.Scan(engine.Query{Pattern: pat}, func(_ string, rec arrow.Record) error {
		if first == nil {
			rec.Retain()
			first = rec
		}
		rows += int(rec.NumRows())
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nquery %s: %d rows; first rows:\n", dev, rows)
	if first != nil {
		printRows(out, first, 3)
		first.Release()
	}
	d, err := r.Digest()
	if err != nil {
		return err
	}
	st := r.Stats()
	raw := total*8 + (total/int64(len(workload.Columns)))*8 // values + timestamps, uncompressed
	errs := engine.VerifyDir(c.dir)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(out, "\nsummary")
	fmt.Fprintf(tw, "  points written\t%d\n", total)
	fmt.Fprintf(tw, "  write rate\t%.0f points/s (%s)\n", float64(total)/writeDur.Seconds(), writeDur.Round(time.Millisecond))
	fmt.Fprintf(tw, "  flush\t%s\n", flushDur.Round(time.Millisecond))
	fmt.Fprintf(tw, "  tsfiles\t%d (%s)\n", st.Files, humanBytes(st.FileBytes))
	fmt.Fprintf(tw, "  compression ratio\t%.1fx (%s raw values+times)\n", float64(raw)/float64(max(st.FileBytes, 1)), humanBytes(raw))
	fmt.Fprintf(tw, "  digest\t%s (%d points)\n", d.Hash, d.Points)
	if len(errs) == 0 {
		fmt.Fprintf(tw, "  verify\tok (manifest and every file checksum)\n")
	} else {
		fmt.Fprintf(tw, "  verify\t%d problems: %v\n", len(errs), errs)
	}
	cd, err := cp.Digest()
	if err != nil {
		return err
	}
	same := "equal"
	if cd != d {
		same = "DIFFERENT"
	}
	fmt.Fprintf(tw, "  root.copy digest\t%s (%d points): %s\n", cd.Hash, cd.Points, same)
	fmt.Fprintf(tw, "  data dir\t%s\n", base)
	tw.Flush()
	ps, _ := mgr.Describe("demo-copy")
	fmt.Fprintln(out, "\npipes")
	printPipeTable(out, []pipe.Status{ps})
	for _, rs := range ps.Regions {
		if rs.LastSwitch != "" {
			fmt.Fprintf(out, "  last carrier switch: %s\n", rs.LastSwitch)
		}
	}
	if cd != d {
		return fmt.Errorf("the copy's digest differs from the source's")
	}
	if len(errs) > 0 {
		return fmt.Errorf("verify failed: %v", errs[0])
	}
	fmt.Fprintf(out, "\nInspect a file: go run ./cmd/pipectl tsfile inspect %s\n", filepath.Join(c.dir, firstFile(r)))
	return nil
}

// demoPipe is the demo's pipe: low selector thresholds so that bursts of writes make it
// degrade to files and come back.
const demoPipe = `
name: demo-copy
source:
  plugin: hybrid
  pattern: root.demo.**
  selector.max-pending-events: 64
sink:
  plugin: write-back
  database: root.copy
`

// waitCaughtUp waits until the pipe has committed everything the region holds.
func waitCaughtUp(m *pipe.Manager, name string, r *engine.Region, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		st, err := m.Describe(name)
		if err != nil {
			return err
		}
		if len(st.Regions) > 0 && st.LagEvents == 0 && st.InFlightEvents == 0 && st.CommittedEvents > 0 {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	st, _ := m.Describe(name)
	return fmt.Errorf("pipe %s did not catch up in %s (lag %d events, last error %q)", name, limit, st.LagEvents, st.LastError)
}

func firstFile(r *engine.Region) string {
	fs := r.Files()
	if len(fs) == 0 {
		return ""
	}
	return fs[0].Name
}

func printRows(w interface{ Write([]byte) (int, error) }, rec arrow.Record, n int) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fs := rec.Schema().Fields()
	for i, f := range fs {
		if i > 0 {
			fmt.Fprint(tw, "\t")
		}
		fmt.Fprint(tw, f.Name)
	}
	fmt.Fprintln(tw)
	for r := 0; r < int(rec.NumRows()) && r < n; r++ {
		for c := range fs {
			if c > 0 {
				fmt.Fprint(tw, "\t")
			}
			fmt.Fprint(tw, tsfile.Value(rec.Column(c), r))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
