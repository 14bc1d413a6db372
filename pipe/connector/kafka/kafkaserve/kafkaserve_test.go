package kafkaserve

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func produce(t *testing.T, addr string, vals ...string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, v := range vals {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

func consume(t *testing.T, addr string, n int) []string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("t"), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []string
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %v, want %d records", out, n)
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, string(r.Value)) })
	}
	return out
}

// A standard client produces to and consumes from the embedded broker; with a data
// directory the records survive a restart on the same port.
func TestServePersists(t *testing.T) {
	dir := t.TempDir()
	addr, stop, err := Serve(context.Background(), Options{Listen: "127.0.0.1:0", DataDir: dir, Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	produce(t, addr, "a", "b")
	if got := consume(t, addr, 2); got[0] != "a" || got[1] != "b" {
		t.Fatalf("consumed %v", got)
	}
	stop()
	stop() // twice is fine
	addr2, stop2, err := Serve(context.Background(), Options{Listen: addr, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer stop2()
	if addr2 != addr {
		t.Fatalf("listening on %s, want %s", addr2, addr)
	}
	produce(t, addr, "c")
	if got := consume(t, addr, 3); len(got) != 3 || got[2] != "c" {
		t.Fatalf("consumed %v after a restart", got)
	}
}

func TestServeStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	_, stop, err := Serve(ctx, Options{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	stop() // returns once the broker is down
}

func TestServeBadOptions(t *testing.T) {
	for _, o := range []Options{{Listen: "0.0.0.0:0"}, {Listen: "127.0.0.1"}, {Listen: "127.0.0.1:x"}, {Listen: "127.0.0.1:0", Partitions: -1}} {
		if _, _, err := Serve(context.Background(), o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}
