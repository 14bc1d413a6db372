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

// A memtable partly exported as tablets, then shipped as its TsFile (a restart after its
// WAL was flushed away): with exactly-once, the file's rows already in Kafka are dropped.
func TestExactlyOnceFileAfterTablets(t *testing.T) {
	for _, format := range []string{FormatJSON, FormatArrow} {
		t.Run(format, func(t *testing.T) {
			_, addr := broker(t)
			p := params(addr, "delivery", "exactly-once", "format", format)
			var es []*pipe.Event
			var data []tsfile.DeviceData
			var want digest
			for i := 1; i <= 6; i++ {
				dev := fmt.Sprintf("root.db.d%d", i)
				e := tabletEvent(t, uint64(i), dev, int64(i)*100, 20)
				e.Epoch = 7
				es = append(es, e)
				data = append(data, tsfile.DeviceData{Device: dev, Rec: e.Tablet.Rec})
				want.addRecord(dev, e.Tablet.Rec)
			}
			defer release(es)
			path := filepath.Join(t.TempDir(), "7.tsfile")
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tsfile.WriteFile(f, tsfile.FileMeta{Region: "region"}, data, tsfile.WriteOptions{Compression: "lz4"}); err != nil {
				t.Fatal(err)
			}
			f.Close()
			file := &pipe.Event{Kind: pipe.KindTsFile, CommitID: 4, Epoch: 7, Progress: pipe.ProgressIndex{1: 6},
				File: &pipe.FileRef{Path: path, Info: engine.FileInfo{Name: "7.tsfile", Epoch: 7, MinIndex: 1, MaxIndex: 6},
					MinTime: math.MinInt64, MaxTime: math.MaxInt64}}

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
	var es []*pipe.Event
	var data []tsfile.DeviceData
	var want digest
	for i := 1; i <= 4; i++ {
		dev := fmt.Sprintf("root.db.d%d", i)
		e := tabletEvent(t, uint64(i), dev, 0, 10)
		e.Epoch = 3
		es = append(es, e)
		data = append(data, tsfile.DeviceData{Device: dev, Rec: e.Tablet.Rec})
		want.addRecord(dev, e.Tablet.Rec)
	}
	defer release(es)
	path := filepath.Join(t.TempDir(), "3.tsfile")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tsfile.WriteFile(f, tsfile.FileMeta{Region: "region"}, data, tsfile.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	file := &pipe.Event{Kind: pipe.KindTsFile, CommitID: 3, Epoch: 3, Progress: pipe.ProgressIndex{1: 4},
		File: &pipe.FileRef{Path: path, Info: engine.FileInfo{Name: "3.tsfile", Epoch: 3, MinIndex: 1, MaxIndex: 4},
			MinTime: math.MinInt64, MaxTime: math.MaxInt64}}
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
	var es []*pipe.Event
	var data []tsfile.DeviceData
	var want digest
	for i := 1; i <= 6; i++ {
		dev := fmt.Sprintf("root.db.d%d", i)
		e := tabletEvent(t, uint64(i), dev, int64(i)*100, 20)
		e.Epoch = 7
		es = append(es, e)
		data = append(data, tsfile.DeviceData{Device: dev, Rec: e.Tablet.Rec})
		want.addRecord(dev, e.Tablet.Rec)
	}
	defer release(es)
	path := filepath.Join(t.TempDir(), "7.tsfile")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tsfile.WriteFile(f, tsfile.FileMeta{Region: "region"}, data, tsfile.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	file := &pipe.Event{Kind: pipe.KindTsFile, CommitID: 4, Epoch: 7, Progress: pipe.ProgressIndex{1: 6},
		File: &pipe.FileRef{Path: path, Info: engine.FileInfo{Name: "7.tsfile", Epoch: 7, MinIndex: 1, MaxIndex: 6},
			MinTime: math.MinInt64, MaxTime: math.MaxInt64}}

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
	err = c.Send(context.Background(), []*pipe.Event{file})
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
