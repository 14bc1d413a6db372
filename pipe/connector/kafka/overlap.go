package kafka

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"sort"
	"strconv"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/tsfile"
)

// A TsFile holds its memtable's rows merged, without the WAL index of each. When part of
// the memtable was exported as tablets before (a carrier switch, or a restart after the
// WAL was flushed away), the exactly-once sink reads those rows back from Kafka (records of
// the memtable's index range, from where its epoch started) and drops the file's rows that
// repeat one of them exactly (device, time and every value).

// epochMargin is how much earlier than an epoch's recorded start the read-back begins, for
// clock differences between the record timestamps and this machine.
const epochMargin = 60_000 // ms

// rowHashes is a set of row hashes.
type rowHashes map[uint64]struct{}

var hashSeed = maphash.MakeSeed()

// rowHasher hashes rows canonically: device, time, then each non-null measurement in name
// order with its value's JSON text, so that the row of a JSON message and the same row of
// an Arrow record hash alike whatever the column order.
type rowHasher struct {
	h    maphash.Hash
	vals []namedValue
	buf  []byte
}

type namedValue struct{ name, val []byte }

func newRowHasher() *rowHasher {
	rh := &rowHasher{}
	rh.h.SetSeed(hashSeed)
	return rh
}

func (rh *rowHasher) sum(device []byte, time []byte) uint64 {
	sort.Slice(rh.vals, func(i, j int) bool { return bytes.Compare(rh.vals[i].name, rh.vals[j].name) < 0 })
	rh.h.Reset()
	rh.h.Write(device)
	rh.h.WriteByte(0)
	rh.h.Write(time)
	for _, v := range rh.vals {
		rh.h.WriteByte(0)
		rh.h.Write(v.name)
		rh.h.WriteByte(1)
		rh.h.Write(v.val)
	}
	return rh.h.Sum64()
}

// jsonRow hashes a JSON row message.
func (rh *rowHasher) jsonRow(val []byte) (uint64, bool) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(val, &m); err != nil {
		return 0, false
	}
	var dev string
	if err := json.Unmarshal(m["device"], &dev); err != nil {
		return 0, false
	}
	rh.vals = rh.vals[:0]
	for k, v := range m {
		if k != "device" && k != "time" {
			rh.vals = append(rh.vals, namedValue{[]byte(k), v})
		}
	}
	return rh.sum([]byte(dev), m["time"]), true
}

// arrowRow hashes row r of a record of device's rows.
func (rh *rowHasher) arrowRow(device string, rec arrow.Record, r int) uint64 {
	rh.vals = rh.vals[:0]
	rh.buf = rh.buf[:0]
	type span struct {
		name   string
		lo, hi int
	}
	var spans []span
	for c := 1; c < int(rec.NumCols()); c++ {
		col := rec.Column(c)
		if col.IsNull(r) {
			continue
		}
		lo := len(rh.buf)
		switch a := col.(type) {
		case *array.Float64:
			rh.buf = appendFloat(rh.buf, a.Value(r), 64)
		case *array.Float32:
			rh.buf = appendFloat(rh.buf, float64(a.Value(r)), 32)
		case *array.Int64:
			rh.buf = strconv.AppendInt(rh.buf, a.Value(r), 10)
		case *array.Int32:
			rh.buf = strconv.AppendInt(rh.buf, int64(a.Value(r)), 10)
		case *array.Boolean:
			rh.buf = strconv.AppendBool(rh.buf, a.Value(r))
		case *array.String:
			rh.buf = appendJSONString(rh.buf, a.Value(r))
		default:
			continue
		}
		spans = append(spans, span{rec.Schema().Field(c).Name, lo, len(rh.buf)})
	}
	for _, s := range spans {
		rh.vals = append(rh.vals, namedValue{[]byte(s.name), rh.buf[s.lo:s.hi]})
	}
	t := strconv.AppendInt(nil, rec.Column(0).(*array.Int64).Value(r), 10)
	return rh.sum([]byte(device), t)
}

// exportedRows reads back the rows Kafka holds of the local WAL index range [lo, hi] (the
// part of a file's memtable exported as tablets), from the topics of the file's devices,
// starting where the epoch began (minus a margin).
func (c *Connector) exportedRows(ctx context.Context, f *pipe.FileRef, lo, hi uint64) (rowHashes, error) {
	rd, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", f.Path, err)
	}
	topicSet := map[string]bool{}
	for _, d := range rd.Meta().Devices {
		t, err := c.enc.Topic(tsfile.Database(d.Device), d.Device)
		if err != nil {
			rd.Close()
			return nil, err
		}
		topicSet[t] = true
	}
	rd.Close()
	var topics []string
	for t := range topicSet {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	since := c.epochStart - epochMargin
	if c.epochStart == 0 {
		since = 0
	}
	starts, err := c.adm.ListOffsetsAfterMilli(ctx, since, topics...)
	if err != nil {
		return nil, fmt.Errorf("offsets after %d: %w", since, err)
	}
	ends, err := c.adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("end offsets: %w", err)
	}
	md, err := c.adm.Metadata(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	set := rowHashes{}
	rh := newRowHasher()
	for _, topic := range topics {
		td, ok := md.Topics[topic]
		if !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition) {
			continue // no such topic: nothing exported to it
		}
		if td.Err != nil {
			return nil, fmt.Errorf("topic %s: %w", topic, td.Err)
		}
		for p, pd := range td.Partitions {
			// a partition whose offsets are unknown may hold rows: fail (the task retries)
			// rather than send them again
			s, ok1 := starts.Lookup(topic, p)
			e, ok2 := ends.Lookup(topic, p)
			if !ok1 || !ok2 || s.Err != nil || e.Err != nil {
				return nil, fmt.Errorf("topic %s partition %d: offsets unknown: %v", topic, p, errors.Join(s.Err, e.Err))
			}
			if s.Offset < 0 || s.Offset >= e.Offset {
				continue
			}
			err := readPartition(ctx, c.cl, topic, td.ID, p, pd.Leader, s.Offset, e.Offset, func(r *kgo.Record) error {
				if !c.inRange(r, lo, hi) {
					return nil
				}
				return c.addRecordRows(rh, set, r)
			})
			if err != nil {
				return nil, err
			}
		}
	}
	return set, nil
}

// inRange reports whether a record came from a tablet of the local index range [lo, hi].
func (c *Connector) inRange(r *kgo.Record, lo, hi uint64) bool {
	var prog, region string
	for _, h := range r.Headers {
		switch h.Key {
		case HeaderProgress:
			prog = string(h.Value)
		case HeaderRegion:
			region = string(h.Value)
		case HeaderKind:
			return false
		}
	}
	if region != c.region {
		return false
	}
	p, err := pipe.ParseProgress(prog)
	if err != nil {
		return false
	}
	idx := p[c.origin]
	return idx >= lo && idx <= hi
}

func (c *Connector) addRecordRows(rh *rowHasher, set rowHashes, r *kgo.Record) error {
	if c.cfg.Format == FormatJSON {
		if h, ok := rh.jsonRow(r.Value); ok {
			set[h] = struct{}{}
		}
		return nil
	}
	rd, err := ipc.NewReader(bytes.NewReader(r.Value))
	if err != nil {
		return nil // not an Arrow message of ours
	}
	defer rd.Release()
	dev, _ := rd.Schema().Metadata().GetValue(tsfile.MetaDevice)
	for rd.Next() {
		rec := rd.Record()
		for i := 0; i < int(rec.NumRows()); i++ {
			set[rh.arrowRow(dev, rec, i)] = struct{}{}
		}
	}
	return nil
}

// fileFilter returns, for a TsFile event whose memtable was partly exported as tablets
// (committed before, or earlier in this batch), the hashes of those rows (nil when there is
// no overlap).
func (c *Connector) fileFilter(ctx context.Context, e *pipe.Event, earlier []*pipe.Event) (rowHashes, error) {
	if e.Kind != pipe.KindTsFile || c.origin == 0 || e.File.Info.MinIndex == 0 {
		return nil, nil
	}
	info := e.File.Info
	in := func(idx uint64) bool { return idx >= info.MinIndex && idx <= info.MaxIndex }
	var batch []*pipe.Event
	for _, x := range earlier {
		if x.Kind == pipe.KindTablet && x.Tablet != nil && in(x.Progress[c.origin]) {
			batch = append(batch, x)
		}
	}
	k := c.skip.pos.Progress[c.origin]
	committed := k >= info.MinIndex && k < info.MaxIndex
	if !committed && len(batch) == 0 {
		return nil, nil
	}
	c.stats.overlaps.Add(1)
	set := rowHashes{}
	if committed {
		rctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout+c.cfg.TxnTimeout)
		defer cancel()
		var err error
		if set, err = c.exportedRows(rctx, e.File, info.MinIndex, k); err != nil {
			return nil, fmt.Errorf("sink kafka: read back the rows of %s already exported (indexes %d..%d): %w", info.Name, info.MinIndex, k, err)
		}
	}
	rh := newRowHasher()
	var buf []byte
	for _, x := range batch {
		t := x.Tablet
		if c.cfg.Format != FormatJSON {
			for r := 0; r < t.Rows(); r++ {
				set[rh.arrowRow(t.Device, t.Rec, r)] = struct{}{}
			}
			continue
		}
		enc, err := newRowEncoder(t.Device, t.Rec)
		if err != nil {
			return nil, err
		}
		for r := 0; r < t.Rows(); r++ {
			buf = enc.appendRow(buf[:0], r)
			if h, ok := rh.jsonRow(buf); ok {
				set[h] = struct{}{}
			}
		}
	}
	c.log.Info("kafka sink: a TsFile repeats rows already exported as tablets; they are dropped",
		"file", info.Name, "min_index", info.MinIndex, "max_index", info.MaxIndex, "committed_index", k,
		"tablets_in_batch", len(batch), "rows", len(set))
	return set, nil
}
