package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	pq "github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/engine/wal"
	"github.com/weir-dev/weir/pipe"
	parquetsink "github.com/weir-dev/weir/pipe/connector/parquet"
	"github.com/weir-dev/weir/tsfile"
	"github.com/weir-dev/weir/workload"
)

// ParquetConfig configures Parquet.
type ParquetConfig struct {
	Dir         string
	Points      int64
	Compression string // zstd (default), snappy or none
	Rounds      int    // default 3; figures are medians over rounds
	// Progress, if set, is told what the benchmark does.
	Progress func(phase string)
}

// rawRow is a row of the workload's five measurements, for the raw parquet-go baseline:
// the same schema as the sink's (device, time, then the measurements sorted by name).
type rawRow struct {
	Device   string   `parquet:"device,dict"`
	Time     int64    `parquet:"time,timestamp(millisecond),delta"`
	Count    *int64   `parquet:"count,optional"`
	Ok       *bool    `parquet:"ok,optional"`
	Pressure *float32 `parquet:"pressure,optional"`
	State    *int32   `parquet:"state,optional"`
	Temp     *float64 `parquet:"temp,optional"`
}

// Parquet measures the parquet sink against raw parquet-go writes of the same rows, one file
// each with the same schema, compression and row-group size, fsynced, in the same run:
//
//   - raw GenericWriter (the baseline of every figure): a struct per row, rows built
//     beforehand;
//   - raw column writes (a second points/s baseline): parquet-go's column writers fed
//     values converted from the same Arrow columns as it goes, the least a writer fed
//     Arrow data must do;
//
// and the figures measured:
//
//   - parquet-sink: the sink alone, fed the workload's tablets as events in batches of
//     256 (the pipe's default), acknowledging at roll, until every file is finished;
//   - parquet-pipe: a wal → parquet pipe draining the same tablets from a region's
//     memtable until every event is committed. The sink is wrapped to finish its files
//     when the region's last event arrives (a pipe's sink cannot know that its source is
//     drained, and would otherwise wait for roll-interval).
//
// Points/s, MB/s of rows exported (their Arrow size) and Parquet bytes per point are
// reported for each. Each round runs both raw writes before and after the sink and the
// pipe, and takes their mean; values are medians over rounds, ratios the medians of the
// per-round ratios.
func Parquet(cfg ParquetConfig) ([]Result, error) {
	if cfg.Points <= 0 {
		return nil, fmt.Errorf("points must be > 0")
	}
	if cfg.Compression == "" {
		cfg.Compression = "zstd"
	}
	codec, err := parquetsink.Codec(cfg.Compression)
	if err != nil {
		return nil, err
	}
	if cfg.Rounds <= 0 {
		cfg.Rounds = 3
	}
	gen := &workload.Generator{Database: "root.bench", Devices: 100, RowsPerTablet: 1000, Start: 1_700_000_000_000, Step: 1000, Columns: workload.Columns}
	tablets, per, release := generate(gen, cfg.Points)
	defer release()
	n := len(tablets)
	total := float64(int64(n) * per)
	var srcBytes float64
	for _, t := range tablets {
		for _, c := range t.Rec.Columns() {
			for _, b := range c.Data().Buffers() {
				if b != nil {
					srcBytes += float64(b.Len())
				}
			}
		}
	}
	rows := rawRows(tablets)
	registerBenchSink()

	// Each round measures both raw writes before and after the sink and the pipe, so that
	// a round's ratios compare runs made close together (on a shared machine load drifts
	// within seconds); ratios are medians of the per-round ratios.
	var rawD, colD, sinkD, pipeD []time.Duration
	var rawB, sinkB, pipeB int64
	raws := func(dir string) (time.Duration, time.Duration, error) {
		d, b, err := rawParquetWrite(filepath.Join(dir, "raw"), rows, pq.Compression(codec))
		if err != nil {
			return 0, 0, fmt.Errorf("raw parquet-go write: %w", err)
		}
		rawB = b
		dc, _, err := rawColumnWrite(filepath.Join(dir, "columns"), tablets, codec)
		if err != nil {
			return 0, 0, fmt.Errorf("raw parquet-go column write: %w", err)
		}
		return d, dc, nil
	}
	for round := 0; round < cfg.Rounds; round++ {
		dir := filepath.Join(cfg.Dir, fmt.Sprintf("round%d", round))
		tell(cfg.Progress, "round %d/%d: raw parquet-go, the sink, the pipe", round+1, cfg.Rounds)
		r1, c1, err := raws(dir)
		if err != nil {
			return nil, err
		}
		d, b, err := sinkRound(filepath.Join(dir, "sink"), tablets, cfg.Compression)
		if err != nil {
			return nil, fmt.Errorf("parquet sink: %w", err)
		}
		sinkD, sinkB = append(sinkD, d), b
		d, b, err = parquetPipeRound(filepath.Join(dir, "pipe"), tablets, cfg.Compression)
		if err != nil {
			return nil, fmt.Errorf("parquet pipe: %w", err)
		}
		pipeD, pipeB = append(pipeD, d), b
		r2, c2, err := raws(dir)
		if err != nil {
			return nil, err
		}
		rawD, colD = append(rawD, (r1+r2)/2), append(colD, (c1+c2)/2)
		if err := os.RemoveAll(dir); err != nil {
			return nil, err
		}
	}
	const mb = 1e6
	base := "raw parquet-go GenericWriter, same rows/schema/" + cfg.Compression
	colBase := "raw parquet-go column writes from the same Arrow columns, " + cfg.Compression
	rate := func(ds []time.Duration) float64 { return total / median(ds).Seconds() }
	// the median over rounds of base[i]/d[i] (a ratio of durations is a ratio of rates)
	ratio := func(d, base []time.Duration) float64 {
		rs := make([]time.Duration, len(d))
		for i := range d {
			rs[i] = time.Duration(float64(time.Second) * base[i].Seconds() / d[i].Seconds())
		}
		return median(rs).Seconds()
	}
	var out []Result
	for _, s := range []struct {
		name  string
		d     []time.Duration
		bytes int64
	}{{"parquet-sink", sinkD, sinkB}, {"parquet-pipe", pipeD, pipeB}} {
		r := result(s.name, "points_per_second", "points/s", base, rate(s.d), rate(rawD))
		r.Ratio = ratio(s.d, rawD)
		rc := result(s.name, "points_per_second", "points/s", colBase, rate(s.d), rate(colD))
		rc.Ratio = ratio(s.d, colD)
		rm := result(s.name, "mb_per_second", "MB/s", base, rate(s.d)/total*srcBytes/mb, rate(rawD)/total*srcBytes/mb)
		rm.Ratio = r.Ratio
		out = append(out, r, rc, rm,
			result(s.name, "bytes_per_point", "B/point", base, float64(s.bytes)/total, float64(rawB)/total))
	}
	return out, nil
}

// rawRows converts the tablets into the baseline's rows (outside its timing). The values
// the rows point to live in a few large arrays, so that the garbage collector scans little.
func rawRows(tablets []*tsfile.Tablet) []rawRow {
	total := 0
	for _, t := range tablets {
		total += t.Rows()
	}
	rows := make([]rawRow, 0, total)
	counts, oks := make([]int64, total), make([]bool, total)
	pressures, states, temps := make([]float32, total), make([]int32, total), make([]float64, total)
	for _, t := range tablets {
		rec := t.Rec
		idx := map[string]int{}
		for i, f := range rec.Schema().Fields() {
			idx[f.Name] = i
		}
		for r, ts := range t.Times() {
			k := len(rows)
			row := rawRow{Device: t.Device, Time: ts}
			if a, ok := rec.Column(idx["count"]).(*array.Int64); ok && a.IsValid(r) {
				counts[k] = a.Value(r)
				row.Count = &counts[k]
			}
			if a, ok := rec.Column(idx["ok"]).(*array.Boolean); ok && a.IsValid(r) {
				oks[k] = a.Value(r)
				row.Ok = &oks[k]
			}
			if a, ok := rec.Column(idx["pressure"]).(*array.Float32); ok && a.IsValid(r) {
				pressures[k] = a.Value(r)
				row.Pressure = &pressures[k]
			}
			if a, ok := rec.Column(idx["state"]).(*array.Int32); ok && a.IsValid(r) {
				states[k] = a.Value(r)
				row.State = &states[k]
			}
			if a, ok := rec.Column(idx["temp"]).(*array.Float64); ok && a.IsValid(r) {
				temps[k] = a.Value(r)
				row.Temp = &temps[k]
			}
			rows = append(rows, row)
		}
	}
	return rows
}

// rawColumnWrite writes the tablets to one file through parquet-go's column writers, values
// converted from the Arrow columns as it goes (the least a writer fed Arrow data must do),
// with the sink's schema and writer options, and fsyncs it.
func rawColumnWrite(dir string, tablets []*tsfile.Tablet, codec compress.Codec) (time.Duration, int64, error) {
	schema, err := parquetsink.Schema(workload.Columns, parquetsink.Millisecond)
	if err != nil {
		return 0, 0, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, 0, err
	}
	path := filepath.Join(dir, "columns.parquet")
	runtime.GC()
	start := time.Now()
	f, err := os.Create(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	w := pq.NewGenericWriter[any](f, schema, pq.Compression(codec), pq.MaxRowsPerRowGroup(parquetsink.DefaultRowGroupSize),
		pq.WriteBufferSize(256<<10), pq.DictionaryMaxBytes(1<<20))
	cw := w.ColumnWriters()
	names := []string{"count", "ok", "pressure", "state", "temp"} // the schema's order after device, time
	var vals []pq.Value
	groupRows := 0
	for _, t := range tablets {
		rec := t.Rec
		n := t.Rows()
		if cap(vals) < n {
			vals = make([]pq.Value, n)
		}
		vals = vals[:n]
		dev := pq.ByteArrayValue([]byte(t.Device))
		dev.SetColumnIndex(0)
		for i := range vals {
			vals[i] = dev
		}
		if _, err := cw[0].WriteRowValues(vals); err != nil {
			return 0, 0, err
		}
		for i, ts := range t.Times() {
			vals[i] = pq.Int64Value(ts)
			vals[i].SetColumnIndex(1)
		}
		if _, err := cw[1].WriteRowValues(vals); err != nil {
			return 0, 0, err
		}
		fields := rec.Schema().Fields()
		for ci, name := range names {
			var a arrow.Array
			for k, fl := range fields {
				if fl.Name == name {
					a = rec.Column(k)
				}
			}
			switch a := a.(type) {
			case *array.Int64:
				for i, v := range a.Int64Values() {
					vals[i] = pq.Int64Value(v)
				}
			case *array.Boolean:
				for i := range vals {
					vals[i] = pq.BooleanValue(a.Value(i))
				}
			case *array.Float32:
				for i, v := range a.Float32Values() {
					vals[i] = pq.FloatValue(v)
				}
			case *array.Int32:
				for i, v := range a.Int32Values() {
					vals[i] = pq.Int32Value(v)
				}
			case *array.Float64:
				for i, v := range a.Float64Values() {
					vals[i] = pq.DoubleValue(v)
				}
			default:
				return 0, 0, fmt.Errorf("column %s: unexpected %T", name, a)
			}
			for i := range vals {
				if a.NullN() > 0 && a.IsNull(i) {
					vals[i] = pq.Value{}
				} else {
					vals[i].SetDefinitionLevel(1)
				}
				vals[i].SetColumnIndex(ci + 2)
			}
			if _, err := cw[ci+2].WriteRowValues(vals); err != nil {
				return 0, 0, err
			}
		}
		if groupRows += n; groupRows >= parquetsink.DefaultRowGroupSize {
			if err := w.Flush(); err != nil {
				return 0, 0, err
			}
			groupRows = 0
		}
	}
	if err := w.Close(); err != nil {
		return 0, 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, 0, err
	}
	d := time.Since(start)
	st, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	return d, st.Size(), nil
}

// rawParquetWrite writes rows to one file with parquet-go's GenericWriter, with the sink's
// writer options, and fsyncs it.
func rawParquetWrite(dir string, rows []rawRow, codec pq.WriterOption) (time.Duration, int64, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, 0, err
	}
	path := filepath.Join(dir, "raw.parquet")
	runtime.GC()
	start := time.Now()
	f, err := os.Create(path)
	if err != nil {
		return 0, 0, err
	}
	w := pq.NewGenericWriter[rawRow](f, codec, pq.MaxRowsPerRowGroup(parquetsink.DefaultRowGroupSize),
		pq.WriteBufferSize(256<<10), pq.DictionaryMaxBytes(1<<20))
	for i := 0; i < len(rows); i += 4096 {
		if _, err := w.Write(rows[i:min(i+4096, len(rows))]); err != nil {
			f.Close()
			return 0, 0, err
		}
	}
	if err := w.Close(); err != nil {
		f.Close()
		return 0, 0, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return 0, 0, err
	}
	if err := f.Close(); err != nil {
		return 0, 0, err
	}
	d := time.Since(start)
	st, err := os.Stat(path)
	if err != nil {
		return 0, 0, err
	}
	return d, st.Size(), nil
}

// sinkRound feeds the tablets to the sink as events and waits for every acknowledgement.
func sinkRound(dir string, tablets []*tsfile.Tablet, compression string) (time.Duration, int64, error) {
	events := make([]*pipe.Event, len(tablets))
	for i, t := range tablets {
		events[i] = &pipe.Event{Kind: pipe.KindTablet, CommitID: uint64(i + 1), Region: "bench", MinIndex: uint64(i + 1), MaxIndex: uint64(i + 1), Tablet: t}
	}
	c := parquetsink.New(parquetsink.Options{})
	params := pipe.NewParams(map[string]string{parquetsink.ParamPath: dir, parquetsink.ParamCompression: compression, parquetsink.ParamRollInterval: "0"})
	runtime.GC()
	start := time.Now()
	if err := c.Open(context.Background(), &pipe.Env{Pipe: "bench", Params: params, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}); err != nil {
		return 0, 0, err
	}
	acked := 0
	ack := func(ids ...uint64) { acked += len(ids) } // called with the sink's batch done, from this goroutine
	for i := 0; i < len(events); i += pipe.DefaultBatchMaxEvents {
		if err := c.SendAsync(context.Background(), events[i:min(i+pipe.DefaultBatchMaxEvents, len(events))], ack); err != nil {
			c.Close()
			return 0, 0, err
		}
	}
	if err := c.Flush(); err != nil {
		c.Close()
		return 0, 0, err
	}
	d := time.Since(start)
	if err := c.Close(); err != nil {
		return 0, 0, err
	}
	if acked != len(events) {
		return 0, 0, fmt.Errorf("%d of %d events acknowledged", acked, len(events))
	}
	b, err := dirBytes(dir)
	return d, b, err
}

// parquetPipeRound writes the tablets into a region (memtable only), then times a wal →
// parquet pipe draining them.
func parquetPipeRound(dir string, tablets []*tsfile.Tablet, compression string) (time.Duration, int64, error) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	r, err := engine.Open(engine.Options{Dir: filepath.Join(dir, "region"), Durability: wal.Async, FlushAge: -1, MemtableSize: 4 << 30, Logger: log})
	if err != nil {
		return 0, 0, err
	}
	defer r.Close()
	for _, t := range tablets {
		if _, err := r.Write(t); err != nil {
			return 0, 0, err
		}
	}
	if err := r.SyncWAL(); err != nil {
		return 0, 0, err
	}
	mgr, err := pipe.NewManager(pipe.ManagerOptions{Dir: filepath.Join(dir, "pipes"), Logger: log,
		SourceRegions: func(*pipe.Spec) ([]*engine.Region, error) { return []*engine.Region{r}, nil }})
	if err != nil {
		return 0, 0, err
	}
	defer mgr.Close()
	out := filepath.Join(dir, "out")
	spec, err := pipe.ParseSpec([]byte(fmt.Sprintf("name: export\nsource: {plugin: wal}\nsink: {plugin: %s, path: %q, compression: %s, end-index: %d}\n",
		benchSinkName, out, compression, r.LastIndex())))
	if err != nil {
		return 0, 0, err
	}
	runtime.GC()
	start := time.Now()
	if err := mgr.Create(spec, false); err != nil {
		return 0, 0, err
	}
	if err := mgr.Start("export"); err != nil {
		return 0, 0, err
	}
	if err := waitDrained(mgr, "export", 5*time.Minute); err != nil {
		return 0, 0, err
	}
	d := time.Since(start)
	if err := mgr.Stop("export"); err != nil {
		return 0, 0, err
	}
	b, err := dirBytes(out)
	return d, b, err
}

// dirBytes sums the sizes of the finished Parquet files under dir.
func dirBytes(dir string) (int64, error) {
	var n int64
	err := filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if !fi.IsDir() && filepath.Ext(path) == ".parquet" {
			n += fi.Size()
		}
		return nil
	})
	return n, err
}

const benchSinkName = "parquet-bench"

var benchSinkOnce sync.Once

// registerBenchSink registers the parquet sink wrapped to finish its files once the event
// at end-index arrives (for parquet-pipe).
func registerBenchSink() {
	benchSinkOnce.Do(func() {
		pipe.RegisterConnector(pipe.PluginInfo{
			Name: benchSinkName,
			Doc:  "parquet sink that finishes its files at a known last WAL index (pipectl bench parquet)",
			Params: append([]pipe.ParamSpec{{Key: "end-index", Type: pipe.Int, Required: true, Doc: "WAL index of the last event"}},
				parquetsink.Params...),
		}, func() pipe.Connector { return &benchSink{Connector: parquetsink.New(parquetsink.Options{})} })
	})
}

type benchSink struct {
	*parquetsink.Connector
	end uint64
}

func (b *benchSink) Open(ctx context.Context, env *pipe.Env) error {
	b.end = uint64(env.Params.Int("end-index"))
	return b.Connector.Open(ctx, env)
}

func (b *benchSink) SendAsync(ctx context.Context, batch []*pipe.Event, ack func(ids ...uint64)) error {
	if err := b.Connector.SendAsync(ctx, batch, ack); err != nil {
		return err
	}
	if len(batch) > 0 && batch[len(batch)-1].MaxIndex >= b.end {
		return b.Connector.Flush()
	}
	return nil
}
