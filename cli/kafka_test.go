package cli

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/pipe/connector/kafka/kafkaserve"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader in two goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestKafkaServe(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan error, 1)
	go func() { done <- serveKafka(ctx, &out, kafkaserve.Options{Listen: "127.0.0.1:0", Partitions: 2}) }()
	var addr string
	for deadline := time.Now().Add(10 * time.Second); addr == "" && time.Now().Before(deadline); {
		if first, _, ok := strings.Cut(out.String(), "\n"); ok {
			addr = strings.Fields(strings.TrimPrefix(first, "kafka broker listening on "))[0]
			break
		}
		time.Sleep(5 * time.Millisecond) // polls for the banner, bounded by the deadline
	}
	if addr == "" {
		cancel()
		t.Fatalf("no banner: %q", out.String())
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithTimeout(context.Background(), 10*time.Second)
	err = cl.ProduceSync(pctx, &kgo.Record{Topic: "t", Value: []byte("x")}).FirstErr()
	pcancel()
	cl.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "read_committed") {
		t.Errorf("no consume hint in %q", out.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestKafkaServeBadFlags(t *testing.T) {
	if _, _, err := runCLI(t, "kafka", "serve", "--partitions", "0"); err == nil || !strings.Contains(err.Error(), "--partitions") {
		t.Fatalf("got %v", err)
	}
	if _, _, err := runCLI(t, "kafka", "serve", "--listen", "0.0.0.0:0"); err == nil || !strings.Contains(err.Error(), "clients can reach") {
		t.Fatalf("got %v", err)
	}
	out, _, err := runCLI(t, "bench", "kafka", "--help")
	if err != nil || !strings.Contains(out, "raw franz-go producer") {
		t.Fatalf("bench kafka --help: %v %q", err, out)
	}
}

// The kafka-export example lints in both forms, which normalise to the same spec.
func TestKafkaExampleLints(t *testing.T) {
	if _, ok := pipe.Lookup(pipe.RoleProcessor, "downsample"); !ok {
		t.Skip("the downsample processor is not registered")
	}
	y, _, err := runCLI(t, "lint", "../examples/kafka-export/export.yaml")
	if err != nil {
		t.Fatalf("export.yaml: %v", err)
	}
	s, _, err := runCLI(t, "lint", "../examples/kafka-export/export.sql")
	if err != nil {
		t.Fatalf("export.sql: %v", err)
	}
	if y != s || !strings.Contains(y, "delivery: exactly-once") {
		t.Fatalf("the YAML and SQL forms differ:\n%s\n---\n%s", y, s)
	}
}
