package kafkaserve

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// copyDir copies what a running broker has written to dir: what a broker started on the
// copy finds is what it would find after the process was killed (SIGKILL, a crash).
func copyDir(t *testing.T, dir string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// consumeTopic reads a topic read_committed until it has n records or 10s pass.
func consumeTopic(t *testing.T, addr, topic string, n int) []string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []string
	for len(out) < n && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { out = append(out, string(r.Value)) })
	}
	return out
}

// Topics that producers created, their records, transactions and consumer group offsets
// survive the broker being killed (no orderly shutdown): the progress topic of the
// exactly-once sink is one such topic.
func TestServeSurvivesKill(t *testing.T) {
	dir := t.TempDir()
	addr, stop, err := Serve(context.Background(), Options{Listen: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	produce(t, addr, "a", "b")
	tx, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.AllowAutoTopicCreation(), kgo.TransactionalID("weir.p.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	for _, commit := range []bool{true, false} {
		if err := tx.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		v := []byte(map[bool]string{true: "committed", false: "aborted"}[commit])
		if err := tx.ProduceSync(ctx, &kgo.Record{Topic: "progress", Key: []byte("p/1"), Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := tx.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var offs kadm.Offsets
	offs.Add(kadm.Offset{Topic: "t", Partition: 0, At: 1, LeaderEpoch: -1})
	if r, err := kadm.NewClient(cl).CommitOffsets(ctx, "g", offs); err != nil || r.Error() != nil {
		t.Fatal(err, r.Error())
	}

	killed := copyDir(t, dir)
	addr2, stop2, err := Serve(context.Background(), Options{Listen: "127.0.0.1:0", DataDir: killed})
	if err != nil {
		t.Fatal(err)
	}
	defer stop2()
	if got := consumeTopic(t, addr2, "t", 2); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("topic t after a kill: %q, want [a b]", got)
	}
	if got := consumeTopic(t, addr2, "progress", 1); !slices.Equal(got, []string{"committed"}) {
		t.Errorf("progress topic after a kill: %q, want [committed]", got)
	}
	cl2, err := kgo.NewClient(kgo.SeedBrokers(addr2))
	if err != nil {
		t.Fatal(err)
	}
	defer cl2.Close()
	fctx, fcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer fcancel()
	fetched, err := kadm.NewClient(cl2).FetchOffsets(fctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := fetched.Lookup("t", 0); !ok || o.At != 1 {
		t.Errorf("group g's offset for t after a kill: %+v (found %v), want 1", o, ok)
	}
}

// Two brokers on one data directory overwrote each other's files (the records of one were
// lost at the next start); the second is refused, and starts once the first has stopped.
func TestServeDataDirInUse(t *testing.T) {
	dir := t.TempDir()
	_, stop, err := Serve(context.Background(), Options{Listen: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, stop2, err := Serve(context.Background(), Options{Listen: "127.0.0.1:0", DataDir: dir}); err == nil {
		stop2()
		stop()
		t.Fatal("a second broker started on the same data directory")
	} else if !strings.Contains(err.Error(), "in use") {
		t.Errorf("error %q does not say the directory is in use", err)
	}
	stop()
	_, stop3, err := Serve(context.Background(), Options{Listen: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		t.Fatalf("after the first broker stopped: %v", err)
	}
	stop3()
}
