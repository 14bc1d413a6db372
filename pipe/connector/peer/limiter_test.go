package peer

import (
	"context"
	"testing"
	"time"
)

// TestLimiterPaces: at 1 MB/s, 300 KB take about 0.2 s (after a burst of 0.1 s).
func TestLimiterPaces(t *testing.T) {
	l := newLimiter(1e6)
	start := time.Now()
	for i := 0; i < 30; i++ {
		if err := l.wait(context.Background(), 10_000); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 2*time.Second {
		t.Fatalf("300 KB at 1 MB/s took %s", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := newLimiter(1).wait(ctx, 1_000_000); err == nil {
		t.Fatal("a cancelled wait returned nil")
	}
	if err := newLimiter(-1).wait(ctx, 1<<30); err != nil {
		t.Fatalf("no limit: %v", err)
	}
}
