// Package kafka holds the kafka sink: it exports a pipe's events to Kafka with franz-go.
//
// Each row becomes a JSON message (format json) or each record batch an Arrow IPC stream
// message (format arrow), keyed by device, on a topic named by a template such as
// "weir.{database}", with headers naming the database, device, region and progress.
//
// Delivery at-least-once (the default) uses an idempotent producer with acks from all
// in-sync replicas: a batch is acknowledged to the pipe once every record of it is, without
// draining the producer between batches (SendAsync); a restart redelivers what the pipe had
// not yet saved, so a consumer may see a row twice.
//
// Delivery exactly-once gives each task a transactional producer (id PREFIX.PIPE.REGION).
// Each batch is one transaction holding its records and the task's position (the last
// event's progress) written to a compacted progress topic under the key PIPE/REGION. On
// open the task fences its predecessor, reads its position back as a read_committed
// consumer, and skips the redelivered events that Kafka already holds: a restart or a
// crash at any point neither loses nor repeats a row for read_committed consumers. The
// transactions run in a worker goroutine, in order; SendAsync encodes the next batch while
// the previous one commits.
//
// A failure after SendAsync returned (a record the broker rejects, a commit that fails)
// fails the task through pipe.Env.Fail; the connector then refuses every later batch.
//
// Import the package for its side effect of registering the sink:
//
//	import _ "github.com/weir-dev/weir/pipe/connector/kafka"
package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/pipe"
)

func init() {
	pipe.RegisterConnector(pipe.PluginInfo{
		Name: "kafka",
		Doc: "Exports events to Kafka (franz-go): JSON rows or Arrow IPC batches, keyed by device, " +
			"at-least-once (idempotent producer) or exactly-once (transactions that also commit the pipe's progress).",
		Params:   Params,
		Validate: validate,
	}, func() pipe.Connector { return &Connector{} })
}

// Stats count what a connector has exported since it opened.
type Stats struct {
	Events       int64 // events handed to Send
	Skipped      int64 // redelivered events Kafka already held (exactly-once)
	Records      int64
	Bytes        int64 // key and value bytes
	Points       int64
	Transactions int64
	// Overlaps counts TsFiles of a memtable partly exported as tablets before (exactly-once);
	// Dropped counts their rows left out because Kafka held them already.
	Overlaps int64
	Dropped  int64
}

// Connector is the kafka sink. Use it through the pipe registry, or directly: Open, Send
// batches in order, Close.
type Connector struct {
	cfg          *Config
	log          *slog.Logger
	pipe, region string
	cl           *kgo.Client
	adm          *kadm.Client
	enc          *Encoder // the caller's
	wenc         *Encoder // the transaction worker's, for TsFiles
	created      map[string]bool

	// exactly-once
	txnID, progressKey string
	skip               *skipper
	origin             uint32 // the source region's origin id, for overlap checks
	epoch              uint64 // epoch (memtable) of the last committed data event
	epochStart         int64  // unix ms when the first transaction holding that epoch began

	fail    func(error) // Env.Fail
	closing atomic.Bool
	mu      sync.Mutex
	failed  error         // a send failed: every later call returns this
	broken  chan struct{} // closed with failed set
	// the watchdog: records handed to the client, and of them finished (promise called)
	produced atomic.Int64
	finished atomic.Int64
	stop     context.CancelFunc // ends the watchdog and the worker's transaction
	bg       context.Context
	watching sync.WaitGroup
	arenas   []*arena // free
	// exactly-once: jobs for the transaction worker
	jobs    chan *job
	lastJob *job // the last handed to the worker
	workers sync.WaitGroup

	stats struct {
		events, skipped, records, bytes, points, txns, overlaps, dropped atomic.Int64
	}
	// hook, if set (tests), is called at each step of a send; an error ends the send there
	// as a crash would: without ending the transaction.
	hook func(step string) error
}

// testHook is installed into every connector opened while it is set (tests).
var testHook atomic.Pointer[func(step string) error]

// Open implements pipe.Connector: it checks the parameters, connects, and for
// exactly-once fences the task's predecessor and reads back what it committed.
func (c *Connector) Open(ctx context.Context, env *pipe.Env) error {
	cfg, err := ParseConfig(env.Params)
	if err != nil {
		return pipe.Permanent(err)
	}
	c.cfg = cfg
	c.fail = env.Fail
	c.log = env.Logger
	if c.log == nil {
		c.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c.pipe, c.region, c.origin = env.Pipe, "region", engine.DefaultOrigin
	if env.Region != nil {
		c.region, c.origin = env.Region.Name(), env.Region.Origin()
	}
	if h := testHook.Load(); h != nil {
		c.hook = *h
	}
	c.enc = NewEncoder(cfg, c.pipe, c.region)
	c.wenc = NewEncoder(cfg, c.pipe, c.region)
	c.created = map[string]bool{}
	opts := cfg.ClientOptions()
	if cfg.ExactlyOnce {
		c.txnID = cfg.TxnPrefix + "." + c.pipe + "." + c.region
		c.progressKey = ProgressKey(c.pipe, c.region)
		opts = append(opts, kgo.TransactionalID(c.txnID), kgo.TransactionTimeout(cfg.TxnTimeout))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return pipe.Permanent(fmt.Errorf("sink kafka: %w", err))
	}
	c.cl, c.adm = cl, kadm.NewClient(cl)
	octx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	if err := cl.Ping(octx); err != nil {
		c.closeClient()
		return fmt.Errorf("sink kafka: brokers %v unreachable: %w", cfg.Brokers, err)
	}
	if cfg.ExactlyOnce {
		if err := c.openExactlyOnce(ctx); err != nil {
			c.closeClient()
			return err
		}
	}
	c.broken = make(chan struct{})
	var bg context.Context
	bg, c.stop = context.WithCancel(context.Background())
	c.watching.Add(1)
	go c.watchdog(bg)
	c.bg = bg
	return nil
}

// watchdog fails the connector when records are in flight and none has finished for the
// delivery timeout: the client keeps retrying records that it cannot fail safely (an
// idempotent producer's request without a response), so brokers that went away would
// otherwise hold the task without an error.
func (c *Connector) watchdog(ctx context.Context) {
	defer c.watching.Done()
	limit := max(c.cfg.Timeout, time.Second)
	t := time.NewTicker(limit / 4)
	defer t.Stop()
	last, since := int64(-1), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fin := c.finished.Load()
		n := c.produced.Load() - fin
		if n <= 0 || fin != last { // nothing in flight, or progress since the last look
			last, since = fin, time.Now()
			continue
		}
		if idle := time.Since(since); idle >= limit {
			c.breakWith(fmt.Errorf("sink kafka: %d records not acknowledged, none for %v (timeout): brokers %v unreachable?",
				n, idle.Round(time.Millisecond), c.cfg.Brokers), true)
			return
		}
	}
}

// breakWith records the connector's first failure (every later call returns it) and, with
// report, fails the task; it reports whether err was the first.
func (c *Connector) breakWith(err error, report bool) bool {
	c.mu.Lock()
	first := c.failed == nil
	if first {
		c.failed = err
		if c.broken != nil {
			close(c.broken)
		}
	}
	c.mu.Unlock()
	if first && report && c.fail != nil && !c.closing.Load() {
		c.fail(err)
	}
	return first
}

func (c *Connector) openExactlyOnce(ctx context.Context) error {
	cfg := c.cfg
	octx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	if cfg.CreateTopics {
		compact := "compact"
		if err := EnsureTopic(octx, c.adm, cfg.ProgressTopic, 1, cfg.Replication, map[string]*string{"cleanup.policy": &compact}); err != nil {
			return fmt.Errorf("sink kafka: progress.topic: %w", err)
		}
	}
	// InitProducerID fences the predecessor and aborts its open transaction, which would
	// otherwise hold the progress topic's stable offset back.
	if _, _, err := c.cl.ProducerID(octx); err != nil {
		return fmt.Errorf("sink kafka: init transactional producer %s: %w", c.txnID, err)
	}
	// other tasks' open transactions may hold the end back for up to their timeout
	rctx, rcancel := context.WithTimeout(ctx, cfg.Timeout+cfg.TxnTimeout)
	defer rcancel()
	pr, err := ReadProgress(rctx, c.cl, cfg.ProgressTopic, c.progressKey)
	if err != nil {
		return fmt.Errorf("sink kafka: %w", err)
	}
	var pos Position
	if pr != nil {
		pos = Position{Progress: pr.Progress, Tail: pr.Tail}
		c.epoch, c.epochStart = pr.Epoch, pr.EpochStart
		c.log.Info("kafka sink: resuming after the committed position", "progress", pr.Progress.String(), "tail", pr.Tail, "committed", pr.Time)
	}
	c.skip = newSkipper(pos)
	return nil
}

// Position returns what an exactly-once connector knows Kafka holds (zero for
// at-least-once).
func (c *Connector) Position() Position {
	if c.skip == nil {
		return Position{}
	}
	return c.skip.pos
}

// Stats returns the connector's counters.
func (c *Connector) Stats() Stats {
	s := &c.stats
	return Stats{Events: s.events.Load(), Skipped: s.skipped.Load(), Records: s.records.Load(),
		Bytes: s.bytes.Load(), Points: s.points.Load(), Transactions: s.txns.Load(), Overlaps: s.overlaps.Load(), Dropped: s.dropped.Load()}
}

func (c *Connector) step(name string) error {
	if c.hook == nil {
		return nil
	}
	return c.hook(name)
}

// Send implements pipe.Connector: it returns once every record of the batch is
// acknowledged (at-least-once) or its transaction committed (exactly-once).
func (c *Connector) Send(ctx context.Context, batch []*pipe.Event) error {
	j, err := c.send(ctx, batch, nil, true)
	if err != nil || j == nil {
		return err
	}
	select {
	case err := <-j.done:
		return err
	case <-c.broken:
		return c.failure()
	case <-ctx.Done():
		// the send goes on (or fails) in the background; a later call reports a failure
		return ctx.Err()
	}
}

// SendAsync implements pipe.AsyncConnector: it hands the batch over and returns, and ack
// is called with the batch's commit ids once every record of it is acknowledged by Kafka
// (at-least-once: the producer is never drained between batches) or its transaction is
// committed (exactly-once: the next batch is encoded while this one commits). A failure
// after SendAsync returned fails the task through Env.Fail (and the next call returns it):
// nothing is acknowledged past it, so the task redelivers from its durable progress.
func (c *Connector) SendAsync(ctx context.Context, batch []*pipe.Event, ack func(ids ...uint64)) error {
	_, err := c.send(ctx, batch, ack, false)
	return err
}

// ackBatch is how many acknowledgements an at-least-once promise counts before it takes
// them off the job's pending count (one atomic add for them, not one per record).
const ackBatch = 64

// job is one batch on its way to Kafka.
type job struct {
	ctx    context.Context
	ids    []uint64 // the commit ids of the whole batch, skipped events included
	ack    func(ids ...uint64)
	done   chan error // for Send: the outcome
	arena  *arena
	events []*pipe.Event // to send (exactly-once: after skipping)
	// exactly-once
	encoded bool // recs were encoded beforehand (else: while producing, for TsFiles)
	recs    []*kgo.Record
	filters map[*pipe.Event]rowHashes
	pos     Position // after the transaction
	epoch   uint64
	epochAt int64

	settled bool // every record produced is finished (promise called)
	// producedCh is closed once the worker has produced the job's records (exactly-once)
	producedCh   chan struct{}
	producedOnce sync.Once
	records      atomic.Int64 // produced
	pending      atomic.Int64 // records not yet acknowledged, +1 while producing (at-least-once)
	acked        int64        // acknowledged but not yet counted (promises only, and settle)
	mu           sync.Mutex
	first        error
	promise      func(*kgo.Record, error)
}

func (c *Connector) newJob(ctx context.Context, batch []*pipe.Event, ack func(ids ...uint64), wait bool) *job {
	j := &job{ctx: ctx, ack: ack, ids: make([]uint64, len(batch))}
	for i, e := range batch {
		j.ids[i] = e.CommitID
	}
	if wait {
		j.done = make(chan error, 1)
	}
	if c.cfg.ExactlyOnce {
		// acknowledgements go to finished ackBatch at a time, and the rest once the
		// transaction's records are settled (settle)
		j.promise = func(r *kgo.Record, err error) {
			if err != nil {
				j.setErr(c.produceError(r, err))
			}
			if j.acked++; j.acked == ackBatch {
				c.finished.Add(ackBatch)
				j.acked = 0
			}
		}
		return j
	}
	// At-least-once counts acknowledgements in j.acked, which only promises touch (the
	// client calls them serially), and takes them off pending (and adds them to finished)
	// ackBatch at a time, or as soon as they may be the last: pending is at least the
	// producer's hold (1 while it produces) plus acked, so when it is at most acked+1, no
	// record of the job is left without its promise called, and the flush makes the job end
	// (here or when the producer lets go of its hold).
	j.promise = func(r *kgo.Record, err error) {
		if err != nil {
			j.setErr(c.produceError(r, err))
		}
		j.acked++
		if j.acked < ackBatch && j.pending.Load() > j.acked+1 {
			return
		}
		n := j.acked
		j.acked = 0
		c.finished.Add(n)
		if j.pending.Add(-n) == 0 {
			c.finishALO(j)
		}
	}
	return j
}

func (j *job) markProduced() {
	if j.producedCh != nil {
		j.producedOnce.Do(func() { close(j.producedCh) })
	}
}

func (j *job) setErr(err error) {
	j.mu.Lock()
	if j.first == nil {
		j.first = err
	}
	j.mu.Unlock()
}

func (j *job) err() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.first
}

// produceError explains a record's failure.
func (c *Connector) produceError(r *kgo.Record, err error) error {
	if errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge) {
		// the broker's message.max.bytes bounds a record batch, which the client makes up to
		// max-message-bytes
		return pipe.Permanent(fmt.Errorf("sink kafka: a record batch to topic %s (with a %d-byte message) is larger than the broker accepts: "+
			"keep max-message-bytes (now %d) at or below the broker's message.max.bytes, or raise that: %w",
			r.Topic, len(r.Key)+len(r.Value), c.cfg.MaxMessageBytes, err))
	}
	return fmt.Errorf("sink kafka: produce to %s: %w", r.Topic, err)
}

// end reports a job's outcome: acknowledges its events, or records the failure (every
// later call returns it) and fails the task.
func (c *Connector) end(j *job, err error) {
	if j.arena != nil && j.settled {
		c.putArena(j.arena)
	} // else records may still be in the client's hands: the arena is left to the GC
	j.arena = nil
	if err == nil {
		if j.ack != nil {
			j.ack(j.ids...)
		}
	} else {
		c.breakWith(err, j.done == nil)
	}
	if j.done != nil {
		j.done <- err
	}
}

// failure returns the error that broke the connector, if any.
func (c *Connector) failure() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failed
}

func (c *Connector) getArena() *arena {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := len(c.arenas); n > 0 {
		a := c.arenas[n-1]
		c.arenas = c.arenas[:n-1]
		return a
	}
	return &arena{}
}

// putArena takes back an arena whose records are all acknowledged.
func (c *Connector) putArena(a *arena) {
	a.reset()
	c.mu.Lock()
	if len(c.arenas) < 4 {
		c.arenas = append(c.arenas, a)
	}
	c.mu.Unlock()
}

// send starts sending a batch: it returns the job (nil when there is nothing to wait for).
func (c *Connector) send(ctx context.Context, batch []*pipe.Event, ack func(ids ...uint64), wait bool) (*job, error) {
	if err := c.failure(); err != nil {
		return nil, err
	}
	c.stats.events.Add(int64(len(batch)))
	j := c.newJob(ctx, batch, ack, wait)
	if c.cfg.ExactlyOnce {
		return j, c.queueTxn(j, batch)
	}
	// at-least-once: encode and produce here, acknowledge as Kafka acknowledges
	j.arena = c.getArena()
	c.enc.useArena(j.arena)
	j.pending.Store(1)
	err := c.produceEvents(ctx, c.enc, batch, j)
	if err != nil {
		j.setErr(err)
	}
	if j.pending.Add(-1) == 0 {
		c.finishALO(j)
	}
	return j, err
}

// finishALO ends an at-least-once job once its last record is acknowledged.
func (c *Connector) finishALO(j *job) {
	j.settled = true
	err := j.err()
	if err == nil {
		err = c.step("flushed")
	}
	c.end(j, err)
}

// queueTxn prepares an exactly-once batch and hands it to the transaction worker: the
// skipped events, the position after it, its records (encoded here, while the worker
// commits the previous batch, unless it holds a TsFile).
func (c *Connector) queueTxn(j *job, batch []*pipe.Event) error {
	for _, e := range batch {
		if c.skip.skip(e) {
			if e.Kind != pipe.KindHeartbeat {
				c.stats.skipped.Add(1)
			}
			continue
		}
		j.events = append(j.events, e)
	}
	if len(j.events) == 0 {
		c.end(j, nil)
		return nil
	}
	streamed := false
	for _, e := range j.events {
		if e.Kind == pipe.KindTsFile {
			streamed = true
		}
	}
	if streamed {
		// a file may overlap what Kafka holds: see it as committed, and read it while producing
		if err := c.drain(j.ctx); err != nil {
			return err
		}
		for i, e := range j.events {
			set, err := c.fileFilter(j.ctx, e, j.events[:i])
			if err != nil {
				return err
			}
			if set != nil {
				if j.filters == nil {
					j.filters = map[*pipe.Event]rowHashes{}
				}
				j.filters[e] = set
			}
		}
	} else {
		// Encode while the previous transaction waits for its acknowledgements rather than
		// while it is produced: then the client's goroutine is idle, and the cores are not.
		if prev := c.lastJob; prev != nil {
			select {
			case <-prev.producedCh:
			case <-c.broken:
				return c.failure()
			case <-j.ctx.Done():
				return j.ctx.Err()
			}
		}
		j.arena = c.getArena()
		c.enc.useArena(j.arena)
		j.recs = j.arena.list[:0]
		err := c.encodeEvents(c.enc, j.events, nil, func(r *kgo.Record) error { j.recs = append(j.recs, r); return nil })
		j.arena.list = j.recs // its array, for the next send that gets the arena
		j.encoded = true
		if err != nil {
			c.putArena(j.arena)
			j.arena = nil
			return err
		}
	}
	j.epoch, j.epochAt = c.epoch, c.epochStart
	for _, e := range j.events {
		if counted(e) && e.Epoch > j.epoch {
			j.epoch, j.epochAt = e.Epoch, time.Now().UnixMilli()
		}
	}
	j.pos = advance(c.skip.pos, j.events)
	// the next batch is decided on what this one will have committed: if it fails, the
	// connector is broken and the task reopens it, reading the position back. Sending a
	// counted event ends the replays (one equal to the position is sent only once they are
	// skipped); events without a progress do not.
	c.skip.pos = j.pos
	for _, e := range j.events {
		if counted(e) {
			c.skip.replays = 0
			break
		}
	}
	c.epoch, c.epochStart = j.epoch, j.epochAt
	if c.jobs == nil {
		c.jobs = make(chan *job)
		c.workers.Add(1)
		go c.txnWorker()
	}
	j.producedCh = make(chan struct{})
	select {
	case c.jobs <- j:
		c.lastJob = j
		return nil
	case <-j.ctx.Done():
		if j.arena != nil {
			c.putArena(j.arena)
		}
		return j.ctx.Err()
	}
}

// drain waits until the transaction worker has ended every job handed to it.
func (c *Connector) drain(ctx context.Context) error {
	if c.jobs == nil {
		return c.failure()
	}
	mark := &job{done: make(chan error, 1)} // no events: the worker only signals it
	select {
	case c.jobs <- mark: // taken once the previous job ended
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-mark.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return c.failure()
}

// txnWorker runs the exactly-once jobs, one transaction each, in order.
func (c *Connector) txnWorker() {
	defer c.workers.Done()
	for j := range c.jobs {
		if j.events == nil { // a drain's mark
			j.done <- nil
			continue
		}
		if err := c.failure(); err != nil {
			j.markProduced()
			c.end(j, err) // broken: nothing after a failure commits
			continue
		}
		err := c.runTxn(j)
		j.markProduced()
		c.end(j, err)
	}
}

// runTxn sends a job as one transaction: its records and the task's position.
func (c *Connector) runTxn(j *job) error {
	ctx, cancel := context.WithCancel(j.ctx)
	defer cancel()
	defer context.AfterFunc(c.bg, cancel)() // Close ends it
	go func() {
		select { // a broken connector (the watchdog) ends it too
		case <-c.broken:
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := c.cl.BeginTransaction(); err != nil {
		return fmt.Errorf("sink kafka: begin transaction: %w", err)
	}
	abort := func(err error) error {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.Timeout)
		defer cancel()
		if aerr := c.cl.AbortBufferedRecords(actx); aerr == nil {
			c.settle(j)
			if aerr := c.cl.EndTransaction(actx, kgo.TryAbort); aerr != nil {
				c.log.Warn("kafka sink: abort transaction", "err", aerr)
			}
		}
		return err
	}
	progress := func(records int64) error {
		last := j.events[len(j.events)-1]
		val, err := json.Marshal(ProgressRecord{Pipe: c.pipe, Region: c.region, Progress: j.pos.Progress, Tail: j.pos.Tail,
			CommitID: last.CommitID, Events: len(j.events), Records: records, Epoch: j.epoch, EpochStart: j.epochAt,
			Time: time.Now().UTC()})
		if err != nil {
			return fmt.Errorf("sink kafka: progress record: %w", err)
		}
		c.produced.Add(1)
		c.cl.Produce(ctx, &kgo.Record{Topic: c.cfg.ProgressTopic, Key: []byte(c.progressKey), Value: val}, j.promise)
		return nil
	}
	if j.encoded {
		// the position first: its partition joins the transaction with the first records'
		if err := progress(int64(len(j.recs))); err != nil {
			return abort(err)
		}
		if err := c.produceRecords(ctx, j.recs, j); err != nil {
			return abort(err)
		}
	} else {
		j.arena = c.getArena()
		c.wenc.useArena(j.arena)
		if err := c.produceEvents(ctx, c.wenc, j.events, j); err != nil {
			return abort(err)
		}
		if err := progress(j.records.Load()); err != nil {
			return abort(err)
		}
	}
	j.markProduced()
	if err := c.step("produced"); err != nil {
		return err
	}
	if err := c.cl.Flush(ctx); err != nil {
		return abort(fmt.Errorf("sink kafka: flush: %w", err))
	}
	if err := ctx.Err(); err != nil {
		// cancelled while records were produced: one may be failing yet, its promise not
		// called; never commit on that
		return abort(fmt.Errorf("sink kafka: flush: %w", err))
	}
	c.settle(j)
	if err := j.err(); err != nil {
		return abort(err)
	}
	if err := c.step("flushed"); err != nil {
		return err
	}
	// A cancelled context could leave the commit's outcome unknown: give it its own time.
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.Timeout)
	defer cancel()
	if err := c.cl.EndTransaction(ectx, kgo.TryCommit); err != nil {
		// The outcome may be unknown; the next run reads the progress topic to find out.
		return fmt.Errorf("sink kafka: commit transaction: %w", err)
	}
	c.stats.txns.Add(1)
	return c.step("committed")
}

// settle marks an exactly-once job's records finished, once the client has called every
// promise of them (Flush or AbortBufferedRecords returned), adding the acknowledgements
// its promises had not yet added to finished.
func (c *Connector) settle(j *job) {
	j.settled = true
	c.finished.Add(j.acked)
	j.acked = 0
}

// produceRecords produces encoded records, in order.
func (c *Connector) produceRecords(ctx context.Context, recs []*kgo.Record, j *job) error {
	n := 0
	defer func() { // counted once for the slice, not per record
		c.produced.Add(int64(n))
		j.records.Add(int64(n))
	}()
	var topic string
	for _, r := range recs {
		if r.Topic != topic {
			if !c.created[r.Topic] {
				if err := c.ensureTopic(ctx, r.Topic); err != nil {
					return err
				}
			}
			topic = r.Topic
		}
		c.cl.Produce(ctx, r, j.promise)
		n++
	}
	if err := j.err(); err != nil {
		return err
	}
	return ctx.Err()
}

// encodeEvents encodes the events (the rows of filters[e] left out of e) and calls emit
// with each record, in order, counting them in the stats.
func (c *Connector) encodeEvents(en *Encoder, events []*pipe.Event, filters map[*pipe.Event]rowHashes, emit func(*kgo.Record) error) error {
	defer en.dropRows(nil)
	for _, e := range events {
		en.dropRows(filters[e])
		before := en.dropped
		n, err := en.Event(e, emit)
		c.stats.records.Add(n.Records)
		c.stats.bytes.Add(n.Bytes)
		c.stats.points.Add(n.Points)
		c.stats.dropped.Add(en.dropped - before)
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return err
			}
			return fmt.Errorf("sink kafka: %s event %d: %w", e.Kind, e.CommitID, err)
		}
	}
	return nil
}

// produceEvents encodes the events and produces their records, in order. Encoding runs in
// a goroutine of its own, a few hundred records ahead of producing, so that the two
// overlap; it ends before produceEvents returns.
func (c *Connector) produceEvents(ctx context.Context, en *Encoder, events []*pipe.Event, j *job) error {
	const chunk, chunkBytes = 512, 256 << 10 // a piece: this many records or bytes
	type piece struct {
		recs []*kgo.Record
		err  error
	}
	pieces := make(chan piece, 8)
	free := make(chan []*kgo.Record, 10) // pieces' arrays, produced, for the next pieces
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(pieces)
		var cur []*kgo.Record
		curBytes := 0
		send := func(p piece) bool {
			select {
			case pieces <- p:
				return true
			case <-done:
				return false
			}
		}
		err := c.encodeEvents(en, events, j.filters, func(r *kgo.Record) error {
			cur = append(cur, r)
			if curBytes += len(r.Value); len(cur) == chunk || curBytes >= chunkBytes {
				if !send(piece{recs: cur}) {
					return context.Canceled
				}
				select {
				case cur = <-free:
				default:
					cur = make([]*kgo.Record, 0, chunk)
				}
				curBytes = 0
			}
			return nil
		})
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				send(piece{recs: cur, err: err})
			}
			return
		}
		if len(cur) > 0 {
			send(piece{recs: cur})
		}
	}()
	defer wg.Wait()
	defer close(done)
	for p := range pieces {
		if !c.cfg.ExactlyOnce {
			j.pending.Add(int64(len(p.recs)))
		}
		if err := c.produceRecords(ctx, p.recs, j); err != nil {
			return err
		}
		if p.err != nil {
			return p.err
		}
		clear(p.recs)
		select {
		case free <- p.recs[:0]:
		default:
		}
	}
	return ctx.Err()
}

func (c *Connector) ensureTopic(ctx context.Context, topic string) error {
	if c.cfg.CreateTopics {
		tctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
		defer cancel()
		if err := EnsureTopic(tctx, c.adm, topic, c.cfg.Partitions, c.cfg.Replication, nil); err != nil {
			return err
		}
	}
	c.created[topic] = true
	return nil
}

func (c *Connector) closeClient() {
	if c.cl != nil {
		c.cl.Close()
		c.cl = nil
	}
}

// Close implements pipe.Connector. An open transaction is left to the next task's fencing
// (or the broker's timeout): it never commits.
func (c *Connector) Close() error {
	c.closing.Store(true)
	if c.stop != nil {
		c.stop() // the watchdog ends, and so does a transaction in progress (it aborts)
		c.watching.Wait()
	}
	if c.jobs != nil {
		close(c.jobs) // the worker ends, its transaction aborted
		c.workers.Wait()
		c.jobs = nil
	}
	if c.cl != nil && !c.cfg.ExactlyOnce && c.failure() == nil {
		// acknowledge what is on its way, so that the task's last save covers it
		fctx, cancel := context.WithTimeout(context.Background(), min(c.cfg.Timeout, 5*time.Second))
		_ = c.cl.Flush(fctx)
		cancel()
	}
	c.closeClient()
	return nil
}
