package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-dev/weir/pipe"
)

// Position is what an exactly-once task has committed to Kafka: the Progress of the last
// event of its last committed transaction, and Tail, how many events at the end of the
// committed stream carry exactly that progress (a processor may emit several outputs of one
// input, all with the input's progress, and a transaction may end between them).
type Position struct {
	Progress pipe.ProgressIndex
	Tail     int
}

// ProgressRecord is the value of a task's record in the progress topic (JSON), written in
// every transaction with the records it commits.
type ProgressRecord struct {
	Pipe     string             `json:"pipe"`
	Region   string             `json:"region"`
	Progress pipe.ProgressIndex `json:"progress"`
	Tail     int                `json:"tail"`
	// CommitID is the pipe commit id of the transaction's last event (ids restart from the
	// pipe's durable checkpoint, so they say where, not what).
	CommitID uint64 `json:"commit_id"`
	// Events and Records are what the transaction held.
	Events  int   `json:"events"`
	Records int64 `json:"records"`
	// Epoch is the epoch (memtable) of the last data event, and EpochStart (unix ms) when the
	// first transaction holding one of its events began: where to read back from if a file
	// of that memtable comes later.
	Epoch      uint64    `json:"epoch,omitempty"`
	EpochStart int64     `json:"epoch_start,omitempty"`
	Time       time.Time `json:"time"`
}

// ProgressKey is the key of a task's record in the progress topic.
func ProgressKey(pipeName, region string) string { return pipeName + "/" + region }

// skipper decides which redelivered events Kafka already holds. Events come in commit
// order with cumulative progress: an event whose progress the committed position covers
// and is not equal to it is older, and already in Kafka; of the events whose progress
// equals it, the first Tail are.
type skipper struct {
	pos     Position // what Kafka holds, as this connector knows it
	replays int      // equal-progress events still to skip
}

func newSkipper(p Position) *skipper { return &skipper{pos: p, replays: p.Tail} }

// counted reports whether e takes part in positions: heartbeats and events without a
// progress do not (the latter are always sent).
func counted(e *pipe.Event) bool { return e.Kind != pipe.KindHeartbeat && len(e.Progress) > 0 }

func equalProgress(a, b pipe.ProgressIndex) bool { return a.Covers(b) && b.Covers(a) }

// skip reports whether e is already in Kafka.
func (s *skipper) skip(e *pipe.Event) bool {
	if e.Kind == pipe.KindHeartbeat {
		return true
	}
	if !counted(e) || len(s.pos.Progress) == 0 || !s.pos.Progress.Covers(e.Progress) {
		return false
	}
	if !equalProgress(e.Progress, s.pos.Progress) {
		return true
	}
	if s.replays > 0 {
		s.replays--
		return true
	}
	return false
}

// advance returns the position after the sent events (in order), from p.
func advance(p Position, sent []*pipe.Event) Position {
	for _, e := range sent {
		if !counted(e) {
			continue
		}
		switch {
		case len(p.Progress) > 0 && equalProgress(e.Progress, p.Progress):
			p.Tail++
		case e.Progress.Covers(p.Progress):
			p = Position{Progress: e.Progress.Clone(), Tail: 1}
		default: // not monotone (should not happen): keep what covers both, trust no tail
			p = Position{Progress: p.Progress.Merge(e.Progress), Tail: 0}
		}
	}
	return p
}

// EnsureTopic creates topic unless it exists. configs may be nil.
func EnsureTopic(ctx context.Context, adm *kadm.Client, topic string, partitions int32, replication int16, configs map[string]*string) error {
	resp, err := adm.CreateTopic(ctx, partitions, replication, configs, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	return nil
}

// ReadProgress reads topic from its start to its end as a read_committed consumer and
// returns the last value of key (nil when there is none). Records of open transactions are
// not readable yet: it waits for them to end, until ctx ends. Call it after fencing the
// task's own predecessor, whose transaction would otherwise hold the end back.
func ReadProgress(ctx context.Context, cl *kgo.Client, topic, key string) (*ProgressRecord, error) {
	adm := kadm.NewClient(cl)
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("progress topic %s: metadata: %w", topic, err)
	}
	td, ok := md.Topics[topic]
	if !ok {
		return nil, fmt.Errorf("progress topic %s: not in the metadata", topic)
	}
	if td.Err != nil {
		return nil, fmt.Errorf("progress topic %s: %w", topic, td.Err)
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("progress topic %s: start offsets: %w", topic, err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("progress topic %s: end offsets: %w", topic, err)
	}
	var last *ProgressRecord
	for p, pd := range td.Partitions {
		so, ok1 := starts.Lookup(topic, p)
		eo, ok2 := ends.Lookup(topic, p)
		if !ok1 || !ok2 || so.Err != nil || eo.Err != nil {
			return nil, fmt.Errorf("progress topic %s partition %d: offsets unknown: %v", topic, p, errors.Join(so.Err, eo.Err))
		}
		err := readPartition(ctx, cl, topic, td.ID, p, pd.Leader, so.Offset, eo.Offset, func(r *kgo.Record) error {
			if string(r.Key) != key {
				return nil
			}
			var pr ProgressRecord
			if err := json.Unmarshal(r.Value, &pr); err != nil {
				return fmt.Errorf("progress topic %s partition %d offset %d: %w", topic, p, r.Offset, err)
			}
			last = &pr
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return last, nil
}

// readPartition fetches [from, to) of one partition with read_committed isolation: the
// records of aborted transactions are dropped, control records and compaction gaps are
// stepped over.
func readPartition(ctx context.Context, cl *kgo.Client, topic string, id [16]byte, part, leader int32, from, to int64, fn func(*kgo.Record) error) error {
	next := from
	for next < to {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("progress topic %s partition %d: read up to offset %d, want %d (an open transaction holds it back?): %w", topic, part, next, to, err)
		}
		req := kmsg.NewPtrFetchRequest()
		req.ReplicaID = -1
		req.MaxWaitMillis = 100 // paces the loop while an open transaction holds the stable offset back
		req.MinBytes = 1
		req.MaxBytes = 16 << 20
		req.IsolationLevel = 1 // read_committed
		req.SessionEpoch = -1
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = topic, id
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = part, next, 8<<20
		rp.CurrentLeaderEpoch, rp.LogStartOffset = -1, -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		kresp, err := cl.Broker(int(leader)).Request(ctx, req)
		if err != nil {
			return fmt.Errorf("progress topic %s partition %d: fetch: %w", topic, part, err)
		}
		resp := kresp.(*kmsg.FetchResponse)
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			return fmt.Errorf("progress topic %s partition %d: fetch: %w", topic, part, err)
		}
		var got *kmsg.FetchResponseTopicPartition
		for i := range resp.Topics {
			for j := range resp.Topics[i].Partitions {
				if resp.Topics[i].Partitions[j].Partition == part {
					got = &resp.Topics[i].Partitions[j]
				}
			}
		}
		if got == nil {
			continue
		}
		fp, after := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
			Offset: next, IsolationLevel: kgo.ReadCommitted(), Topic: topic, Partition: part,
		}, got, kgo.DefaultDecompressor(), nil)
		if fp.Err != nil {
			return fmt.Errorf("progress topic %s partition %d offset %d: %w", topic, part, next, fp.Err)
		}
		for _, r := range fp.Records {
			if r.Offset >= to {
				break
			}
			if err := fn(r); err != nil {
				return err
			}
		}
		next = max(next, after)
	}
	return nil
}
