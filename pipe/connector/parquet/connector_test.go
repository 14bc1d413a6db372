package parquet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	pq "github.com/parquet-go/parquet-go"

	"github.com/weir-dev/weir/engine/vfs"
	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/tsfile"
)

// crash stops c as a killed process would: nothing is finished, acknowledged or removed.
func (c *Connector) crash() {
	c.mu.Lock()
	c.closed = true
	close(c.stop)
	c.mu.Unlock()
	<-c.done
	for _, p := range c.parts {
		if p.w != nil {
			p.w.f.Close()
			p.w = nil
		}
	}
}

func sendAsync(t testing.TB, c *Connector, evs []*pipe.Event, per int, a *acker) {
	t.Helper()
	for i := 0; i < len(evs); i += per {
		if err := c.SendAsync(context.Background(), evs[i:min(i+per, len(evs))], a.ack); err != nil {
			t.Fatal(err)
		}
	}
}

// snapshot reads every finished file under dir: relative name → content.
func snapshot(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, rel := range finalFiles(t, dir) {
		b, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		out[rel] = b
	}
	return out
}

func sameFiles(t testing.TB, got, want map[string][]byte) {
	t.Helper()
	for name, b := range want {
		g, ok := got[name]
		switch {
		case !ok:
			t.Errorf("missing file %s", name)
		case !bytes.Equal(g, b):
			t.Errorf("file %s differs (%d bytes, want %d)", name, len(g), len(b))
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("extra file %s", name)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	for _, by := range []string{"none", "device", "day"} {
		t.Run(by, func(t *testing.T) {
			dir := t.TempDir()
			evs, want := workload(t, 40, 4, 50, testCols)
			c := openConn(t, New(Options{}), params(dir, ParamPartitionBy, by, ParamRowGroupSize, "64"))
			defer c.Close()
			for i := 0; i < len(evs); i += 7 {
				if err := c.Send(context.Background(), evs[i:min(i+7, len(evs))]); err != nil {
					t.Fatal(err)
				}
			}
			sameRows(t, readRows(t, dir), want)
			if tmp := tempFiles(t, dir); len(tmp) > 0 {
				t.Fatalf("temporary files left: %v", tmp)
			}
			files := finalFiles(t, dir)
			for _, f := range files {
				d := filepath.Dir(f)
				switch by {
				case "none":
					if d != "." {
						t.Errorf("file %s not in the top directory", f)
					}
				case "device":
					if !strings.HasPrefix(d, "device=root.db.d") {
						t.Errorf("file %s not in a device directory", f)
					}
					for _, r := range readFile(t, filepath.Join(dir, f)) {
						if "device="+r.Device != d {
							t.Fatalf("row of %s in %s", r.Device, f)
						}
					}
				case "day":
					if !strings.HasPrefix(d, "date=2023-") {
						t.Errorf("file %s not in a date directory", f)
					}
					for _, r := range readFile(t, filepath.Join(dir, f)) {
						if day := dayKey(floorDiv(r.Time, 86_400_000)); "date="+day != d {
							t.Fatalf("row of day %s in %s", day, f)
						}
					}
				}
			}
		})
	}
}

func TestSchema(t *testing.T) {
	for _, prec := range []string{"ms", "us", "ns"} {
		dir := t.TempDir()
		evs, want := workload(t, 3, 1, 10, testCols)
		c := openConn(t, New(Options{}), params(dir, ParamPrecision, prec))
		if err := c.Send(context.Background(), evs); err != nil {
			t.Fatal(err)
		}
		c.Close()
		files := finalFiles(t, dir)
		if len(files) != 1 {
			t.Fatalf("files %v", files)
		}
		sameRows(t, readRows(t, dir), want)
		s, err := Schema(testCols, Precision(prec))
		if err != nil {
			t.Fatal(err)
		}
		unit := map[string]string{"ms": "MILLIS", "us": "MICROS", "ns": "NANOS"}[prec]
		str := s.String()
		for _, w := range []string{"required binary device (STRING)", "required int64 time (TIMESTAMP(isAdjustedToUTC=true,unit=" + unit + "))",
			"optional boolean b", "optional int32 i32", "optional int64 i64", "optional float f32", "optional double f64", "optional binary s (STRING)"} {
			if !strings.Contains(str, w) {
				t.Errorf("%s: schema lacks %q:\n%s", prec, w, str)
			}
		}
		if i, j := strings.Index(str, " f32"), strings.Index(str, " f64"); i > j || strings.Index(str, " time") > i {
			t.Errorf("columns out of order:\n%s", str)
		}
	}
	if _, err := Schema([]tsfile.Column{{Name: "time", Type: tsfile.Int64}}, Millisecond); err == nil {
		t.Error("a measurement named time was accepted")
	}
	if _, err := Schema([]tsfile.Column{{Name: "a", Type: tsfile.Int64}, {Name: "a", Type: tsfile.Text}}, Millisecond); err == nil {
		t.Error("a measurement given twice was accepted")
	}
}

// Events are acknowledged only once the files that hold them are finished.
func TestAcksOnlyWhenFinished(t *testing.T) {
	dir := t.TempDir()
	evs, want := workload(t, 30, 3, 20, testCols)
	c := openConn(t, New(Options{}), params(dir, ParamPartitionBy, "device", ParamRollInterval, "0"))
	defer c.Close()
	a := newAcker()
	sendAsync(t, c, evs, 4, a)
	if n := a.count(); n != 0 {
		t.Fatalf("%d events acknowledged before any file was finished", n)
	}
	if f := finalFiles(t, dir); len(f) != 0 {
		t.Fatalf("finished files before a roll: %v", f)
	}
	if n := len(tempFiles(t, dir)); n != 3 {
		t.Fatalf("%d open files, want 3", n)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	a.waitAcks(t, len(evs))
	sameRows(t, readRows(t, dir), want)
	if tmp := tempFiles(t, dir); len(tmp) > 0 {
		t.Fatalf("temporary files left: %v", tmp)
	}
}

// Heartbeats and deletions carry no rows: acknowledged at once, even behind held events.
func TestRowlessEventsAckedAtOnce(t *testing.T) {
	dir := t.TempDir()
	evs, _ := workload(t, 1, 1, 5, testCols)
	c := openConn(t, New(Options{}), params(dir, ParamRollInterval, "0"))
	defer c.Close()
	a := newAcker()
	batch := []*pipe.Event{evs[0], {Kind: pipe.KindHeartbeat, CommitID: 2, MinIndex: 2, MaxIndex: 2},
		{Kind: pipe.KindDeletion, CommitID: 3, MinIndex: 3, MaxIndex: 3}}
	if err := c.SendAsync(context.Background(), batch, a.ack); err != nil {
		t.Fatal(err)
	}
	a.waitAcks(t, 2)
	if a.ids[1] != 0 || a.ids[2] != 1 || a.ids[3] != 1 {
		t.Fatalf("acks %v", a.ids)
	}
}

func TestRollSize(t *testing.T) {
	dir := t.TempDir()
	evs, want := workload(t, 12, 1, 30, testCols)
	c := openConn(t, New(Options{}), params(dir, ParamRollSize, "1", ParamRollInterval, "0"))
	defer c.Close()
	a := newAcker()
	sendAsync(t, c, evs, 5, a)
	a.waitAcks(t, len(evs)) // every event ends its own file
	files := finalFiles(t, dir)
	if len(files) != len(evs) {
		t.Fatalf("%d files for %d events: %v", len(files), len(evs), files)
	}
	for i, f := range files {
		fn, ok := ParseFileName(f)
		if !ok || fn.Region != "r1" || fn.First != uint64(i+1) || fn.Last != (Position{Index: uint64(i + 1)}) {
			t.Fatalf("file %d is %s (%+v)", i, f, fn)
		}
	}
	sameRows(t, readRows(t, dir), want)
	f, err := os.Open(filepath.Join(dir, files[4]))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	pf, err := pq.OpenFile(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"weir.format_version": "1", "weir.region": "r1", "weir.partition": "",
		"weir.min_index": "5", "weir.max_index": "5", "weir.min_epoch": "0", "weir.max_epoch": "0", "weir.progress": "1:5", "weir.timestamp_precision": "ms"} {
		if got, ok := pf.Lookup(k); !ok || got != v {
			t.Errorf("metadata %s = %q, %v; want %q", k, got, ok, v)
		}
	}
}

func TestRollInterval(t *testing.T) {
	dir := t.TempDir()
	evs, want := workload(t, 6, 2, 10, testCols)
	c := openConn(t, New(Options{}), params(dir, ParamRollInterval, "20ms"))
	defer c.Close()
	a := newAcker()
	sendAsync(t, c, evs, 6, a)
	a.waitAcks(t, len(evs)) // the roller finishes the file
	sameRows(t, readRows(t, dir), want)
}

// The sink finishes its files when it holds as many events as the pipe delivers before it
// needs acknowledgements (queue-size + batch.max-events).
func TestStallRoll(t *testing.T) {
	dir := t.TempDir()
	evs, want := workload(t, 6, 2, 10, testCols)
	c := openConn(t, New(Options{}), params(dir, ParamRollInterval, "0", pipe.ParamQueueSize, "4", pipe.ParamBatchMaxEvents, "2"))
	defer c.Close()
	a := newAcker()
	sendAsync(t, c, evs[:4], 2, a)
	if n := a.count(); n != 0 {
		t.Fatalf("%d acks before the stall", n)
	}
	// a heartbeat acknowledged behind held events is still in flight: it counts
	hb := &pipe.Event{Kind: pipe.KindHeartbeat, CommitID: 100, MinIndex: 4, MaxIndex: 4}
	if err := c.SendAsync(context.Background(), []*pipe.Event{hb, evs[4]}, a.ack); err != nil {
		t.Fatal(err)
	}
	a.waitAcks(t, 6)
	if err := c.SendAsync(context.Background(), evs[5:], a.ack); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	a.waitAcks(t, 7)
	sameRows(t, readRows(t, dir), want)
}

// A new measurement or a changed type finishes the open file; the next one has the union.
func TestColumnsChange(t *testing.T) {
	dir := t.TempDir()
	c := openConn(t, New(Options{}), params(dir, ParamRollInterval, "0"))
	defer c.Close()
	var want []row
	var evs []*pipe.Event
	sets := [][]tsfile.Column{
		{{Name: "a", Type: tsfile.Int64}},
		{{Name: "a", Type: tsfile.Int64}}, // same: same file
		{{Name: "b", Type: tsfile.Text}},  // subset of the union next: new file with a, b
		{{Name: "a", Type: tsfile.Int64}, {Name: "b", Type: tsfile.Text}},
		{{Name: "a", Type: tsfile.Double}}, // type change: new file
	}
	for i, cols := range sets {
		tb, r := makeTablet(t, "root.db.d1", cols, int64(i*100), 1, 10)
		evs = append(evs, tabletEvent(tb, uint64(i+1)))
		want = append(want, r...)
	}
	defer func() {
		for _, e := range evs {
			e.Release()
		}
	}()
	if err := c.Send(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	files := finalFiles(t, dir)
	if len(files) != 3 {
		t.Fatalf("files %v, want 3", files)
	}
	sameRows(t, readRows(t, dir), want)
}

func TestMaxOpenFiles(t *testing.T) {
	dir := t.TempDir()
	evs, want := workload(t, 40, 10, 5, testCols)
	c := openConn(t, New(Options{}), params(dir, ParamPartitionBy, "device", ParamMaxOpenFiles, "3", ParamRollInterval, "0"))
	defer c.Close()
	a := newAcker()
	for i := range evs {
		if err := c.SendAsync(context.Background(), evs[i:i+1], a.ack); err != nil {
			t.Fatal(err)
		}
		if n := len(tempFiles(t, dir)); n > 3 {
			t.Fatalf("%d files open", n)
		}
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	a.waitAcks(t, len(evs))
	sameRows(t, readRows(t, dir), want)
}

func TestTsFileEvent(t *testing.T) {
	for _, by := range []string{"none", "device", "day"} {
		t.Run(by, func(t *testing.T) {
			dir := t.TempDir()
			evs, want := workload(t, 8, 3, 40, testCols)
			var data []tsfile.DeviceData
			byDev := map[string][]*tsfile.Tablet{}
			for _, e := range evs {
				byDev[e.Tablet.Device] = append(byDev[e.Tablet.Device], e.Tablet)
			}
			for dev, tbs := range byDev {
				rec := concat(t, tbs)
				defer rec.Release()
				data = append(data, tsfile.DeviceData{Device: dev, Rec: rec})
			}
			path := filepath.Join(t.TempDir(), "f.tsfile")
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			meta, err := tsfile.WriteFile(f, tsfile.FileMeta{Region: "r1"}, data, tsfile.WriteOptions{MaxBatchRows: 16})
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			e := &pipe.Event{Kind: pipe.KindTsFile, CommitID: 1, Region: "r1", MinIndex: 1, MaxIndex: 8,
				File: &pipe.FileRef{Path: path, MinTime: -1 << 63, MaxTime: 1<<63 - 1}}
			e.File.Info.Points = meta.Points
			c := openConn(t, New(Options{}), params(dir, ParamPartitionBy, by))
			defer c.Close()
			if err := c.Send(context.Background(), []*pipe.Event{e}); err != nil {
				t.Fatal(err)
			}
			sameRows(t, readRows(t, dir), want)
		})
	}
}

func TestBadEvents(t *testing.T) {
	evs, _ := workload(t, 2, 1, 3, testCols)
	c := openConn(t, New(Options{}), params(t.TempDir()))
	defer c.Close()
	e := &pipe.Event{Kind: pipe.KindTablet, CommitID: 1, Region: "r1", Tablet: evs[0].Tablet}
	if err := c.Send(context.Background(), []*pipe.Event{e}); err == nil || !pipe.IsPermanent(err) || !strings.Contains(err.Error(), "no WAL index range") {
		t.Fatalf("event without index: %v", err)
	}
	// the failure sticks: the task restarts the sink
	if err := c.Send(context.Background(), evs[1:]); err == nil {
		t.Fatal("send after a failure succeeded")
	}
	c2 := openConn(t, New(Options{}), params(t.TempDir()))
	defer c2.Close()
	e = &pipe.Event{Kind: pipe.KindTablet, CommitID: 2, Region: "r2", MinIndex: 2, MaxIndex: 2, Tablet: evs[1].Tablet}
	if err := c2.Send(context.Background(), []*pipe.Event{evs[0], e}); err == nil || !strings.Contains(err.Error(), "region r2 reached the sink of region r1") {
		t.Fatalf("region mix: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, nil, 0o644)
	err := New(Options{}).Open(context.Background(), &pipe.Env{Params: params(filepath.Join(file, "sub"))})
	if err == nil || !strings.Contains(err.Error(), "sink.path") {
		t.Fatalf("path under a file: %v", err)
	}
	err = New(Options{}).Open(context.Background(), &pipe.Env{Params: params(t.TempDir(), ParamCompression, "lz4")})
	if err == nil || !pipe.IsPermanent(err) || !strings.Contains(err.Error(), "sink.compression") {
		t.Fatalf("bad compression: %v", err)
	}
}

// A crash before a roll leaves no finished file for the lost rows; the replay produces the
// very files of a run without the crash, and no duplicates.
func TestCrashMidFileReplay(t *testing.T) {
	for _, by := range []string{"none", "device", "day"} {
		t.Run(by, func(t *testing.T) {
			evs, want := workload(t, 40, 3, 30, testCols)
			kv := []string{ParamPartitionBy, by, ParamRollSize, "4KiB", ParamRollInterval, "0", ParamRowGroupSize, "50"}

			clean := t.TempDir()
			c := openConn(t, New(Options{}), params(clean, kv...))
			a := newAcker()
			sendAsync(t, c, evs, 8, a)
			if err := c.Flush(); err != nil {
				t.Fatal(err)
			}
			c.Close()
			a.waitAcks(t, len(evs))
			wantFiles := snapshot(t, clean)
			if len(wantFiles) < 4 {
				t.Fatalf("only %d files: roll-size too large for the test", len(wantFiles))
			}

			for _, cut := range []int{1, 21, 39} {
				dir := t.TempDir()
				c := openConn(t, New(Options{}), params(dir, kv...))
				a := newAcker()
				sendAsync(t, c, evs[:cut], 8, a)
				c.crash()
				if tmp := tempFiles(t, dir); len(tmp) == 0 {
					t.Fatalf("cut %d: no file was open at the crash", cut)
				}
				for name, b := range snapshot(t, dir) { // finished files are complete
					if !bytes.Equal(b, wantFiles[name]) {
						t.Fatalf("cut %d: finished file %s differs from the clean run's", cut, name)
					}
				}
				// the pipe redelivers from its last durable checkpoint, at or before the
				// first unacknowledged event: here from the start
				c = openConn(t, New(Options{}), params(dir, kv...))
				b := newAcker()
				sendAsync(t, c, evs, 8, b)
				if err := c.Flush(); err != nil {
					t.Fatal(err)
				}
				c.Close()
				b.waitAcks(t, len(evs))
				sameFiles(t, snapshot(t, dir), wantFiles)
				sameRows(t, readRows(t, dir), want)
				if tmp := tempFiles(t, dir); len(tmp) > 0 {
					t.Fatalf("cut %d: temporary files left: %v", cut, tmp)
				}
			}
		})
	}
}

// Files finished but not yet covered by the pipe's durable progress: the redelivered
// events are skipped and acknowledged, nothing is rewritten.
func TestReplayOfFinishedFiles(t *testing.T) {
	dir := t.TempDir()
	evs, want := workload(t, 20, 2, 10, testCols)
	kv := []string{ParamPartitionBy, "device", ParamRollSize, "3KiB", ParamRollInterval, "0"}
	c := openConn(t, New(Options{}), params(dir, kv...))
	if err := c.Send(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	c.Close()
	before := snapshot(t, dir)
	c = openConn(t, New(Options{}), params(dir, kv...))
	defer c.Close()
	a := newAcker()
	sendAsync(t, c, evs[5:], 3, a)
	a.waitAcks(t, 15) // all at once: nothing to write
	if n := len(tempFiles(t, dir)); n != 0 {
		t.Fatalf("%d files opened for a replay", n)
	}
	sameFiles(t, snapshot(t, dir), before)
	sameRows(t, readRows(t, dir), want)
}

// Several outputs of one input (same WAL index) split over files by a roll: a replay
// after a crash writes exactly the outputs not in a finished file.
func TestReplaySplitOutputs(t *testing.T) {
	dir := t.TempDir()
	var evs []*pipe.Event
	var want []row
	for i := 0; i < 6; i++ { // one input at index 7, six outputs
		tb, r := makeTablet(t, "root.db.d1", testCols, int64(i*10), 1, 10)
		e := tabletEvent(tb, 7)
		evs = append(evs, e)
		want = append(want, r...)
	}
	defer func() {
		for _, e := range evs {
			e.Release()
		}
	}()
	c := openConn(t, New(Options{}), params(dir, ParamRollInterval, "0"))
	a := newAcker()
	sendAsync(t, c, evs[:2], 2, a)
	if err := c.Flush(); err != nil { // a roll between outputs
		t.Fatal(err)
	}
	sendAsync(t, c, evs[2:3], 1, a)
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	sendAsync(t, c, evs[3:5], 2, a)
	c.crash()
	files := finalFiles(t, dir)
	if len(files) != 2 || !strings.HasSuffix(files[0], "07_1.parquet") || !strings.HasSuffix(files[1], "07_2.parquet") {
		t.Fatalf("files %v", files)
	}
	c = openConn(t, New(Options{}), params(dir, ParamRollInterval, "0"))
	defer c.Close()
	if err := c.Send(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	sameRows(t, readRows(t, dir), want)
	if files := finalFiles(t, dir); len(files) != 3 || !strings.HasSuffix(files[2], "07_5.parquet") {
		t.Fatalf("files %v", files)
	}
}

// A full disk fails the sink visibly; no partial file is left under a final name, and the
// replay once space is back gives exactly the source rows.
func TestDiskFull(t *testing.T) {
	for _, limit := range []int64{0, 5000, 40_000} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			dir := t.TempDir()
			evs, want := workload(t, 40, 4, 30, testCols)
			kv := []string{ParamPartitionBy, "device", ParamRollSize, "4KiB", ParamRollInterval, "0", ParamRowGroupSize, "16"}
			fs := vfs.NewFaulty(nil)
			fs.FailWritesAfter(limit)
			c := openConn(t, New(Options{FS: fs}), params(dir, kv...))
			a := newAcker()
			var err error
			for i := 0; i < len(evs) && err == nil; i += 4 {
				err = c.SendAsync(context.Background(), evs[i:min(i+4, len(evs))], a.ack)
			}
			if err == nil {
				err = c.Flush()
			}
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("error %v, want ENOSPC", err)
			}
			if err := c.SendAsync(context.Background(), evs[:1], a.ack); !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("send after the failure: %v", err)
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			if tmp := tempFiles(t, dir); len(tmp) > 0 {
				t.Fatalf("temporary files left: %v", tmp)
			}
			// every finished file is complete, and holds only acknowledged events
			acked := map[row]bool{}
			for id := range a.ids {
				for _, r := range readEventRows(t, evs[id-1]) {
					acked[r] = true
				}
			}
			for _, r := range readRows(t, dir) {
				if !acked[r] {
					t.Fatalf("row %v of an unacknowledged event is in a finished file", r)
				}
			}
			fs.Reset()
			c = openConn(t, New(Options{FS: fs}), params(dir, kv...))
			if err := c.Send(context.Background(), evs); err != nil {
				t.Fatal(err)
			}
			c.Close()
			sameRows(t, readRows(t, dir), want)
		})
	}
}

// A file the roller finishes in the background (roll-interval) fails the task through
// Env.Fail when it cannot be written: the pipe hears of it without sending another batch,
// nothing of the file is acknowledged, no temporary file is left.
func TestBackgroundRollFailureFailsTheTask(t *testing.T) {
	dir := t.TempDir()
	evs, _ := workload(t, 4, 1, 10, testCols)
	fs := vfs.NewFaulty(nil)
	fs.SetHook(func(o vfs.Op, name string) error {
		if o == vfs.OpRename {
			return fmt.Errorf("%w: %s", vfs.ErrInjected, name)
		}
		return nil
	})
	failed := make(chan error, 4)
	c := New(Options{FS: fs})
	if err := c.Open(context.Background(), &pipe.Env{Pipe: "p", Params: params(dir, ParamRollInterval, "20ms"),
		Fail: func(err error) { failed <- err }}); err != nil {
		t.Fatal(err)
	}
	a := newAcker()
	sendAsync(t, c, evs, 4, a)
	select {
	case err := <-failed:
		if !errors.Is(err, vfs.ErrInjected) {
			t.Fatalf("failure %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no failure reported")
	}
	if err := c.SendAsync(context.Background(), evs[:1], a.ack); !errors.Is(err, vfs.ErrInjected) {
		t.Fatalf("send after the failure: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("close: %v (the failure was reported already)", err)
	}
	if a.count() != 0 || len(finalFiles(t, dir)) != 0 || len(tempFiles(t, dir)) != 0 {
		t.Fatalf("acks %v, files %v, temporary %v", a.ids, finalFiles(t, dir), tempFiles(t, dir))
	}
	select {
	case err := <-failed:
		t.Fatalf("a second failure: %v", err)
	default:
	}
}

// readEventRows lists a tablet event's rows in the test's form.
func readEventRows(t testing.TB, e *pipe.Event) []row {
	var out []row
	rec := e.Tablet.Rec
	for i, ts := range e.Tablet.Times() {
		m := map[string]any{}
		for k := 1; k < int(rec.NumCols()); k++ {
			if v := tsfile.Value(rec.Column(k), i); v != nil {
				m[rec.Schema().Field(k).Name] = v
			}
		}
		if len(m) > 0 {
			out = append(out, row{Device: e.Tablet.Device, Time: ts, Vals: formatVals(m)})
		}
	}
	return out
}

// A failed rename or directory sync fails the sink; no file of unacknowledged events is
// left under a final name by a failed rename.
func TestRenameAndSyncFailures(t *testing.T) {
	for _, op := range []vfs.Op{vfs.OpRename, vfs.OpSyncDir, vfs.OpSync} {
		t.Run(op.String(), func(t *testing.T) {
			dir := t.TempDir()
			evs, want := workload(t, 4, 1, 10, testCols)
			fs := vfs.NewFaulty(nil)
			c := openConn(t, New(Options{FS: fs}), params(dir))
			fs.SetHook(func(o vfs.Op, name string) error {
				if o == op && !strings.HasSuffix(name, ".tmp") == (op == vfs.OpSyncDir) {
					return fmt.Errorf("%w: %s", vfs.ErrInjected, name)
				}
				return nil
			})
			a := newAcker()
			sendAsync(t, c, evs, 4, a)
			if err := c.Flush(); !errors.Is(err, vfs.ErrInjected) {
				t.Fatalf("flush: %v", err)
			}
			c.Close()
			if a.count() != 0 {
				t.Fatalf("events acknowledged: %v", a.ids)
			}
			if op != vfs.OpSyncDir && len(finalFiles(t, dir)) != 0 {
				t.Fatalf("final files after a failed %s: %v", op, finalFiles(t, dir))
			}
			fs.Reset()
			c = openConn(t, New(Options{FS: fs}), params(dir))
			if err := c.Send(context.Background(), evs); err != nil {
				t.Fatal(err)
			}
			c.Close()
			sameRows(t, readRows(t, dir), want)
		})
	}
}

// writeTsFile writes the merge of tablets (later writes win per measurement, as in a
// memtable) into a TsFile and returns its path.
func writeTsFile(t testing.TB, tbs []*tsfile.Tablet) string {
	t.Helper()
	state := map[string]map[int64]map[string]any{}
	for _, tb := range tbs {
		dev := state[tb.Device]
		if dev == nil {
			dev = map[int64]map[string]any{}
			state[tb.Device] = dev
		}
		for i, ts := range tb.Times() {
			if dev[ts] == nil {
				dev[ts] = map[string]any{}
			}
			for k := 1; k < int(tb.Rec.NumCols()); k++ {
				if v := tsfile.Value(tb.Rec.Column(k), i); v != nil {
					dev[ts][tb.Rec.Schema().Field(k).Name] = v
				}
			}
		}
	}
	var data []tsfile.DeviceData
	for device, rows := range state {
		b := tsfile.NewTabletBuilder(nil, device, testCols)
		var times []int64
		for ts := range rows {
			times = append(times, ts)
		}
		sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
		for _, ts := range times {
			vals := make([]any, len(testCols))
			for k, c := range testCols {
				vals[k] = rows[ts][c.Name]
			}
			if err := b.AppendRow(ts, vals...); err != nil {
				t.Fatal(err)
			}
		}
		tb, err := b.Build()
		b.Release()
		if err != nil {
			t.Fatal(err)
		}
		defer tb.Release()
		data = append(data, tsfile.DeviceData{Device: device, Rec: tb.Rec})
	}
	path := filepath.Join(t.TempDir(), "f.tsfile")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := tsfile.WriteFile(f, tsfile.FileMeta{Region: "r1"}, data, tsfile.WriteOptions{MaxBatchRows: 16}); err != nil {
		t.Fatal(err)
	}
	return path
}

// An epoch's first writes go out as tablets, then its file (a carrier switch, or a restart
// once the WAL is gone): the file's rows that repeat exported ones are dropped, the others
// (later writes, and rewrites with new values) are exported.
//
// With derived set, the file reaches the sink as tablets a processor made from it: one
// event per device, all with the file's index range.
func TestFileAfterTablets(t *testing.T) {
	for _, by := range []string{"none", "device", "day"} {
		for _, v := range []struct{ crash, derived bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
			crash := v.crash
			t.Run(fmt.Sprintf("%s-crash=%v-derived=%v", by, v.crash, v.derived), func(t *testing.T) {
				dir := t.TempDir()
				kv := []string{ParamPartitionBy, by, ParamRollInterval, "0"}
				// epoch: indices 11..30; tablets 11..20 shipped, the file covers all 20
				var tbs []*tsfile.Tablet
				var want []row
				for i := 0; i < 20; i++ {
					tb, r := makeTablet(t, fmt.Sprintf("root.db.d%d", i%3), testCols, int64(i)*3_600_000*7, 1000, 12)
					defer tb.Release()
					tbs = append(tbs, tb)
					want = append(want, r...)
				}
				// index 30 rewrites the first rows of tablet 0 with other values: the file
				// holds the new values
				rb := tsfile.NewTabletBuilder(nil, "root.db.d0", testCols[1:2])
				for i := 0; i < 3; i++ {
					if err := rb.AppendRow(int64(i)*1000, int32(12345+i)); err != nil {
						t.Fatal(err)
					}
				}
				re, err := rb.Build()
				rb.Release()
				if err != nil {
					t.Fatal(err)
				}
				defer re.Release()
				reRows := readEventRows(t, &pipe.Event{Tablet: re})
				fileTablets := append(append([]*tsfile.Tablet(nil), tbs...), re)
				path := writeTsFile(t, fileTablets)
				merged := map[int64]bool{}
				for _, r := range reRows {
					merged[r.Time] = true
				}
				var wantFile []row // the file's rows for the rewritten times: merged values
				for _, r := range readRowsOfTsFile(t, path) {
					if r.Device == "root.db.d0" && merged[r.Time] {
						wantFile = append(wantFile, r)
					}
				}
				want = append(want, wantFile...)

				c := openConn(t, New(Options{}), params(dir, kv...))
				a := newAcker()
				var evs []*pipe.Event
				for i := 0; i < 10; i++ {
					evs = append(evs, &pipe.Event{Kind: pipe.KindTablet, CommitID: uint64(i + 1), Region: "r1", MinIndex: uint64(11 + i), MaxIndex: uint64(11 + i), Epoch: 3, Tablet: tbs[i]})
				}
				sendAsync(t, c, evs, 3, a)
				if crash {
					if err := c.Flush(); err != nil {
						t.Fatal(err)
					}
					c.crash()
					c = openConn(t, New(Options{}), params(dir, kv...))
				}
				fe := &pipe.Event{Kind: pipe.KindTsFile, CommitID: 11, Region: "r1", MinIndex: 21, MaxIndex: 30, Epoch: 3,
					File: &pipe.FileRef{Path: path, MinTime: -1 << 63, MaxTime: 1<<63 - 1}}
				fe.File.Info.MinIndex, fe.File.Info.MaxIndex = 11, 30
				batch := []*pipe.Event{fe}
				if v.derived {
					batch = derivedEvents(t, fe)
					a.outputs[11] = len(batch)
				}
				if err := c.SendAsync(context.Background(), batch, a.ack); err != nil {
					t.Fatal(err)
				}
				if err := c.Flush(); err != nil {
					t.Fatal(err)
				}
				c.Close()
				a.waitAcks(t, 11)
				sameRows(t, readRows(t, dir), want)
			})
		}
	}
}

// derivedEvents turns a TsFile event into tablet events of its devices, as a processor
// that reads the file would: same commit id, index range and epoch.
func derivedEvents(t testing.TB, fe *pipe.Event) []*pipe.Event {
	rd, err := tsfile.OpenFile(fe.File.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var out []*pipe.Event
	for _, d := range rd.Meta().Devices {
		err := rd.ReadDevice(d.Device, nil, -1<<63, 1<<63-1, func(rec arrow.Record) error {
			rec.Retain()
			tb := tsfile.NewTablet(d.Device, rec)
			t.Cleanup(tb.Release)
			out = append(out, &pipe.Event{Kind: pipe.KindTablet, CommitID: fe.CommitID, Region: fe.Region,
				MinIndex: fe.MinIndex, MaxIndex: fe.MaxIndex, Epoch: fe.Epoch, Tablet: tb})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// readRowsOfTsFile lists a TsFile's rows in the test's form.
func readRowsOfTsFile(t testing.TB, path string) []row {
	rd, err := tsfile.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var out []row
	for _, d := range rd.Meta().Devices {
		err := rd.ReadDevice(d.Device, nil, -1<<63, 1<<63-1, func(rec arrow.Record) error {
			tb := tsfile.NewTablet(d.Device, rec)
			out = append(out, readEventRows(t, &pipe.Event{Tablet: tb})...)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// The outputs a processor derives from one file share one file: the rows the first output
// must not repeat are read back once, not once per output.
func TestDerivedOutputsShareAFile(t *testing.T) {
	for _, before := range []int{0, 5} { // tablets of the epoch shipped before the file
		t.Run(fmt.Sprint(before), func(t *testing.T) {
			dir := t.TempDir()
			var tbs []*tsfile.Tablet
			var want []row
			for i := 0; i < 12; i++ {
				tb, r := makeTablet(t, fmt.Sprintf("root.db.d%d", i%4), testCols, int64(i)*100_000, 1000, 20)
				defer tb.Release()
				tbs, want = append(tbs, tb), append(want, r...)
			}
			fe := &pipe.Event{Kind: pipe.KindTsFile, CommitID: uint64(before + 1), Region: "r1", MinIndex: uint64(before + 1), MaxIndex: 12, Epoch: 2,
				File: &pipe.FileRef{Path: writeTsFile(t, tbs), MinTime: -1 << 63, MaxTime: 1<<63 - 1}}
			var evs []*pipe.Event
			for i := 0; i < before; i++ {
				evs = append(evs, &pipe.Event{Kind: pipe.KindTablet, CommitID: uint64(i + 1), Region: "r1", MinIndex: uint64(i + 1), MaxIndex: uint64(i + 1), Epoch: 2, Tablet: tbs[i]})
			}
			derived := derivedEvents(t, fe)
			if len(derived) < 4 {
				t.Fatalf("%d derived events", len(derived))
			}
			c := openConn(t, New(Options{}), params(dir, ParamRollInterval, "0"))
			defer c.Close()
			if err := c.Send(context.Background(), append(evs, derived...)); err != nil {
				t.Fatal(err)
			}
			files := finalFiles(t, dir)
			if want := 1 + min(before, 1); len(files) != want {
				t.Fatalf("files %v, want %d", files, want)
			}
			sameRows(t, readRows(t, dir), want)
		})
	}
}

// Outputs of one input (same commit id) where a rowless output (a heartbeat, a deletion,
// rows already in a finished file) follows one whose rows wait in an open file: the held
// one still counts towards the stall, so the sink never holds as many inputs as the pipe
// delivers before it needs acknowledgements (roll-interval 0: nothing else finishes files).
func TestStallCountsOutputsBehindRowless(t *testing.T) {
	dir := t.TempDir()
	evs, want := workload(t, 12, 2, 10, testCols)
	c := openConn(t, New(Options{}), params(dir, ParamRollInterval, "0", pipe.ParamQueueSize, "4", pipe.ParamBatchMaxEvents, "2"))
	defer c.Close()
	a := newAcker()
	for _, e := range evs { // each input: its tablet, then a heartbeat output
		a.outputs[e.CommitID] = 2
		hb := &pipe.Event{Kind: pipe.KindHeartbeat, CommitID: e.CommitID, MinIndex: e.MinIndex, MaxIndex: e.MaxIndex}
		if err := c.SendAsync(context.Background(), []*pipe.Event{e, hb}, a.ack); err != nil {
			t.Fatal(err)
		}
	}
	a.waitAcks(t, len(evs)-5) // fewer than queue-size + batch.max-events (6) inputs held
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	a.waitAcks(t, len(evs))
	sameRows(t, readRows(t, dir), want)
}

// A restart whose read of the last file's footer fails (the sink goes on with what the
// names tell) must not take the epoch of that file for "none": an epoch's file arriving
// next repeats the rows the finished files hold, and they are dropped all the same.
func TestFileAfterRestartWithUnreadableFooter(t *testing.T) {
	dir := t.TempDir()
	kv := []string{ParamRollInterval, "0"}
	var tbs []*tsfile.Tablet
	var want []row
	for i := 0; i < 10; i++ {
		tb, r := makeTablet(t, fmt.Sprintf("root.db.d%d", i%3), testCols, int64(i)*100_000, 1000, 12)
		defer tb.Release()
		tbs, want = append(tbs, tb), append(want, r...)
	}
	c := openConn(t, New(Options{}), params(dir, kv...))
	var evs []*pipe.Event
	for i := 0; i < 5; i++ { // the epoch's first writes go out as tablets
		evs = append(evs, &pipe.Event{Kind: pipe.KindTablet, CommitID: uint64(i + 1), Region: "r1", MinIndex: uint64(11 + i), MaxIndex: uint64(11 + i), Epoch: 3, Tablet: tbs[i]})
	}
	if err := c.Send(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	c.crash()

	fs := vfs.NewFaulty(nil)
	var failed atomic.Bool
	fs.SetHook(func(o vfs.Op, name string) error {
		if o == vfs.OpOpen && strings.HasSuffix(name, fileExt) && failed.CompareAndSwap(false, true) {
			return fmt.Errorf("%w: %s", vfs.ErrInjected, name)
		}
		return nil
	})
	c = openConn(t, New(Options{FS: fs}), params(dir, kv...))
	defer c.Close()
	fe := &pipe.Event{Kind: pipe.KindTsFile, CommitID: 1, Region: "r1", MinIndex: 16, MaxIndex: 20, Epoch: 3,
		File: &pipe.FileRef{Path: writeTsFile(t, tbs), MinTime: -1 << 63, MaxTime: 1<<63 - 1}}
	if err := c.Send(context.Background(), []*pipe.Event{fe}); err != nil {
		t.Fatal(err)
	}
	if !failed.Load() {
		t.Fatal("the footer was not read")
	}
	sameRows(t, readRows(t, dir), want)
}
