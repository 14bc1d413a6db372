// Package kafka holds the kafka sink: it exports a pipe's events to Kafka with franz-go.
//
// Each row becomes a JSON message (format json) or each record batch an Arrow IPC stream
// message (format arrow), keyed by device, on a topic named by a template such as
// "weir.{database}", with headers naming the database, device, region and progress.
//
// Delivery at-least-once (the default) uses an idempotent producer with acks from all
// in-sync replicas: a batch is acknowledged to the pipe once every record of it is; a
// restart redelivers what the pipe had not yet saved, so a consumer may see a row twice.
//
// Delivery exactly-once gives each task a transactional producer (id PREFIX.PIPE.REGION).
// Each batch is one transaction holding its records and the task's position (the last
// event's progress) written to a compacted progress topic under the key PIPE/REGION. On
// open the task fences its predecessor, reads its position back as a read_committed
// consumer, and skips the redelivered events that Kafka already holds: a restart or a
// crash at any point neither loses nor repeats a row for read_committed consumers.
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
		Params: Params,
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
	enc          *Encoder
	created      map[string]bool

	// exactly-once
	txnID, progressKey string
	skip               *skipper
	origin             uint32 // the source region's origin id, for overlap checks
	epoch              uint64 // epoch (memtable) of the last committed data event
	epochStart         int64  // unix ms when the first transaction holding that epoch began

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
	if !cfg.ExactlyOnce {
		return nil
	}
	if err := c.openExactlyOnce(ctx); err != nil {
		c.closeClient()
		return err
	}
	return nil
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
	c.stats.events.Add(int64(len(batch)))
	if c.cfg.ExactlyOnce {
		return c.sendTxn(ctx, batch)
	}
	ps := c.newProduceState()
	if err := c.produceEvents(ctx, batch, ps); err != nil {
		return err
	}
	if err := c.cl.Flush(ctx); err != nil {
		return fmt.Errorf("sink kafka: flush: %w", err)
	}
	if err := ps.err(); err != nil {
		return err
	}
	c.enc.Reset() // every promise was called: the records' memory is free again
	if err := c.step("flushed"); err != nil {
		return err
	}
	return nil
}

func (c *Connector) sendTxn(ctx context.Context, batch []*pipe.Event) error {
	var sent []*pipe.Event
	for _, e := range batch {
		if c.skip.skip(e) {
			if e.Kind != pipe.KindHeartbeat {
				c.stats.skipped.Add(1)
			}
			continue
		}
		sent = append(sent, e)
	}
	if len(sent) == 0 {
		return nil
	}
	filters := map[*pipe.Event]rowHashes{}
	epoch, epochStart := c.epoch, c.epochStart
	for i, e := range sent {
		set, err := c.fileFilter(ctx, e, sent[:i])
		if err != nil {
			return err
		}
		if set != nil {
			filters[e] = set
		}
		if counted(e) && e.Epoch > epoch {
			epoch, epochStart = e.Epoch, time.Now().UnixMilli()
		}
	}
	if err := c.cl.BeginTransaction(); err != nil {
		return fmt.Errorf("sink kafka: begin transaction: %w", err)
	}
	ps := c.newProduceState()
	ps.filters = filters
	abort := func(err error) error {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.Timeout)
		defer cancel()
		if aerr := c.cl.AbortBufferedRecords(actx); aerr == nil {
			if aerr := c.cl.EndTransaction(actx, kgo.TryAbort); aerr != nil {
				c.log.Warn("kafka sink: abort transaction", "err", aerr)
			}
		}
		return err
	}
	if err := c.produceEvents(ctx, sent, ps); err != nil {
		return abort(err)
	}
	if err := c.step("produced"); err != nil {
		return err
	}
	pos := advance(c.skip.pos, sent)
	last := sent[len(sent)-1]
	val, err := json.Marshal(ProgressRecord{Pipe: c.pipe, Region: c.region, Progress: pos.Progress, Tail: pos.Tail,
		CommitID: last.CommitID, Events: len(sent), Records: ps.records.Load(), Epoch: epoch, EpochStart: epochStart,
		Time: time.Now().UTC()})
	if err != nil {
		return abort(fmt.Errorf("sink kafka: progress record: %w", err))
	}
	c.cl.Produce(ctx, &kgo.Record{Topic: c.cfg.ProgressTopic, Key: []byte(c.progressKey), Value: val}, ps.promise)
	if err := c.cl.Flush(ctx); err != nil {
		return abort(fmt.Errorf("sink kafka: flush: %w", err))
	}
	if err := ps.err(); err != nil {
		return abort(err)
	}
	c.enc.Reset() // every promise was called: the records' memory is free again
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
	c.skip.pos, c.skip.replays = pos, 0 // the replay, if any, is over once something new is in
	c.epoch, c.epochStart = epoch, epochStart
	if err := c.step("committed"); err != nil {
		return err
	}
	return nil
}

// produceState tracks the records of one send.
type produceState struct {
	filters map[*pipe.Event]rowHashes // rows of TsFile events to leave out
	records atomic.Int64
	mu      sync.Mutex
	first   error
	promise func(*kgo.Record, error)
}

func (c *Connector) newProduceState() *produceState {
	ps := &produceState{}
	ps.promise = func(r *kgo.Record, err error) {
		if err == nil {
			return
		}
		ps.mu.Lock()
		defer ps.mu.Unlock()
		if ps.first != nil {
			return
		}
		if errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge) {
			ps.first = pipe.Permanent(fmt.Errorf("sink kafka: a %d-byte message to topic %s is larger than the broker accepts "+
				"(raise the broker's message.max.bytes, or lower max-message-bytes, now %d): %w",
				len(r.Key)+len(r.Value), r.Topic, c.cfg.MaxMessageBytes, err))
			return
		}
		ps.first = fmt.Errorf("sink kafka: produce to %s: %w", r.Topic, err)
	}
	return ps
}

func (ps *produceState) err() error {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.first
}

// produceEvents encodes the events and produces their records, in order. Encoding runs in
// a goroutine of its own, a few hundred records ahead of producing, so that the two
// overlap; it ends before produceEvents returns.
func (c *Connector) produceEvents(ctx context.Context, events []*pipe.Event, ps *produceState) error {
	const chunk, chunkBytes = 512, 256 << 10 // a piece: this many records or bytes
	type piece struct {
		recs []*kgo.Record
		err  error
	}
	pieces := make(chan piece, 8)
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
		defer c.enc.dropRows(nil)
		for _, e := range events {
			c.enc.dropRows(ps.filters[e])
			before := c.enc.dropped
			n, err := c.enc.Event(e, func(r *kgo.Record) error {
				cur = append(cur, r)
				if curBytes += len(r.Value); len(cur) == chunk || curBytes >= chunkBytes {
					if !send(piece{recs: cur}) {
						return context.Canceled
					}
					cur, curBytes = make([]*kgo.Record, 0, chunk), 0
				}
				return nil
			})
			c.stats.records.Add(n.Records)
			c.stats.bytes.Add(n.Bytes)
			c.stats.points.Add(n.Points)
			c.stats.dropped.Add(c.enc.dropped - before)
			if err != nil {
				if !errors.Is(err, context.Canceled) {
					send(piece{recs: cur, err: fmt.Errorf("sink kafka: %s event %d: %w", e.Kind, e.CommitID, err)})
				}
				return
			}
		}
		if len(cur) > 0 {
			send(piece{recs: cur})
		}
	}()
	defer wg.Wait()
	defer close(done)
	for p := range pieces {
		for _, r := range p.recs {
			if !c.created[r.Topic] {
				if err := c.ensureTopic(ctx, r.Topic); err != nil {
					return err
				}
			}
			ps.records.Add(1)
			c.cl.Produce(ctx, r, ps.promise)
		}
		if p.err != nil {
			return p.err
		}
		if err := ps.err(); err != nil {
			return err
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
	c.closeClient()
	return nil
}
