package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/sourcegraph/conc/pool"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-dev/weir/consensus"
	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/pipe/connector/kafka/kafkaserve"
	"github.com/weir-dev/weir/tsfile"
	"github.com/weir-dev/weir/workload"
)

func init() { register(newDemoCmd) }

func newDemoCmd() *cobra.Command {
	var (
		dir, compression, durability, protocol string
		points, rate                           int64
		downFor                                time.Duration
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "The mission in one process: three replicas, a follower down mid-load, catch-up, equal digests",
		Long: `Runs a database root.demo replicated on three replicas in one process with a consensus
protocol (iotv2 by default), writes synthetic points with a progress bar, stops one follower
mid-load and restarts it, waits for every replica to catch up, and compares digests. A hybrid
write-back pipe also keeps a second database, root.copy, equal to root.demo.
--consensus iot shows IoTConsensus's WAL pile-up and blocked writes; fast ships sealed files only.`,
		Args: cobra.NoArgs,
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
			if _, err := consensus.New(protocol, consensus.Options{}); err != nil {
				return fmt.Errorf("--consensus: %w", err)
			}
			if downFor <= 0 {
				return fmt.Errorf("--down-for must be > 0, got %s", downFor)
			}
			if rate < 0 {
				return fmt.Errorf("--rate must be >= 0, got %d", rate)
			}
			if dir == "" {
				if dir, err = os.MkdirTemp("", "weir-demo-"); err != nil {
					return err
				}
			} else if err := clearDemoDir(cmd.ErrOrStderr(), dir); err != nil {
				return err
			}
			return runDemo(cmd, demoConfig{dir: dir, points: points, comp: comp, dur: dur, protocol: protocol, downFor: downFor, rate: rate})
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "data directory (default: a new temporary directory)")
	cmd.Flags().Int64Var(&points, "points", 2_000_000, "number of points to write")
	cmd.Flags().StringVar(&compression, "compression", "lz4", "TsFile compression: zstd|lz4|none")
	cmd.Flags().StringVar(&durability, "durability", "sync", "WAL durability: sync|batch|async")
	cmd.Flags().StringVar(&protocol, "consensus", consensus.IoTV2, "replication protocol: simple|iot|fast|iotv2")
	cmd.Flags().DurationVar(&downFor, "down-for", 3*time.Second, "longest time the stopped follower stays down")
	cmd.Flags().Int64Var(&rate, "rate", 500_000, "offered load in points/s, so that the story can be watched (0: as fast as possible)")
	return cmd
}

// demoDirs are what a demo leaves in its directory: a replica's data each.
var demoDirs = map[string]bool{"n1": true, "n2": true, "n3": true}

// clearDemoDir readies --dir for a demo: a missing or empty directory is used as is, a
// previous demo's data (only n1, n2, n3) is removed, anything else is refused, untouched.
func clearDemoDir(w io.Writer, dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("--dir: %w", err)
	}
	for _, e := range entries {
		if !demoDirs[e.Name()] || !e.IsDir() {
			return fmt.Errorf("--dir %s holds %s, which is not a previous demo's: give an empty or new directory", dir, e.Name())
		}
	}
	if len(entries) > 0 {
		fmt.Fprintf(w, "removing the previous demo's data in %s\n", dir)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("--dir: %w", err)
		}
	}
	return nil
}

type demoConfig struct {
	dir      string
	points   int64
	comp     tsfile.Compression
	dur      walDurability
	protocol string
	downFor  time.Duration
	rate     int64
}

// demoCluster is the demo's replica set: a leader and two followers in one process; a
// follower can be stopped (its replica answers "down") and restarted.
type demoCluster struct {
	mu        sync.Mutex
	leader    *engine.Region
	followers map[string]*engine.Region
	down      map[string]bool
	set       *consensus.ReplicaSet
}

func (d *demoCluster) resolve(id string) (*engine.Region, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.down[id] {
		return nil, fmt.Errorf("node %s is down", id)
	}
	if r := d.followers[id]; r != nil {
		return r, nil
	}
	return nil, fmt.Errorf("no replica %s", id)
}

func (d *demoCluster) setDown(id string, v bool) {
	d.mu.Lock()
	d.down[id] = v
	d.mu.Unlock()
}

func runDemo(cmd *cobra.Command, c demoConfig) error {
	out := cmd.OutOrStdout()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	proto, err := consensus.New(c.protocol, consensus.Options{SealInterval: time.Second, BacklogLimit: 2 << 20, BacklogTimeout: time.Second, MaxPendingEvents: 64})
	if err != nil {
		return err
	}
	nodes := []string{"n1", "n2", "n3"}
	if c.protocol == consensus.Simple {
		nodes = nodes[:1]
	}
	fmt.Fprintf(out, "Weir demo: root.demo on %d replica(s) with %s consensus, in %s\n", len(nodes), c.protocol, c.dir)
	fmt.Fprintf(out, "  durability %s, TsFile compression %s, offered load %d points/s\n", c.dur, c.comp, c.rate)
	lo := engine.Options{Dir: filepath.Join(c.dir, "n1", "root.demo-0"), Name: "root.demo/0", Origin: 1, Durability: c.dur, Compression: c.comp, MemtableSize: 4 << 20}
	proto.LeaderOptions(&lo)
	leader, err := engine.Open(lo)
	if err != nil {
		return err
	}
	defer leader.Close()
	dc := &demoCluster{leader: leader, followers: map[string]*engine.Region{}, down: map[string]bool{}}
	var fs []consensus.Follower
	for i, id := range nodes[1:] {
		r, err := engine.Open(engine.Options{Dir: filepath.Join(c.dir, id, "root.demo-0"), Name: "root.demo/0", Origin: uint32(i + 2), Durability: c.dur, Compression: c.comp})
		if err != nil {
			return err
		}
		defer r.Close()
		dc.followers[id] = r
		fs = append(fs, consensus.LocalFollower(id))
	}
	set, err := consensus.Open(consensus.SetOptions{Name: "root.demo/0", Protocol: proto, Leader: leader, Followers: fs,
		PipesDir: filepath.Join(c.dir, "n1", "replication"), Resolve: dc.resolve, Logger: quiet})
	if err != nil {
		return err
	}
	defer set.Close()
	dc.set = set

	// a user pipe beside replication: a hybrid write-back copy into root.copy
	cp, err := engine.Open(engine.Options{Dir: filepath.Join(c.dir, "n1", "root.copy-0"), Name: "root.copy/0", Origin: 9, Durability: c.dur, Compression: c.comp})
	if err != nil {
		return err
	}
	defer cp.Close()
	mgr, err := pipe.NewManager(pipe.ManagerOptions{
		Dir:           filepath.Join(c.dir, "n1", "pipes"),
		SourceRegions: func(*pipe.Spec) ([]*engine.Region, error) { return []*engine.Region{leader}, nil },
		Databases: func(name string) (*engine.Region, error) {
			if name == "root.copy" {
				return cp, nil
			}
			return nil, fmt.Errorf("no database %s in the demo (root.copy only)", name)
		},
		Logger: quiet,
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
	// export: an embedded Kafka broker and an exactly-once pipe into it
	kctx, kcancel := context.WithCancel(context.Background())
	defer kcancel()
	broker, stopBroker, err := kafkaserve.Serve(kctx, kafkaserve.Options{Listen: "127.0.0.1:0", Partitions: 2, Logger: quiet})
	if err != nil {
		return fmt.Errorf("embedded kafka: %w", err)
	}
	defer stopBroker()
	kspec, err := pipe.ParseSpec([]byte(fmt.Sprintf(demoKafkaPipe, broker)))
	if err != nil {
		return err
	}
	if err := mgr.Create(kspec, true); err != nil {
		return err
	}
	if err := mgr.Start("demo-kafka"); err != nil {
		return err
	}
	if len(nodes) > 1 {
		fmt.Fprintf(out, "  replication pipes: n1 → n2, n1 → n3 (source %s)\n", proto.Source().Plugin)
	}
	fmt.Fprintf(out, "  user pipes: demo-copy (hybrid → write-back root.copy), demo-kafka (hybrid → kafka %s, exactly-once)\n\n", broker)

	gen := &workload.Generator{Database: "root.demo", Devices: 100, RowsPerTablet: 1000, Start: 1_732_530_000_000, Step: 1000}
	per := int64(gen.PointsPerTablet())
	tablets := max((c.points+per-1)/per, 1)
	total := tablets * per

	// lag samples of each follower, while the load runs and until catch-up
	samples := map[string][]float64{}
	var sampleMu sync.Mutex
	stopSampling := make(chan struct{})
	sampler := pool.New()
	sampler.Go(func() {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-t.C:
			}
			st := set.Status()
			sampleMu.Lock()
			for _, f := range st.Followers {
				if f.Phase == pipe.PhaseRunning && f.LastError == "" {
					samples[f.ID] = append(samples[f.ID], f.LagSeconds)
				}
			}
			sampleMu.Unlock()
		}
	})
	var stopOnce sync.Once
	stopSampler := func() {
		stopOnce.Do(func() {
			close(stopSampling)
			sampler.Wait()
		})
	}
	defer stopSampler()

	prog := newProgress(cmd.ErrOrStderr(), total, "writing points")
	var written, rejected, offered atomic.Int64
	var blocked atomic.Int64 // ns writes spent waiting for admission
	start := time.Now()
	ch := make(chan *tsfile.Tablet, 8)
	p := pool.New().WithErrors().WithContext(context.Background())
	for w := 0; w < 2; w++ {
		p.Go(func(ctx context.Context) error {
			for t := range ch {
				if c.rate > 0 { // pace the offered load
					due := start.Add(time.Duration(float64(offered.Add(int64(t.Points()))) / float64(c.rate) * float64(time.Second)))
					if d := time.Until(due); d > 0 {
						time.Sleep(d)
					}
				}
				for {
					t0 := time.Now()
					_, err := set.Write(ctx, t)
					if err == nil {
						break
					}
					blocked.Add(int64(time.Since(t0)))
					if !isBacklog(err) {
						t.Release()
						return err
					}
					rejected.Add(1) // iot: the write is rejected; the client retries it
				}
				n := int64(t.Points())
				t.Release()
				written.Add(n)
				prog.add(n)
			}
			return nil
		})
	}
	// the story: a follower stops at a third of the load and comes back at two thirds (or
	// after --down-for, whichever is first: under iot, writes stall while it is down)
	var events []string
	var evMu sync.Mutex
	note := func(format string, a ...any) {
		evMu.Lock()
		events = append(events, fmt.Sprintf("%6.2fs  ", time.Since(start).Seconds())+fmt.Sprintf(format, a...))
		evMu.Unlock()
	}
	story := pool.New()
	storyDone := make(chan struct{})
	if len(nodes) > 1 {
		story.Go(func() {
			carrier := ""
			watch := func() { // note n3's carrier switches as they happen
				for _, f := range set.Status().Followers {
					if f.ID == "n3" && f.Carrier != "" && f.Carrier != carrier {
						if carrier != "" {
							note("n3 carrier %s → %s (%s)", carrier, f.Carrier, f.LastSwitch)
						}
						carrier = f.Carrier
					}
				}
			}
			wait := func(cond func() bool, limit time.Duration) {
				deadline := time.Now().Add(limit)
				for !cond() && time.Now().Before(deadline) {
					watch()
					select {
					case <-storyDone:
						return
					case <-time.After(5 * time.Millisecond):
					}
				}
			}
			wait(func() bool { return written.Load() >= total/3 }, 10*time.Minute)
			dc.setDown("n3", true)
			note("n3 stopped (at %d points written)", written.Load())
			downAt := time.Now()
			wait(func() bool { return written.Load() >= 2*total/3 }, c.downFor)
			for _, f := range set.Status().Followers {
				if f.ID == "n3" {
					note("n3 while down: carrier %s, switches %d, WAL held %s, lag %d events", f.Carrier, f.Switches, humanBytes(f.PinnedWALBytes), f.LagEvents)
				}
			}
			dc.setDown("n3", false)
			note("n3 restarted after %s (at %d points written)", time.Since(downAt).Round(time.Millisecond), written.Load())
			wait(func() bool { return false }, 10*time.Minute) // keep watching until the load ends
		})
	}
	for i := int64(0); i < tablets; i++ {
		ch <- gen.Next()
	}
	close(ch)
	werr := p.Wait()
	writeDur := time.Since(start)
	prog.finish()
	close(storyDone)
	story.Wait()
	if werr != nil {
		return werr
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := set.WaitCaughtUp(ctx); err != nil {
		return err
	}
	if len(nodes) > 1 {
		note("every follower caught up")
	}
	for _, name := range []string{"demo-copy", "demo-kafka"} {
		if err := waitCaughtUp(mgr, name, 2*time.Minute); err != nil {
			return err
		}
	}
	stopSampler()
	if err := leader.Flush(); err != nil {
		return err
	}

	for _, e := range events {
		fmt.Fprintln(out, e)
	}
	// query one device back
	dev := gen.Device(7)
	pat, _ := tsfile.ParsePattern(dev)
	rows := 0
	var first arrow.Record
	err = leader.Scan(engine.Query{Pattern: pat}, func(_ string, rec arrow.Record) error {
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

	ld, err := leader.Digest()
	if err != nil {
		return err
	}
	st := leader.Stats()
	raw := total*8 + (total/int64(len(workload.Columns)))*8
	fmt.Fprintln(out, "\nsummary")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  points written\t%d in %s: %.0f points/s\n", total, writeDur.Round(time.Millisecond), float64(total)/writeDur.Seconds())
	if r := rejected.Load(); r > 0 || blocked.Load() > 0 {
		fmt.Fprintf(tw, "  writes blocked\t%d rejected after waiting (backlog limit), %s spent waiting\n", r, time.Duration(blocked.Load()).Round(time.Millisecond))
	}
	fmt.Fprintf(tw, "  leader tsfiles\t%d (%s), compression %.1fx\n", st.Files, humanBytes(st.FileBytes), float64(raw)/float64(max(st.FileBytes, 1)))
	fmt.Fprintf(tw, "  digest n1 (leader)\t%s (%d points)\n", ld.Hash, ld.Points)
	equal := true
	for _, id := range nodes[1:] {
		d, err := dc.followers[id].Digest()
		if err != nil {
			return err
		}
		mark := "equal"
		if d != ld {
			mark, equal = "DIFFERENT", false
		}
		fmt.Fprintf(tw, "  digest %s\t%s (%d points): %s\n", id, d.Hash, d.Points, mark)
	}
	cd, err := cp.Digest()
	if err != nil {
		return err
	}
	mark := "equal"
	if cd != ld {
		mark, equal = "DIFFERENT", false
	}
	fmt.Fprintf(tw, "  digest root.copy\t%s (%d points): %s\n", cd.Hash, cd.Points, mark)
	tw.Flush()

	if len(nodes) > 1 {
		fmt.Fprintln(out, "\nreplication")
		tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  FOLLOWER\tCARRIER\tSWITCHES\tLAG P50\tLAG P99\tTABLET BYTES\tFILE BYTES\tRETRIES")
		for _, f := range set.Status().Followers {
			p50, p99 := percentiles(samples[f.ID])
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\t%s\t%s\t%s\t%d\n", f.ID, f.Carrier, f.Switches,
				fmtSeconds(p50), fmtSeconds(p99), humanBytes(f.TabletBytes), humanBytes(f.FileBytes), f.Retries)
		}
		tw.Flush()
		for _, f := range set.Status().Followers {
			if f.LastSwitch != "" {
				fmt.Fprintf(out, "  %s last switch: %s\n", f.ID, f.LastSwitch)
			}
		}
	}
	fmt.Fprintln(out, "\nuser pipes")
	printPipeTable(out, mgr.List())
	records, err := countKafka(broker, "weir.root.demo")
	if err != nil {
		return fmt.Errorf("read back from kafka: %w", err)
	}
	fmt.Fprintf(out, "\nkafka: %d records in topic weir.root.demo (one per row, read_committed), broker %s\n", records, broker)
	fmt.Fprintln(out, "  the demo's broker stops with it; to keep one and consume with any Kafka client:")
	fmt.Fprintln(out, "    go run ./cmd/pipectl kafka serve --listen 127.0.0.1:9092 --data /tmp/weir-kafka")
	fmt.Fprintln(out, "    kcat -b 127.0.0.1:9092 -C -t weir.root.demo -X isolation.level=read_committed   (see examples/kafka-export)")
	fmt.Fprintf(out, "\ndata in %s\n", c.dir)
	if fl := leader.Files(); len(fl) > 0 {
		fmt.Fprintf(out, "inspect a TsFile: go run ./cmd/pipectl tsfile inspect %s\n", leader.FilePath(fl[0].Name))
	}
	if !equal {
		return fmt.Errorf("a replica's digest differs from the leader's")
	}
	return nil
}

func isBacklog(err error) bool {
	return errors.Is(err, consensus.ErrBacklog)
}

func percentiles(xs []float64) (float64, float64) {
	if len(xs) == 0 {
		return 0, 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	at := func(q float64) float64 { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return at(0.50), at(0.99)
}

func fmtSeconds(s float64) string {
	if s < 1 {
		return fmt.Sprintf("%.0fms", s*1000)
	}
	return fmt.Sprintf("%.2fs", s)
}

// demoPipe is the demo's user pipe: low selector thresholds so that bursts of writes make
// it degrade to files and come back.
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

// demoKafkaPipe exports root.demo to the embedded broker, exactly once.
const demoKafkaPipe = `
name: demo-kafka
source: {plugin: hybrid, pattern: root.demo.**}
sink:
  plugin: kafka
  brokers: "%s"
  topic: weir.{database}
  format: json
  delivery: exactly-once
`

// countKafka counts the committed records of a topic.
func countKafka(broker, topic string) (int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	var want int64
	ends.Each(func(o kadm.ListedOffset) { want += o.Offset })
	var n int64
	for n < want && ctx.Err() == nil {
		// end offsets count transaction markers too: stop when a poll comes back empty
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		fs := cl.PollFetches(pctx)
		pcancel()
		got := int64(fs.NumRecords())
		n += got
		if got == 0 {
			break
		}
		if err := fs.Err0(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return n, err
		}
	}
	return n, nil
}

// waitCaughtUp waits until the pipe has committed everything its region holds.
func waitCaughtUp(m *pipe.Manager, name string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		st, err := m.Describe(name)
		if err != nil {
			return err
		}
		if len(st.Regions) > 0 && st.LagEvents == 0 && st.InFlightEvents == 0 && st.CommittedEvents > 0 {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	st, _ := m.Describe(name)
	return fmt.Errorf("pipe %s did not catch up in %s (lag %d events, last error %q)", name, limit, st.LagEvents, st.LastError)
}

func printRows(w io.Writer, rec arrow.Record, n int) {
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
