package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/engine/wal"
	"github.com/weir-dev/weir/pipe"
	_ "github.com/weir-dev/weir/pipe/connector/peer" // peer sink
	"github.com/weir-dev/weir/pipe/receiver"
	"github.com/weir-dev/weir/tsfile"
	"github.com/weir-dev/weir/workload"
)

// PeerConfig configures Peer.
type PeerConfig struct {
	Dir    string
	Points int64
	// Rounds of each measurement; figures are medians (default 3).
	Rounds int
	// Compressor of the peer sink: none (default), lz4 or zstd.
	Compressor string
	// LagDuration is how long the lag phase writes (default 3s).
	LagDuration time.Duration
	// Progress, if set, is told what the benchmark does.
	Progress func(phase string)
}

// Peer measures the peer sink over loopback, sender and receiver in this process, against
// baselines of the same run:
//
//   - ingest alone: Region.Write of the points (batch durability, two writers);
//   - tablet mode: a hybrid (stream) pipe shipping them from the start to a receiver's
//     region as Arrow record batches (points/s delivered, until the last ack);
//   - file mode: a tsfile pipe shipping the same points flushed into TsFiles;
//   - raw loopback TCP: the bytes each mode put on the wire, written over a plain TCP
//     connection on 127.0.0.1 and discarded, and again appended to a file with the
//     receiver's fsync cadence (points/s as if they carried the same points);
//   - lag: a live stream pipe while writes are paced at half the ingest-alone rate, from each
//     write to the moment the receiver's region holds it (p50, p99); and again at a quarter
//     of the rate tablet mode delivered, a load the pipe sustains while the writes go on;
//     with each, the cores the process used meanwhile (of the machine's: on a shared
//     machine the writes and the pipe may get less than they need, and the lag grows).
//
// Both regions use batch durability and memtables that hold the whole run, so that the
// figures measure the transport and apply path, not fsync or flush.
func Peer(cfg PeerConfig) ([]Result, error) {
	if cfg.Points <= 0 {
		return nil, errors.New("points must be > 0")
	}
	if cfg.Rounds <= 0 {
		cfg.Rounds = 3
	}
	if cfg.Compressor == "" {
		cfg.Compressor = "none"
	}
	if cfg.LagDuration <= 0 {
		cfg.LagDuration = 3 * time.Second
	}
	say := func(format string, a ...any) { tell(cfg.Progress, format, a...) }
	gen := &workload.Generator{Database: "root.bench", Devices: 100, RowsPerTablet: 1000, Start: 1, Step: 1, Columns: workload.DoubleColumns}
	tablets, per, release := generate(gen, cfg.Points)
	defer release()
	n := len(tablets)
	total := float64(int64(n) * per)

	var ingestD, tabletD, fileD, ingestCores []time.Duration
	var raw [2][2][]time.Duration // [tablet, file][discard, to disk]
	var tabletBytes, fileBytes int64
	for round := 0; round < cfg.Rounds; round++ {
		dir := filepath.Join(cfg.Dir, fmt.Sprintf("round%d", round))
		say("round %d/%d: ingest, tablet mode, file mode", round+1, cfg.Rounds)
		r, err := peerRound(dir, cfg.Compressor, tablets)
		os.RemoveAll(dir)
		if err != nil {
			return nil, err
		}
		ingestD, tabletD, fileD = append(ingestD, r.ingest), append(tabletD, r.tablet), append(fileD, r.file)
		ingestCores = append(ingestCores, time.Duration(r.ingestCores*float64(time.Second)))
		tabletBytes, fileBytes = r.tabletBytes, r.fileBytes
		say("round %d/%d: raw loopback TCP", round+1, cfg.Rounds)
		for i, m := range []struct {
			bytes int64
			disk  rawSink
		}{{r.tabletBytes, rawWALBatch}, {r.fileBytes, rawFileSync}} {
			for j, sink := range []rawSink{rawDiscard, m.disk} {
				d, err := rawLoopback(filepath.Join(cfg.Dir, "raw"), m.bytes, sink)
				if err != nil {
					return nil, err
				}
				raw[i][j] = append(raw[i][j], d)
			}
		}
	}
	ingest := total / median(ingestD).Seconds()
	// the cores the ingest alone kept busy: at half its rate, the sender's writes and the
	// receiver's (the same work) need as many, before any shipping
	out := []Result{result("peer-ingest", "cpu_cores_used", "cores", "cores of the machine (ingest alone, batch)",
		median(ingestCores).Seconds(), float64(runtime.NumCPU()))}
	for i, m := range []struct {
		mode, disk string
		d          []time.Duration
		bytes      int64
	}{{"tablet", "appended, fdatasync every 10 ms", tabletD, tabletBytes}, {"file", "written, then fsync", fileD, fileBytes}} {
		v := total / median(m.d).Seconds()
		mb := float64(m.bytes) / 1e6
		out = append(out,
			result("peer-"+m.mode, "points_per_second_delivered", "points/s", "sender's ingest alone (batch)", v, ingest),
			result("peer-"+m.mode, "points_per_second_delivered", "points/s",
				fmt.Sprintf("raw loopback TCP of the same %.1f MB", mb), v, total/median(raw[i][0]).Seconds()),
			result("peer-"+m.mode, "points_per_second_delivered", "points/s",
				fmt.Sprintf("raw loopback TCP of the same %.1f MB, %s", mb, m.disk), v, total/median(raw[i][1]).Seconds()),
		)
	}
	// lag at half the ingest rate (the goal's load), and at a quarter of what tablet mode
	// delivered alone (writes and shipping then share the machine)
	// (a load the pipe sustains on this machine, for comparison)
	delivered := total / median(tabletD).Seconds()
	for _, l := range []struct {
		rate float64
		what string
	}{{ingest / 2, "half of ingest alone"}, {delivered / 4, "a quarter of tablet-mode delivery"}} {
		say("lag at %.3g points/s (%s) for %s", l.rate, l.what, cfg.LagDuration)
		lag, achieved, err := peerLag(filepath.Join(cfg.Dir, "lag"), cfg.Compressor, l.rate, cfg.LagDuration)
		os.RemoveAll(filepath.Join(cfg.Dir, "lag"))
		if err != nil {
			return nil, err
		}
		base := fmt.Sprintf("writes paced at %.3g points/s (%s); achieved", l.rate, l.what)
		out = append(out,
			Result{Bench: "peer-tablet", Metric: "lag_p50_ms", Value: lag.p50, Unit: "ms", Baseline: base, BaselineValue: achieved},
			Result{Bench: "peer-tablet", Metric: "lag_p99_ms", Value: lag.p99, Unit: "ms", Baseline: base, BaselineValue: achieved},
			// how much of the machine the process got meanwhile: on a shared machine, less
			// than its cores, and the lag grows once the writes and the pipe need more
			result("peer-tablet", "lag_cpu_cores_used", "cores", fmt.Sprintf("cores of the machine (writes at %.3g points/s)", l.rate),
				lag.cores, float64(runtime.NumCPU())),
		)
	}
	return out, nil
}

type peerTimes struct {
	ingest, tablet, file   time.Duration
	ingestCores            float64 // CPU time / wall time while ingesting alone
	tabletBytes, fileBytes int64
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openBenchRegion(dir string, origin uint32) (*engine.Region, error) {
	return engine.Open(engine.Options{Dir: dir, Name: "root.bench/0", Origin: origin, Durability: wal.Batch, FlushAge: -1,
		MemtableSize: 4 << 30, RecentBytes: 2 << 30, Logger: quietLog()})
}

// peerTarget is a receiver of a fresh region.
type peerTarget struct {
	region *engine.Region
	srv    *receiver.Server
	addr   string
	stop   func() error
}

func newPeerTarget(dir string) (*peerTarget, error) {
	r, err := openBenchRegion(dir, 2)
	if err != nil {
		return nil, err
	}
	srv, err := receiver.New(receiver.Options{Logger: quietLog(), Resolve: func(string, string) (*engine.Region, error) { return r, nil }})
	if err != nil {
		r.Close()
		return nil, err
	}
	addr, stop, err := srv.Serve(context.Background(), "127.0.0.1:0")
	if err != nil {
		r.Close()
		return nil, err
	}
	return &peerTarget{region: r, srv: srv, addr: addr, stop: stop}, nil
}

func (p *peerTarget) close() {
	p.stop()
	p.region.Close()
}

func peerRound(dir, comp string, tablets []*tsfile.Tablet) (peerTimes, error) {
	var t peerTimes
	src, err := openBenchRegion(filepath.Join(dir, "src"), 1)
	if err != nil {
		return t, err
	}
	defer src.Close()
	cpu0 := cpuTime()
	start := time.Now()
	if err := writeAll(src, tablets); err != nil {
		return t, err
	}
	t.ingest = time.Since(start)
	t.ingestCores = float64(cpuTime()-cpu0) / float64(t.ingest)
	mgr, err := pipe.NewManager(pipe.ManagerOptions{Dir: filepath.Join(dir, "pipes"), Logger: quietLog(),
		SourceRegions: func(*pipe.Spec) ([]*engine.Region, error) { return []*engine.Region{src}, nil }})
	if err != nil {
		return t, err
	}
	defer mgr.Close()

	// tablet mode: everything from the start, from the source's memory
	if t.tablet, t.tabletBytes, err = peerDrain(filepath.Join(dir, "dst-tablet"), mgr, "tablets", "{plugin: hybrid, realtime.mode: stream}", comp); err != nil {
		return t, err
	}
	// file mode: the same points, sealed
	if err := src.Flush(); err != nil {
		return t, err
	}
	if t.file, t.fileBytes, err = peerDrain(filepath.Join(dir, "dst-file"), mgr, "files", "{plugin: tsfile}", comp); err != nil {
		return t, err
	}
	return t, nil
}

// peerDrain ships the source's history to a fresh receiver and returns the time until
// the last ack and the bytes the receiver took in.
func peerDrain(dir string, mgr *pipe.Manager, name, source, comp string) (time.Duration, int64, error) {
	dst, err := newPeerTarget(dir)
	if err != nil {
		return 0, 0, err
	}
	defer dst.close()
	start := time.Now()
	if err := startPeerPipe(mgr, name, source, dst.addr, comp); err != nil {
		return 0, 0, err
	}
	if err := waitDrained(mgr, name, 10*time.Minute); err != nil {
		return 0, 0, err
	}
	d := time.Since(start)
	if err := mgr.Drop(name); err != nil {
		return 0, 0, err
	}
	return d, dst.srv.Stats().Bytes, nil
}

func startPeerPipe(m *pipe.Manager, name, source, addr, comp string) error {
	s, err := pipe.ParseSpec([]byte(fmt.Sprintf("name: %s\nsource: %s\nsink: {plugin: peer, node-urls: %q, compressor: %s}\n", name, source, addr, comp)))
	if err != nil {
		return err
	}
	if err := m.Create(s, false); err != nil {
		return err
	}
	return m.Start(name)
}

func writeAll(r *engine.Region, tablets []*tsfile.Tablet) error {
	return writeTablets(tablets, 2, regionWriter(r))
}

// rawSink is what the raw loopback reader does with the bytes.
type rawSink int

const (
	rawDiscard  rawSink = iota // drop them
	rawWALBatch                // append them to a file, fdatasync every 10 ms (a batch WAL)
	rawFileSync                // write them to a file and fsync it at the end (a loaded file)
)

// rawLoopback writes n bytes over a TCP connection on 127.0.0.1 in 1 MiB writes, the
// reader handling them as sink says, and returns the time until the reader is done.
func rawLoopback(dir string, n int64, sink rawSink) (time.Duration, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	var dst io.Writer = io.Discard
	var f *os.File
	if sink != rawDiscard {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return 0, err
		}
		if f, err = os.Create(filepath.Join(dir, "raw")); err != nil {
			return 0, err
		}
		defer os.Remove(f.Name())
		defer f.Close()
		dst = f
	}
	type res struct {
		n   int64
		err error
	}
	got := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- res{err: err}
			return
		}
		defer c.Close()
		stop := make(chan struct{})
		synced := make(chan struct{})
		if sink == rawWALBatch {
			go func() {
				defer close(synced)
				t := time.NewTicker(10 * time.Millisecond)
				defer t.Stop()
				for {
					select {
					case <-stop:
						return
					case <-t.C:
						_ = f.Sync()
					}
				}
			}()
		} else {
			close(synced)
		}
		m, err := io.CopyBuffer(dst, c, make([]byte, 1<<20))
		close(stop)
		<-synced
		if err == nil && f != nil {
			err = f.Sync()
		}
		got <- res{m, err}
	}()
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	start := time.Now()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return 0, err
	}
	for left := n; left > 0; {
		k := min(left, int64(len(buf)))
		if _, err := c.Write(buf[:k]); err != nil {
			c.Close()
			return 0, err
		}
		left -= k
	}
	c.Close()
	r := <-got
	if r.err != nil || r.n != n {
		return 0, fmt.Errorf("raw loopback: read %d of %d bytes: %v", r.n, n, r.err)
	}
	return time.Since(start), nil
}

type lagStats struct{ p50, p99, cores float64 }

// peerLag runs a live stream pipe while one writer paces 1,000-row tablets at rate points/s
// for d; each tablet's first timestamp is its write time (unix ns), read back when the
// receiver's region holds it. It returns the lag percentiles and the rate achieved.
func peerLag(dir, comp string, rate float64, d time.Duration) (lagStats, float64, error) {
	var ls lagStats
	src, err := openBenchRegion(filepath.Join(dir, "src"), 1)
	if err != nil {
		return ls, 0, err
	}
	defer src.Close()
	dst, err := newPeerTarget(filepath.Join(dir, "dst"))
	if err != nil {
		return ls, 0, err
	}
	defer dst.close()
	mgr, err := pipe.NewManager(pipe.ManagerOptions{Dir: filepath.Join(dir, "pipes"), Logger: quietLog(),
		SourceRegions: func(*pipe.Spec) ([]*engine.Region, error) { return []*engine.Region{src}, nil }})
	if err != nil {
		return ls, 0, err
	}
	defer mgr.Close()
	if err := startPeerPipe(mgr, "live", "{plugin: hybrid, realtime.mode: stream}", dst.addr, comp); err != nil {
		return ls, 0, err
	}

	// the receiver side: every tablet the region takes, with the time it took it
	sub := dst.region.Subscribe(dst.region.LastIndex() + 1)
	defer sub.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var lags []float64
	var seen int
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			en, err := sub.Next(ctx)
			if err != nil {
				return
			}
			now := time.Now().UnixNano()
			if en.Tablet != nil {
				t0 := en.Tablet.Rec.Column(0).(*array.Int64).Value(0)
				mu.Lock()
				lags = append(lags, float64(now-t0)/1e6)
				seen++
				mu.Unlock()
			}
			en.Release()
		}
	}()

	// tablets of 1,000 rows × 5 DOUBLE columns: the values are built once, the time column
	// (its first value is the write time) for each write, so that the writer keeps the pace
	const rows = 1000
	proto := (&workload.Generator{Database: "root.bench", Devices: 1, RowsPerTablet: rows, Start: 1, Step: 1, Columns: workload.DoubleColumns}).Next()
	defer proto.Release()
	schema := proto.Rec.Schema()
	perTablet := float64(rows * (len(schema.Fields()) - 1))
	cpu0 := cpuTime()
	start := time.Now()
	written := 0
	for time.Since(start) < d {
		// write what is due at rate, then wait for the next one to be due
		due := int(time.Since(start).Seconds() * rate / perTablet)
		if written >= due {
			time.Sleep(time.Until(start.Add(time.Duration(float64(written+1) * perTablet / rate * float64(time.Second)))))
			continue
		}
		t0 := time.Now().UnixNano()
		tb := array.NewInt64Builder(memory.DefaultAllocator)
		tb.Reserve(rows)
		for i := 0; i < rows; i++ {
			tb.UnsafeAppend(t0 + int64(i))
		}
		times := tb.NewArray()
		tb.Release()
		cols := append([]arrow.Array{times}, proto.Rec.Columns()[1:]...)
		tab := tsfile.NewTablet(fmt.Sprintf("root.bench.lag.d%d", written%100), array.NewRecord(schema, cols, rows))
		times.Release()
		_, err = src.Write(tab)
		tab.Release()
		if err != nil {
			return ls, 0, err
		}
		written++
	}
	achieved := float64(written) * perTablet / time.Since(start).Seconds()
	// wait (bounded) for the last writes to arrive
	deadline := time.Now().Add(time.Minute)
	for {
		mu.Lock()
		n := seen
		mu.Unlock()
		if n >= written || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cores := float64(cpuTime()-cpu0) / float64(time.Since(start))
	cancel()
	<-watched
	mu.Lock()
	defer mu.Unlock()
	if written == 0 {
		return ls, 0, fmt.Errorf("lag: no tablet was due in %s at %.3g points/s", d, rate)
	}
	if len(lags) < written {
		return ls, achieved, fmt.Errorf("lag: %d of %d tablets arrived", len(lags), written)
	}
	sort.Float64s(lags)
	pct := func(p float64) float64 { return lags[int(math.Min(float64(len(lags)-1), p*float64(len(lags))))] }
	return lagStats{p50: pct(0.50), p99: pct(0.99), cores: cores}, achieved, nil
}
