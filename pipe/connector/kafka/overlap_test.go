package kafka

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/tsfile"
)

// memtable is what flushedMemtable makes: a tablet of rows rows for each of the devices
// root.db.d1 to root.db.d<devices> (tablet i from time i*step, with commit id and index i),
// all of epoch epoch, flushed to a TsFile written with opts and sent as commit fileCommit.
type memtable struct {
	devices, rows     int
	step              int64
	epoch, fileCommit uint64
	opts              tsfile.WriteOptions
}

// flushedMemtable returns m's tablet events, released at the end of the test, and the
// event of the TsFile they were flushed to (progress {1: devices}, all of time).
func flushedMemtable(t testing.TB, m memtable) ([]*pipe.Event, *pipe.Event) {
	t.Helper()
	var es []*pipe.Event
	var data []tsfile.DeviceData
	for i := 1; i <= m.devices; i++ {
		dev := fmt.Sprintf("root.db.d%d", i)
		e := tabletEvent(t, uint64(i), dev, int64(i)*m.step, m.rows)
		e.Epoch = m.epoch
		es = append(es, e)
		data = append(data, tsfile.DeviceData{Device: dev, Rec: e.Tablet.Rec})
	}
	t.Cleanup(func() { release(es) })
	name := fmt.Sprintf("%d.tsfile", m.epoch)
	path := filepath.Join(t.TempDir(), name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tsfile.WriteFile(f, tsfile.FileMeta{Region: "region"}, data, m.opts); err != nil {
		t.Fatal(err)
	}
	f.Close()
	n := uint64(m.devices)
	file := &pipe.Event{Kind: pipe.KindTsFile, CommitID: m.fileCommit, Epoch: m.epoch, Progress: pipe.ProgressIndex{1: n},
		File: &pipe.FileRef{Path: path, Info: engine.FileInfo{Name: name, Epoch: m.epoch, MinIndex: 1, MaxIndex: n},
			MinTime: math.MinInt64, MaxTime: math.MaxInt64}}
	return es, file
}

// A memtable partly exported as tablets, then shipped as its TsFile (a restart after its
// WAL was flushed away): with exactly-once, the file's rows already in Kafka are dropped.
func TestExactlyOnceFileAfterTablets(t *testing.T) {
	for _, format := range []string{FormatJSON, FormatArrow} {
		t.Run(format, func(t *testing.T) {
			_, addr := broker(t)
			p := params(addr, "delivery", "exactly-once", "format", format)
			es, file := flushedMemtable(t, memtable{devices: 6, rows: 20, step: 100, epoch: 7, fileCommit: 4,
				opts: tsfile.WriteOptions{Compression: "lz4"}})
			want := digestOf(es)

			c := openConn(t, p)
			if err := c.Send(context.Background(), es[:3]); err != nil { // tablets 1..3 committed
				t.Fatal(err)
			}
			c.Close()
			c = openConn(t, p) // the restart finds the WAL gone: the file comes instead
			if err := c.Send(context.Background(), []*pipe.Event{file}); err != nil {
				t.Fatal(err)
			}
			st := c.Stats()
			c.Close()
			if st.Overlaps != 1 || st.Dropped != 60 {
				t.Fatalf("stats %+v, want 1 overlap and 60 rows dropped", st)
			}
			recs := consume(t, addr, "root.db")
			var got digest
			for _, r := range recs {
				if format == FormatJSON {
					got.addJSON(t, r.Value)
				} else {
					got = addArrow(t, got, r.Value)
				}
			}
			if got != want {
				t.Fatalf("%d records, digest %+v, want %+v", len(recs), got, want)
			}
		})
	}
}

// The same within one batch: tablets of a memtable, then its file (a carrier switch).
func TestExactlyOnceFileAfterTabletsInOneBatch(t *testing.T) {
	_, addr := broker(t)
	es, file := flushedMemtable(t, memtable{devices: 4, rows: 10, step: 0, epoch: 3, fileCommit: 3})
	want := digestOf(es)
	c := openConn(t, params(addr, "delivery", "exactly-once"))
	if err := c.Send(context.Background(), es[:1]); err != nil { // tablet 1 committed
		t.Fatal(err)
	}
	if err := c.Send(context.Background(), []*pipe.Event{es[1], file}); err != nil { // tablet 2, then the file
		t.Fatal(err)
	}
	st := c.Stats()
	c.Close()
	if st.Dropped != 20 {
		t.Fatalf("stats %+v, want 20 rows dropped", st)
	}
	if got := digestJSON(t, consume(t, addr, "root.db")); got != want {
		t.Fatalf("digest %+v, want %+v", got, want)
	}
}

// A broker that cannot list a data partition's offsets when a TsFile's overlap is read back
// (OFFSET_NOT_AVAILABLE during a leader election) must fail the send, to be retried: the
// read-back must not take the partition for empty and send its rows again.
func TestExactlyOnceFileReadBackErrorFails(t *testing.T) {
	cluster, addr := broker(t)
	p := params(addr, "delivery", "exactly-once")
	es, file := flushedMemtable(t, memtable{devices: 6, rows: 20, step: 100, epoch: 7, fileCommit: 4})
	want := digestOf(es)

	c := openConn(t, p)
	if err := c.Send(context.Background(), es[:3]); err != nil { // tablets 1..3 committed
		t.Fatal(err)
	}
	c.Close()

	// the next by-time listing of root.db (the read-back's start) fails on every partition
	cluster.ControlKey(int16(kmsg.ListOffsets), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		req := kr.(*kmsg.ListOffsetsRequest)
		byTime := false
		for _, rt := range req.Topics {
			for _, rp := range rt.Partitions {
				byTime = byTime || (rt.Topic == "root.db" && rp.Timestamp >= 0)
			}
		}
		if !byTime {
			return nil, nil, false // kept for the next request
		}
		resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
		resp.Version = req.Version
		for _, rt := range req.Topics {
			st := kmsg.NewListOffsetsResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewListOffsetsResponseTopicPartition()
				sp.Partition, sp.ErrorCode, sp.Offset, sp.Timestamp = rp.Partition, kerr.OffsetNotAvailable.Code, -1, -1
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	c = openConn(t, p)
	err := c.Send(context.Background(), []*pipe.Event{file})
	c.Close()
	if err == nil {
		t.Error("the send succeeded though the rows already exported could not be read back")
	} else { // the task retries
		c = openConn(t, p)
		if err := c.Send(context.Background(), []*pipe.Event{file}); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	recs := consume(t, addr, "root.db")
	if got := digestJSON(t, recs); got != want {
		t.Fatalf("%d records, digest %+v, want %+v", len(recs), got, want)
	}
}
