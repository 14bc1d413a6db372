package kafka

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/tsfile"
)

// broker starts an in-process kfake broker on 127.0.0.1 (a free port), closed at cleanup.
func broker(t testing.TB, opts ...kfake.Opt) (*kfake.Cluster, string) {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.DefaultNumPartitions(3)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, c.ListenAddrs()[0]
}

func params(addr string, kv ...string) pipe.Params {
	m := map[string]string{"brokers": addr, "timeout": "10s"}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return pipe.NewParams(m)
}

func openConn(t testing.TB, p pipe.Params) *Connector { return openPipe(t, "p", p) }

func openPipe(t testing.TB, name string, p pipe.Params) *Connector {
	t.Helper()
	c := &Connector{}
	if err := c.Open(context.Background(), &pipe.Env{Pipe: name, Params: p}); err != nil {
		t.Fatal(err)
	}
	return c
}

var testCols = []tsfile.Column{
	{Name: "temp", Type: tsfile.Double}, {Name: "n", Type: tsfile.Int64}, {Name: "s", Type: tsfile.Int32},
	{Name: "f", Type: tsfile.Float}, {Name: "ok", Type: tsfile.Boolean}, {Name: "name", Type: tsfile.Text},
}

// tablet builds rows t0..t0+rows-1 of device with every type and some nulls.
func tablet(t testing.TB, device string, t0 int64, rows int) *tsfile.Tablet {
	t.Helper()
	b := tsfile.NewTabletBuilder(nil, device, testCols)
	defer b.Release()
	for i := 0; i < rows; i++ {
		ts := t0 + int64(i)
		var name any = fmt.Sprintf("x\"%d\n", ts)
		if ts%3 == 0 {
			name = nil
		}
		var temp any = float64(ts) / 4
		if ts%5 == 0 {
			temp = nil
		}
		if err := b.AppendRow(ts, temp, ts*7, int32(ts%100), float32(ts)/2, ts%2 == 0, name); err != nil {
			t.Fatal(err)
		}
	}
	tb, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func tabletEvent(t testing.TB, id uint64, device string, t0 int64, rows int) *pipe.Event {
	tb := tablet(t, device, t0, rows)
	return &pipe.Event{Kind: pipe.KindTablet, CommitID: id, Region: "region", Tablet: tb,
		Progress: pipe.ProgressIndex{1: id}, Origin: 1, OriginIndex: id, Bytes: int64(rows) * 40}
}

// digest is an order-independent digest of points: count and a sum of hashes of
// (device, measurement, time, value), so that a duplicate or a missing point changes it.
type digest struct {
	Points int64
	Sum    uint64
}

func (d *digest) add(device, m string, ts int64, v any) {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\x00%s\x00%d\x00", device, m, ts)
	switch x := v.(type) {
	case float64:
		fmt.Fprintf(h, "n%d", math.Float64bits(x))
	case string:
		fmt.Fprintf(h, "s%s", x)
	case bool:
		fmt.Fprintf(h, "b%v", x)
	default:
		panic(fmt.Sprintf("value %T", v))
	}
	d.Points++
	d.Sum += h.Sum64()
}

func (d *digest) add2(o digest) {
	d.Points += o.Points
	d.Sum += o.Sum
}

// addRecord adds a record's points (values as JSON would decode them).
func (d *digest) addRecord(device string, rec arrow.Record) {
	ts := rec.Column(0).(*array.Int64).Int64Values()
	for c := 1; c < int(rec.NumCols()); c++ {
		col, name := rec.Column(c), rec.Schema().Field(c).Name
		for r := range ts {
			if col.IsNull(r) {
				continue
			}
			var v any
			switch a := col.(type) {
			case *array.Float64:
				v = a.Value(r)
			case *array.Float32:
				v = float64(a.Value(r))
			case *array.Int64:
				v = float64(a.Value(r))
			case *array.Int32:
				v = float64(a.Value(r))
			case *array.Boolean:
				v = a.Value(r)
			case *array.String:
				v = a.Value(r)
			}
			d.add(device, name, ts[r], v)
		}
	}
}

// addJSON adds the points of one JSON row message.
func (d *digest) addJSON(t testing.TB, val []byte) {
	t.Helper()
	var row map[string]any
	if err := json.Unmarshal(val, &row); err != nil {
		t.Fatalf("message %q: %v", val, err)
	}
	dev, _ := row["device"].(string)
	ts, ok := row["time"].(float64)
	if dev == "" || !ok {
		t.Fatalf("message %q: no device or time", val)
	}
	for k, v := range row {
		if k != "device" && k != "time" {
			if f, ok := v.(float64); ok && k == "f" {
				v = float64(float32(f)) // a FLOAT is written with float32 precision
			}
			d.add(dev, k, int64(ts), v)
		}
	}
}

const sentinel = "__end__"

// consume reads every partition of topics from the start as a read_committed consumer
// with a standard client, up to a sentinel it first writes to each partition (so the end
// is known without waiting), and returns the records before the sentinels.
func consume(t testing.TB, addr string, topics ...string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	md, err := kadm.NewClient(w).Metadata(ctx, topics...)
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, topic := range topics {
		td := md.Topics[topic]
		if td.Err != nil {
			t.Fatalf("topic %s: %v", topic, td.Err)
		}
		for p := range td.Partitions {
			want++
			if err := w.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: p, Key: []byte(sentinel)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	r, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topics...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []*kgo.Record
	for seen := 0; seen < want; {
		fs := r.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consume %v: %d of %d sentinels after %d records: %v", topics, seen, want, len(out), err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("consume %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(rec *kgo.Record) {
			if string(rec.Key) == sentinel {
				seen++
				return
			}
			out = append(out, rec)
		})
	}
	return out
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func contains(err error, s string) bool { return err != nil && strings.Contains(err.Error(), s) }

func addArrow(t testing.TB, d digest, val []byte) digest {
	t.Helper()
	rd, err := ipc.NewReader(bytes.NewReader(val))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Release()
	dev, _ := rd.Schema().Metadata().GetValue(tsfile.MetaDevice)
	for rd.Next() {
		d.addRecord(dev, rd.Record())
	}
	if rd.Err() != nil {
		t.Fatal(rd.Err())
	}
	return d
}
