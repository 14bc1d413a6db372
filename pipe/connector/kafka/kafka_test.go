package kafka

import (
	"context"
	"errors"
	"math"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/tsfile"
)

func release(es []*pipe.Event) {
	for _, e := range es {
		e.Release()
	}
}

// events makes n tablet events with ids and progress from+1.., over devices d0..d2.
func events(t testing.TB, from, n int) []*pipe.Event {
	var out []*pipe.Event
	for i := from + 1; i <= from+n; i++ {
		out = append(out, tabletEvent(t, uint64(i), "root.db.d"+string(rune('0'+i%3)), int64(i)*1000, 10))
	}
	return out
}

func digestOf(es []*pipe.Event) digest {
	var d digest
	for _, e := range es {
		d.addRecord(e.Tablet.Device, e.Tablet.Rec)
	}
	return d
}

func digestJSON(t testing.TB, recs []*kgo.Record) digest {
	var d digest
	for _, r := range recs {
		d.addJSON(t, r.Value)
	}
	return d
}

func TestAtLeastOnceDelivers(t *testing.T) {
	_, addr := broker(t)
	c := openConn(t, params(addr, "topic", "w.{database}"))
	es := events(t, 0, 20)
	defer release(es)
	ctx := context.Background()
	for i := 0; i < len(es); i += 7 {
		if err := c.Send(ctx, es[i:min(i+7, len(es))]); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	recs := consume(t, addr, "w.root.db")
	if got, want := digestJSON(t, recs), digestOf(es); got != want || len(recs) != 200 {
		t.Fatalf("%d records, digest %+v, want %+v", len(recs), got, want)
	}
	// one device's rows stay in order in one partition
	part := map[string]int32{}
	for _, r := range recs {
		dev := string(r.Key)
		if p, ok := part[dev]; ok && p != r.Partition {
			t.Fatalf("device %s in partitions %d and %d", dev, p, r.Partition)
		}
		part[dev] = r.Partition
		if header(r, HeaderDevice) != dev {
			t.Fatalf("record %+v", r)
		}
	}
	if st := c.Stats(); st.Records != 200 || st.Events != 20 {
		t.Fatalf("stats %+v", st)
	}
}

// failAt makes c (and connectors opened from now on) fail the n-th time a send reaches
// step, as a crash there would.
func failAt(t testing.TB, c *Connector, step string, n int) {
	count := 0
	h := func(s string) error {
		if s == step {
			count++
			if count == n {
				return errors.New("injected crash at " + step)
			}
		}
		return nil
	}
	c.hook = h
	testHook.Store(&h)
	t.Cleanup(func() { testHook.Store(nil) })
}

func TestExactlyOnceResumesAfterCrashes(t *testing.T) {
	_, addr := broker(t)
	p := params(addr, "delivery", "exactly-once", "topic", "w.{database}")
	ctx := context.Background()
	es := events(t, 0, 12)
	defer release(es)

	c := openConn(t, p)
	if err := c.Send(ctx, es[0:5]); err != nil { // committed
		t.Fatal(err)
	}
	failAt(t, c, "produced", 1)
	if err := c.Send(ctx, es[5:10]); err == nil { // crashes before its commit
		t.Fatal("no injected crash")
	}
	c.Close()

	// the pipe redelivers from its durable progress (here: nothing saved), Kafka holds 1..5
	c = openConn(t, p)
	if pos := c.Position(); !equalProgress(pos.Progress, pipe.ProgressIndex{1: 5}) || pos.Tail != 1 {
		t.Fatalf("position after restart %+v", pos)
	}
	failAt(t, c, "committed", 2)
	if err := c.Send(ctx, es[0:8]); err != nil { // 1..5 skipped, 6..8 committed
		t.Fatal(err)
	}
	if err := c.Send(ctx, es[8:12]); err == nil { // committed, then a crash before the ack
		t.Fatal("no injected crash")
	}
	if st := c.Stats(); st.Skipped != 5 || st.Transactions != 2 {
		t.Fatalf("stats %+v", st)
	}
	c.Close()
	testHook.Store(nil)

	c = openConn(t, p)
	if err := c.Send(ctx, es[5:12]); err != nil { // all already in Kafka
		t.Fatal(err)
	}
	if st := c.Stats(); st.Skipped != 7 || st.Records != 0 {
		t.Fatalf("stats %+v", st)
	}
	c.Close()
	recs := consume(t, addr, "w.root.db")
	if got, want := digestJSON(t, recs), digestOf(es); got != want || len(recs) != 120 {
		t.Fatalf("%d records, digest %+v, want %+v", len(recs), got, want)
	}
	// the progress topic holds the position, readable by any read_committed consumer
	pr := consume(t, addr, DefaultProgressTopic)
	if len(pr) == 0 || string(pr[len(pr)-1].Key) != "p/region" {
		t.Fatalf("progress records %v", pr)
	}
}

// splitOutputs returns three outputs of one input: tablet events of root.db.d0 to
// root.db.d2, all with commit id 5 and progress {1:5}.
func splitOutputs(t testing.TB) []*pipe.Event {
	var es []*pipe.Event
	for i := 0; i < 3; i++ {
		es = append(es, tabletEvent(t, 5, "root.db.d"+string(rune('0'+i)), 0, 4))
	}
	return es
}

// restartAfter sends sent (the first outputs of an input) through a connector of p and
// closes it, then opens a new one, as a restart does; the new one must find the input's
// len(sent) outputs committed (its position's tail).
func restartAfter(t testing.TB, p pipe.Params, sent []*pipe.Event) *Connector {
	t.Helper()
	c := openConn(t, p)
	if err := c.Send(context.Background(), sent); err != nil {
		t.Fatal(err)
	}
	c.Close()
	c = openConn(t, p)
	if pos := c.Position(); pos.Tail != len(sent) {
		t.Fatalf("position %+v", pos)
	}
	return c
}

// A processor may emit several outputs of one input, all with its progress; a transaction
// may end between them, and a restart must send only the rest.
func TestExactlyOnceSplitOutputs(t *testing.T) {
	_, addr := broker(t)
	p := params(addr, "delivery", "exactly-once")
	ctx := context.Background()
	es := splitOutputs(t)
	defer release(es)
	c := restartAfter(t, p, es[:2])
	if err := c.Send(ctx, es); err != nil {
		t.Fatal(err)
	}
	c.Close()
	recs := consume(t, addr, "root.db")
	if got, want := digestJSON(t, recs), digestOf(es); got != want {
		t.Fatalf("%d records, digest %+v, want %+v", len(recs), got, want)
	}
}

func TestTsFileStreamsRows(t *testing.T) {
	_, addr := broker(t)
	dir := t.TempDir()
	var data []tsfile.DeviceData
	var want digest
	for i, dev := range []string{"root.db.a", "root.db.b", "root.other.c"} {
		tb := tablet(t, dev, int64(i)*100, 50)
		defer tb.Release()
		data = append(data, tsfile.DeviceData{Device: dev, Rec: tb.Rec})
		if dev != "root.other.c" {
			want.addRecord(dev, tb.Rec)
		}
	}
	path := filepath.Join(dir, "1.tsfile")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tsfile.WriteFile(f, tsfile.FileMeta{Region: "r"}, data, tsfile.WriteOptions{Compression: "lz4", MaxBatchRows: 16}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	e := &pipe.Event{Kind: pipe.KindTsFile, CommitID: 1, Progress: pipe.ProgressIndex{1: 9},
		File: &pipe.FileRef{Path: path, Info: engine.FileInfo{Name: "1.tsfile"}, Pattern: tsfile.MustPattern("root.db.**"), MinTime: math.MinInt64, MaxTime: math.MaxInt64}}
	for _, format := range []string{"json", "arrow"} {
		c := openPipe(t, format, params(addr, "format", format, "topic", format+".{database}", "delivery", "exactly-once"))
		if err := c.Send(context.Background(), []*pipe.Event{e}); err != nil {
			t.Fatal(err)
		}
		c.Close()
		recs := consume(t, addr, format+".root.db")
		var got digest
		for _, r := range recs {
			if format == "json" {
				got.addJSON(t, r.Value)
			} else {
				got = addArrow(t, got, r.Value)
			}
		}
		if got != want {
			t.Fatalf("%s: %d records, digest %+v, want %+v", format, len(recs), got, want)
		}
	}
}

// A message larger than the broker accepts fails the send with a clear, permanent error:
// nothing is dropped silently.
func TestMessageTooLargeFailsClearly(t *testing.T) {
	_, addr := broker(t, kfake.BrokerConfigs(map[string]string{"message.max.bytes": "4000"}))
	c := openConn(t, params(addr, "format", "arrow"))
	defer c.Close()
	es := events(t, 0, 1)
	defer release(es)
	es[0].Tablet.Release()
	es[0].Tablet = tablet(t, "root.db.d1", 0, 1000)
	err := c.Send(context.Background(), es)
	if !pipe.IsPermanent(err) || !contains(err, "larger than the broker accepts") {
		t.Fatalf("got %v", err)
	}
}

func TestUnreachableBrokerFailsOpen(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := &Connector{}
	start := time.Now()
	err = c.Open(context.Background(), &pipe.Env{Pipe: "p", Params: params(addr, "timeout", "500ms")})
	if err == nil || pipe.IsPermanent(err) || !contains(err, "unreachable") {
		t.Fatalf("got %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v", d)
	}
	// a bad parameter is permanent: retrying cannot fix it
	err = (&Connector{}).Open(context.Background(), &pipe.Env{Pipe: "p", Params: params(addr, "topic", "{nope}")})
	if !pipe.IsPermanent(err) || !contains(err, "sink.topic") {
		t.Fatalf("got %v", err)
	}
}

func TestBrokerRestartMidExport(t *testing.T) {
	dir := t.TempDir()
	c1, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DataDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	addr := c1.ListenAddrs()[0]
	_, port, _ := net.SplitHostPort(addr)
	c := openConn(t, params(addr, "delivery", "exactly-once"))
	defer c.Close()
	es := events(t, 0, 10)
	defer release(es)
	if err := c.Send(context.Background(), es[:5]); err != nil {
		t.Fatal(err)
	}
	c1.Close()
	p, _ := net.LookupPort("tcp", port)
	c2, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DataDir(dir), kfake.Ports(p))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if err := c.Send(context.Background(), es[5:]); err != nil {
		t.Fatal(err)
	}
	c.Close()
	recs := consume(t, addr, "root.db")
	if got, want := digestJSON(t, recs), digestOf(es); got != want {
		t.Fatalf("%d records, digest %+v, want %+v", len(recs), got, want)
	}
}

// An event without a progress index sent while a restart still skips the outputs of an
// input it had committed part of must not end that skipping: the rest of those outputs that
// Kafka holds are still skipped.
func TestExactlyOnceSplitOutputsAfterUncounted(t *testing.T) {
	_, addr := broker(t)
	p := params(addr, "delivery", "exactly-once")
	ctx := context.Background()
	es := splitOutputs(t)
	free := tabletEvent(t, 5, "root.db.d9", 0, 4)
	free.Progress = nil // sent every time it is delivered
	all := append([]*pipe.Event{free}, es...)
	defer release(all)
	c := restartAfter(t, p, es[:2])
	if err := c.Send(ctx, []*pipe.Event{free, es[0]}); err != nil { // free sent, es[0] skipped
		t.Fatal(err)
	}
	if err := c.Send(ctx, es[1:]); err != nil { // es[1] skipped, es[2] sent
		t.Fatal(err)
	}
	st := c.Stats()
	c.Close()
	if st.Skipped != 2 {
		t.Fatalf("stats %+v, want 2 skipped", st)
	}
	recs := consume(t, addr, "root.db")
	if got, want := digestJSON(t, recs), digestOf(all); got != want {
		t.Fatalf("%d records, digest %+v, want %+v", len(recs), got, want)
	}
}
