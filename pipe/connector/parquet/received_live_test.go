package parquet

import (
	"context"
	"math/rand"
	"testing"
	"time"

	"github.com/weir-dev/weir/pipe"
)

// Files the source region receives while the source runs ship at the place the region
// listed them (after the local write that preceded them), the same on every replay: a
// source stopped cleanly or crashed at random points, with finished files ahead of its
// saved state, exports every row exactly once.
func TestFilesReceivedWhileRunningRestarts(t *testing.T) {
	for _, by := range []string{"none", "device"} {
		t.Run(by, func(t *testing.T) {
			seed := time.Now().UnixNano()
			rng := rand.New(rand.NewSource(seed))
			t.Logf("seed %d", seed)
			r := openRecvRegion(t)
			dir := t.TempDir()
			p := params(dir, ParamRollInterval, "0", ParamPartitionBy, by)
			devs := []string{"root.src.a", "root.src.b", "root.src.c"}

			s := openSource(t, r.src, nil)
			c := openConn(t, New(Options{}), p)
			var state []byte       // the saved state: after the last committed event
			total, pulled := 0, 0  // events the region's writes make; events pulled since the (re)open
			committed := 0         // events committed
			var held []*pipe.Event // sent, not committed
			restart := func(crash bool) {
				if crash && len(held) == 0 && pulled < total {
					// rows in an open file when the process dies
					e := s.next(t)
					pulled++
					if err := c.SendAsync(context.Background(), []*pipe.Event{e}, func(...uint64) {}); err != nil {
						t.Fatal(err)
					}
					held = append(held, e)
				}
				if crash {
					c.crash()
				} else {
					c.Close()
				}
				for _, e := range held {
					e.Release()
				}
				held = nil
				old := s
				s = openSource(t, r.src, state) // (the old source's pin keeps the WAL meanwhile)
				old.x.Close()
				c = openConn(t, New(Options{}), p)
				pulled = committed
			}
			for op := 0; op < 120; op++ {
				switch k := rng.Intn(10); {
				case k < 4:
					r.local(t, devs[rng.Intn(len(devs))], 1+rng.Intn(20))
					total++
				case k < 6:
					r.receive(t, 1+rng.Intn(20), devs[:1+rng.Intn(len(devs))]...)
					total++
				case k < 8:
					for n := rng.Intn(total - pulled + 1); n > 0; n-- {
						e := s.next(t)
						pulled++
						if err := c.Send(context.Background(), []*pipe.Event{e}); err != nil {
							t.Fatalf("event %v %d..%d epoch %d: %v", e.Kind, e.MinIndex, e.MaxIndex, e.Epoch, err)
						}
						held = append(held, e)
						if rng.Intn(3) == 0 { // commit what was sent (finished files may go past it)
							for _, h := range held {
								state = s.x.Committed(h)
								h.Release()
								committed++
							}
							held = nil
						}
					}
				case k == 8:
					restart(false)
				default:
					restart(true)
				}
			}
			for pulled < total {
				e := s.next(t)
				pulled++
				if err := c.Send(context.Background(), []*pipe.Event{e}); err != nil {
					t.Fatal(err)
				}
				held = append(held, e)
			}
			for _, h := range held {
				s.x.Committed(h)
				h.Release()
			}
			c.Close()
			sameRows(t, readRows(t, dir), r.want)
		})
	}
}
