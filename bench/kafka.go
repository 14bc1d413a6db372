package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"sort"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/engine/wal"
	"github.com/weir-dev/weir/pipe"
	kafkasink "github.com/weir-dev/weir/pipe/connector/kafka"
	_ "github.com/weir-dev/weir/pipe/extractor" // wal source
	"github.com/weir-dev/weir/tsfile"
	"github.com/weir-dev/weir/workload"
)

// KafkaConfig configures Kafka.
type KafkaConfig struct {
	Dir    string // scratch directory for the pipe's region
	Points int64  // points to export (the demo workload: 5 measurements of mixed types)
	// RowsPerTablet is the rows of each event (default 100): with format json, the records
	// of one event.
	RowsPerTablet int
	// BatchEvents is the events per send (default 256, the pipe's batch.max-events): with
	// exactly-once, the events of one transaction.
	BatchEvents int
	Format      string // json (default) or arrow
	Compression string // none (default), gzip, snappy, lz4, zstd
	Rounds      int    // default 5; figures are medians over rounds, ratios medians of the rounds' ratios
	// Progress, if set, is told what the benchmark does.
	Progress func(phase string)
	// Store keeps the records in the in-process broker; by default it acknowledges and
	// discards them (kfake.BlackholeProduce), so that broker storage is out of the figures
	// of both sides.
	Store bool
	// Pipe also measures whole wal → kafka pipes draining a region.
	Pipe bool
}

func (c *KafkaConfig) fill() error {
	if c.Points <= 0 {
		return fmt.Errorf("points must be > 0")
	}
	if c.RowsPerTablet <= 0 {
		c.RowsPerTablet = 100
	}
	if c.BatchEvents <= 0 {
		c.BatchEvents = pipe.DefaultBatchMaxEvents
	}
	if c.Format == "" {
		c.Format = kafkasink.FormatJSON
	}
	if c.Compression == "" {
		c.Compression = "none"
	}
	if c.Rounds <= 0 {
		c.Rounds = 5
	}
	return nil
}

// Kafka measures the kafka sink into an in-process broker against a raw franz-go producer
// sending the same records (topic, key, headers, value bytes, as the sink encodes them) to
// the same broker in the same run, with the same producer options:
//
//   - kafka-sink-at-least-once: Connector.Send of the events in batches vs a raw
//     idempotent producer producing every record then flushing once;
//   - kafka-sink-exactly-once: the same with transactions vs a raw transactional producer
//     committing one transaction per batch of the same records;
//   - with Pipe, kafka-pipe-*: a wal → kafka pipe draining a region of the same rows.
//
// Each round runs every side once, raw and sink alternating first; the figures are medians,
// and a ratio is the median of the rounds' ratios (sink vs raw of the same round).
func Kafka(cfg KafkaConfig) ([]Result, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	gen := &workload.Generator{Database: "root.bench", Devices: 100, RowsPerTablet: cfg.RowsPerTablet, Start: 1, Step: 1}
	tablets, _, release := generate(gen, cfg.Points)
	defer release()
	n := len(tablets)
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.DefaultNumPartitions(10),
		kfake.SeedTopics(10, "root.bench")}
	if !cfg.Store {
		opts = append(opts, kfake.BlackholeProduce())
	}
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start broker: %w", err)
	}
	defer cluster.Close()
	addr := cluster.ListenAddrs()[0]
	runs := 0
	params := func(delivery string) map[string]string {
		runs++ // a progress topic per run: a discarding broker cannot give one back
		return map[string]string{"brokers": addr, "format": cfg.Format, "compression": cfg.Compression,
			"delivery": delivery, "progress.topic": fmt.Sprintf("weir-progress-%d", runs)}
	}
	// the records as the sink encodes them, batch by batch
	pcfg, err := kafkasink.ParseConfig(pipe.NewParams(params(kafkasink.AtLeastOnce)))
	if err != nil {
		return nil, err
	}
	// encoded again for each raw run, so that they are not in the heap (for the collector to
	// mark) while the sink runs
	encode := func() (batches [][]*kgo.Record, total kafkasink.Counts, err error) {
		enc := kafkasink.NewEncoder(pcfg, "bench", "region")
		for i := 0; i < n; i += cfg.BatchEvents {
			var b []*kgo.Record
			for _, t := range tablets[i:min(i+cfg.BatchEvents, n)] {
				c, err := enc.Rows(t.Device, t.Rec, "1:1", func(r *kgo.Record) error { b = append(b, r); return nil })
				if err != nil {
					return nil, total, err
				}
				total.Records += c.Records
				total.Bytes += c.Bytes
				total.Points += c.Points
			}
			batches = append(batches, b)
		}
		return batches, total, nil
	}
	batches, total, err := encode()
	if err != nil {
		return nil, err
	}
	nBatches := len(batches)
	batches = nil
	clientOpts := pcfg.ClientOptions()
	raw := func(opts []kgo.Opt, txn bool) (time.Duration, error) {
		batches, _, err := encode()
		if err != nil {
			return 0, err
		}
		return rawProduce(opts, batches, txn)
	}

	type side struct {
		name, metric string
		run          func(round int) (time.Duration, error)
	}
	sides := []side{
		{"raw-at-least-once", "", func(int) (time.Duration, error) { return raw(clientOpts, false) }},
		{"kafka-sink-at-least-once", "raw-at-least-once", func(round int) (time.Duration, error) {
			return sinkSend(params(kafkasink.AtLeastOnce), fmt.Sprintf("alo%d", round), tablets, cfg.BatchEvents)
		}},
		{"raw-exactly-once", "", func(round int) (time.Duration, error) {
			return raw(append(clientOpts, kgo.TransactionalID(fmt.Sprintf("raw%d", round))), true)
		}},
		{"kafka-sink-exactly-once", "raw-exactly-once", func(round int) (time.Duration, error) {
			return sinkSend(params(kafkasink.ExactlyOnce), fmt.Sprintf("eos%d", round), tablets, cfg.BatchEvents)
		}},
	}
	if cfg.Pipe {
		for _, d := range []string{kafkasink.AtLeastOnce, kafkasink.ExactlyOnce} {
			sides = append(sides, side{"kafka-pipe-" + d, "raw-" + d, func(round int) (time.Duration, error) {
				return kafkaPipe(filepath.Join(cfg.Dir, fmt.Sprintf("pipe-%s-%d", d, round)), params(d), tablets, cfg.BatchEvents)
			}})
		}
	}
	times := make(map[string][]time.Duration)
	for round := 0; round < cfg.Rounds; round++ {
		tell(cfg.Progress, "round %d/%d: %d sides", round+1, cfg.Rounds, len(sides))
		order := make([]int, len(sides))
		for i := range order {
			order[i] = i
		}
		if round%2 == 1 { // alternate which of raw and sink runs first
			for i := 0; i+1 < len(order); i += 2 {
				order[i], order[i+1] = order[i+1], order[i]
			}
		}
		for _, i := range order {
			runtime.GC() // each side starts with no garbage of the one before
			d, err := sides[i].run(round)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", sides[i].name, err)
			}
			times[sides[i].name] = append(times[sides[i].name], d)
		}
	}
	txnRecords := float64(total.Records) / float64(nBatches)
	var out []Result
	for _, s := range sides {
		if s.metric == "" {
			continue
		}
		d, base := median(times[s.name]).Seconds(), median(times[s.metric]).Seconds()
		baseName := fmt.Sprintf("%s franz-go producer, same %d records", s.metric, total.Records)
		if s.metric == "raw-exactly-once" {
			baseName = fmt.Sprintf("%s (%.0f records per transaction)", baseName, txnRecords)
		}
		// the ratio is the median of the rounds' own ratios: in a round the two sides run
		// back to back, so a slow spell of the machine weighs on both
		ratios := make([]time.Duration, cfg.Rounds)
		for r := range ratios {
			ratios[r] = time.Duration(float64(time.Second) * times[s.metric][r].Seconds() / times[s.name][r].Seconds())
		}
		ratio := median(ratios).Seconds()
		for _, m := range []struct {
			metric, unit string
			n            float64
		}{{"points_per_second", "points/s", float64(total.Points)}, {"records_per_second", "records/s", float64(total.Records)},
			{"mb_per_second", "MB/s", float64(total.Bytes) / 1e6}} {
			r := result(s.name, m.metric, m.unit, baseName, m.n/d, m.n/base)
			r.Ratio = ratio
			out = append(out, r)
		}
	}
	return out, nil
}

// rawProduce produces the batches with one client: all then one flush, or (txn) one
// transaction per batch.
func rawProduce(opts []kgo.Opt, batches [][]*kgo.Record, txn bool) (time.Duration, error) {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	ctx := context.Background()
	// fresh records (Produce fills in partition, offset, ...), built outside the timing
	recs := make([][]kgo.Record, len(batches))
	for i, b := range batches {
		recs[i] = make([]kgo.Record, len(b))
		for j, r := range b {
			// the same records as the sink's, their timestamps too (the sink stamps its records;
			// a record without one costs the client a clock read)
			recs[i][j] = kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value, Headers: r.Headers, Timestamp: r.Timestamp}
		}
	}
	if txn {
		if _, _, err := cl.ProducerID(ctx); err != nil {
			return 0, err
		}
	} else if err := cl.Ping(ctx); err != nil {
		return 0, err
	}
	var first error
	promise := func(_ *kgo.Record, err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	batches = nil
	runtime.GC() // the encoding's garbage is not this run's
	start := time.Now()
	for i := range recs {
		if txn {
			if err := cl.BeginTransaction(); err != nil {
				return 0, err
			}
		}
		for j := range recs[i] {
			cl.Produce(ctx, &recs[i][j], promise)
		}
		if txn {
			if err := cl.Flush(ctx); err != nil {
				return 0, err
			}
			if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
				return 0, err
			}
		}
	}
	if err := cl.Flush(ctx); err != nil {
		return 0, err
	}
	d := time.Since(start)
	return d, first
}

// sinkSend feeds the tablets to an opened kafka sink as events, BatchEvents per send, as
// the pipe's task does: SendAsync with at most the task's in-flight events unacknowledged,
// then until every event is acknowledged.
func sinkSend(params map[string]string, pipeName string, tablets []*tsfile.Tablet, batchEvents int) (time.Duration, error) {
	ctx := context.Background()
	c, err := pipe.NewConnector("kafka")
	if err != nil {
		return 0, err
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	// as a task drives it: SendAsync when the sink has it, the run failing on Env.Fail
	failed := make(chan error, 1)
	fail := func(err error) {
		select {
		case failed <- err:
		default:
		}
	}
	if err := c.Open(ctx, &pipe.Env{Pipe: pipeName, Params: pipe.NewParams(params), Logger: log, Fail: fail}); err != nil {
		return 0, err
	}
	defer c.Close()
	events := make([]*pipe.Event, len(tablets))
	for i, t := range tablets {
		events[i] = &pipe.Event{Kind: pipe.KindTablet, CommitID: uint64(i + 1), Region: "region", Tablet: t,
			Progress: pipe.ProgressIndex{1: uint64(i + 1)}, Origin: 1, OriginIndex: uint64(i + 1)}
	}
	async, _ := c.(pipe.AsyncConnector)
	var acked atomic.Int64
	all := make(chan struct{})
	room := make(chan struct{}, 1)
	ack := func(ids ...uint64) {
		if acked.Add(int64(len(ids))) == int64(len(events)) {
			close(all)
		}
		select {
		case room <- struct{}{}:
		default:
		}
	}
	// as many events in flight as a task lets out (its queue and two batches)
	maxInFlight := int64(pipe.DefaultQueueSize + 2*batchEvents)
	start := time.Now()
	for i := 0; i < len(events); i += batchEvents {
		b := events[i:min(i+batchEvents, len(events))]
		if async != nil {
			for int64(i+len(b))-acked.Load() > maxInFlight {
				select {
				case <-room:
				case err := <-failed:
					return 0, err
				}
			}
			if err := async.SendAsync(ctx, b, ack); err != nil {
				return 0, err
			}
			continue
		}
		if err := c.Send(ctx, b); err != nil {
			return 0, err
		}
	}
	if async != nil { // until every event is acknowledged
		select {
		case <-all:
		case err := <-failed:
			return 0, err
		}
	}
	return time.Since(start), nil
}

// kafkaPipe writes the tablets into a region, then times a wal → kafka pipe draining them.
func kafkaPipe(dir string, params map[string]string, tablets []*tsfile.Tablet, batchEvents int) (time.Duration, error) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	r, err := engine.Open(engine.Options{Dir: filepath.Join(dir, "region"), Name: "bench", Durability: wal.Batch, FlushAge: -1,
		MemtableSize: 4 << 30, RecentBytes: 2 << 30, Logger: log})
	if err != nil {
		return 0, err
	}
	defer r.Close()
	for _, t := range tablets {
		if _, err := r.Write(t); err != nil {
			return 0, err
		}
	}
	mgr, err := pipe.NewManager(pipe.ManagerOptions{Dir: filepath.Join(dir, "pipes"), Logger: log,
		SourceRegions: func(*pipe.Spec) ([]*engine.Region, error) { return []*engine.Region{r}, nil }})
	if err != nil {
		return 0, err
	}
	defer mgr.Close()
	sink := map[string]string{"plugin": "kafka", "batch.max-events": fmt.Sprint(batchEvents), "batch.max-bytes": "64MiB", "queue-size": "4096"}
	for k, v := range params {
		sink[k] = v
	}
	keys := make([]string, 0, len(sink))
	for k := range sink {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	spec := "name: export\nsource: {plugin: wal}\nsink:\n"
	for _, k := range keys {
		spec += fmt.Sprintf("  %s: %q\n", k, sink[k])
	}
	s, err := pipe.ParseSpec([]byte(spec))
	if err != nil {
		return 0, err
	}
	start := time.Now()
	if err := mgr.Create(s, false); err != nil {
		return 0, err
	}
	if err := mgr.Start("export"); err != nil {
		return 0, err
	}
	if err := waitDrained(mgr, "export", 5*time.Minute); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}
