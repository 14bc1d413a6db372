package engine

import (
	"fmt"

	"github.com/weir-dev/weir/tsfile"
)

// Durable is the wait of a write taken by WriteReplicatedAsync.
type Durable interface {
	// Wait blocks until the write is durable per the region's durability mode (the same
	// point at which WriteReplicated returns) and returns the error if it never will be.
	Wait() error
}

type durable struct {
	r      *Region
	commit interface{ Wait() error }
}

func (d durable) Wait() error {
	if err := d.commit.Wait(); err != nil {
		d.r.fail(err)
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// WriteReplicatedAsync is WriteReplicated without the wait: it takes the tablet (in call
// order: its index follows every write taken before it), and returns its index and a
// Durable to wait on. Readers and subscribers see the tablet at once, as with
// WriteReplicated (which also waits only after taking it); an acknowledgement to the
// tablet's sender must wait for Durable. A caller that takes several tablets before it
// waits lets the WAL write them in one group commit.
func (r *Region) WriteReplicatedAsync(origin uint32, originIndex uint64, t *tsfile.Tablet) (uint64, Durable, error) {
	idx, commit, err := r.appendTablet(t, origin, originIndex)
	if err != nil {
		return 0, nil, err
	}
	return idx, durable{r: r, commit: commit}, nil
}
