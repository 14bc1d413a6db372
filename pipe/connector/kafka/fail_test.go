package kafka

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/pipe/pipetest"
	"github.com/weir-dev/weir/tsfile"
)

// failures records what a connector reports through Env.Fail.
type failures struct {
	mu   sync.Mutex
	errs []error
}

func (f *failures) fail(err error) {
	f.mu.Lock()
	f.errs = append(f.errs, err)
	f.mu.Unlock()
}

func (f *failures) get() []error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]error(nil), f.errs...)
}

// A message the broker rejects as too large after SendAsync returned fails the task through
// Env.Fail with a clear, permanent error; the batch is never acknowledged, and every later
// send returns the error.
func TestSendAsyncTooLargeFailsThroughEnv(t *testing.T) {
	for _, delivery := range []string{AtLeastOnce, ExactlyOnce} {
		t.Run(delivery, func(t *testing.T) {
			_, addr := broker(t, kfake.BrokerConfigs(map[string]string{"message.max.bytes": "4000"}))
			var f failures
			c := &Connector{}
			if err := c.Open(context.Background(), &pipe.Env{Pipe: "p", Params: params(addr, "format", "arrow", "delivery", delivery), Fail: f.fail}); err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			es := events(t, 0, 3)
			defer release(es)
			es[1].Tablet.Release()
			es[1].Tablet = tablet(t, "root.db.d1", 1000, 1000) // tens of kB in Arrow
			var mu sync.Mutex
			var acked []uint64
			ack := func(ids ...uint64) { mu.Lock(); acked = append(acked, ids...); mu.Unlock() }
			ctx := context.Background()
			if err := c.SendAsync(ctx, es[0:1], ack); err != nil {
				t.Fatal(err)
			}
			// acknowledged before the next is produced (else one record batch could hold both)
			for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(time.Millisecond) {
				mu.Lock()
				n := len(acked)
				mu.Unlock()
				if n > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("first batch not acknowledged")
				}
			}
			if err := c.SendAsync(ctx, es[1:2], ack); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(20 * time.Second)
			for len(f.get()) == 0 {
				if time.Now().After(deadline) {
					t.Fatal("no failure reported")
				}
				time.Sleep(5 * time.Millisecond) // polling a condition, bounded by the deadline
			}
			errs := f.get()
			if len(errs) != 1 || !pipe.IsPermanent(errs[0]) || !contains(errs[0], "larger than the broker accepts") || !contains(errs[0], "max-message-bytes") {
				t.Fatalf("failures %v", errs)
			}
			err := c.SendAsync(ctx, es[2:3], ack)
			if !errors.Is(err, errs[0]) {
				t.Fatalf("a send after the failure: %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(acked) != 1 || acked[0] != es[0].CommitID {
				t.Fatalf("acked %v, want only %d", acked, es[0].CommitID)
			}
		})
	}
}

// writeBig writes one tablet of one row whose text is larger than the broker accepts.
func writeBig(t testing.TB, n *node, dev string, ts int64) {
	b := tsfile.NewTabletBuilder(nil, dev, rowCols)
	if err := b.AppendRow(ts, 1.5, int64(7), strings.Repeat("x", 100_000)); err != nil {
		t.Fatal(err)
	}
	pipetest.WriteTablet(t, n.src, b)
}

// TestPipeRecordTooLargeFailsVisibly: a whole pipe meets a row larger than the broker's
// limit (below the sink's max-message-bytes, so only the broker can tell): the pipe fails
// with the error in its status and does not retry, its progress stops before the row, and
// everything before the row is in Kafka. Nothing is dropped silently.
func TestPipeRecordTooLargeFailsVisibly(t *testing.T) {
	for _, delivery := range []string{AtLeastOnce, ExactlyOnce} {
		t.Run(delivery, func(t *testing.T) {
			// the broker's limit holds the batches of ordinary rows, not the big row's
			_, addr := broker(t, kfake.BrokerConfigs(map[string]string{"message.max.bytes": "60000"}))
			n := openNode(t, t.TempDir(), false)
			defer n.close()
			pipetest.CreatePipe(t, n.mgr, fmt.Sprintf(`
name: export
source: {plugin: wal, pattern: root.src.**}
sink: {plugin: kafka, brokers: "%s", delivery: %s, batch.max-events: 4, batch.linger: 1ms, timeout: 5s}
`, addr, delivery), true)
			rng := rand.New(rand.NewSource(1))
			next := map[string]int64{}
			writeRows(t, n.src, rng, next, 10)
			before := pipetest.WaitCommitted(t, n.mgr, "export")
			want := sourceDigest(t, n.src)
			writeBig(t, n, "root.src.d0", next["root.src.d0"])
			next["root.src.d0"]++
			writeRows(t, n.src, rng, next, 10)

			deadline := time.Now().Add(30 * time.Second)
			var st pipe.Status
			for {
				var err error
				if st, err = n.mgr.Describe("export"); err != nil {
					t.Fatal(err)
				}
				if len(st.Regions) == 1 && st.Regions[0].Phase == pipe.PhaseFailed {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the pipe did not fail: %+v", st)
				}
				time.Sleep(5 * time.Millisecond) // polling a condition, bounded by the deadline
			}
			if !strings.Contains(st.LastError, "larger than the broker accepts") || !strings.Contains(st.LastError, "message.max.bytes") {
				t.Fatalf("last error %q", st.LastError)
			}
			if st.Retries != 0 || st.CommittedEvents != before.CommittedEvents {
				t.Fatalf("retries %d, committed %d events, %d before the big row", st.Retries, st.CommittedEvents, before.CommittedEvents)
			}
			// what came before the row is in Kafka (a consumer may also see rows after it,
			// with at-least-once, but the progress never passes the row)
			recs := consume(t, addr, "root.src")
			var got digest
			seen := map[uint64]bool{}
			for _, r := range recs {
				var one digest
				one.addJSON(t, r.Value)
				if !seen[one.Sum] {
					seen[one.Sum] = true
					got.add2(one)
				}
			}
			if got.Points < want.Points {
				t.Fatalf("consumed %+v, want at least %+v", got, want)
			}
		})
	}
}

// A broker that goes away after a batch was handed over fails the task through Env.Fail
// once the records time out: a retryable error (the task backs off and redelivers), and
// the batch is never acknowledged.
func TestSendAsyncBrokerGoneFailsThroughEnv(t *testing.T) {
	for _, delivery := range []string{AtLeastOnce, ExactlyOnce} {
		t.Run(delivery, func(t *testing.T) {
			cl, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(3))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			var f failures
			c := &Connector{}
			p := params(cl.ListenAddrs()[0], "delivery", delivery, "timeout", "1s", "transaction.timeout", "2s")
			if err := c.Open(context.Background(), &pipe.Env{Pipe: "p", Params: p, Fail: f.fail}); err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			es := events(t, 0, 2)
			defer release(es)
			acks := make(chan uint64, 4)
			ack := func(ids ...uint64) {
				for _, id := range ids {
					acks <- id
				}
			}
			if err := c.SendAsync(context.Background(), es[:1], ack); err != nil {
				t.Fatal(err)
			}
			select {
			case <-acks:
			case <-time.After(20 * time.Second):
				t.Fatal("first batch not acknowledged")
			}
			cl.Close()
			_ = c.SendAsync(context.Background(), es[1:], ack) // may fail at once, or later through Fail
			deadline := time.Now().Add(30 * time.Second)
			for len(f.get()) == 0 {
				if time.Now().After(deadline) {
					t.Fatal("no failure reported")
				}
				time.Sleep(5 * time.Millisecond) // polling a condition, bounded by the deadline
			}
			if errs := f.get(); len(errs) != 1 || pipe.IsPermanent(errs[0]) {
				t.Fatalf("failures %v, want one retryable", errs)
			}
			select {
			case id := <-acks:
				t.Fatalf("event %d acknowledged after the broker went away", id)
			default:
			}
		})
	}
}
