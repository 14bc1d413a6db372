package consensus

import (
	"context"
	"testing"
	"time"

	"github.com/weir-dev/weir/tsfile"
)

// A follower that takes its leader's epochs as files holds the deletions of each file's
// epoch with the file. When it leads later and ships to a new replica, those deletions go
// inside the file's event: the new replica applies them with the file and equals the new
// leader (they went as events of their own before, which the new replica skipped, or which
// made the file they came with look covered).
func TestNewReplicaGetsReceivedFileDeletions(t *testing.T) {
	for _, name := range []string{Fast, IoTV2} {
		t.Run(name, func(t *testing.T) {
			proto, err := New(name, Options{SealInterval: time.Hour, MaxPendingEvents: 1})
			if err != nil {
				t.Fatal(err)
			}
			rs := newReplicas(t, proto, "n1", "n2", "n3")
			a := rs.open(t, proto, "n1", false, "n2", "n3")
			if name == IoTV2 {
				// n2 gets the leader's epochs as files, as a follower that fell behind does
				if err := a.RemovePeer("n2"); err != nil {
					t.Fatal(err)
				}
			}
			writes(t, a, 6) // rows 0..299 of root.db.d0..d2
			if err := rs.r["n1"].Flush(); err != nil {
				t.Fatal(err)
			}
			writes(t, a, 3)
			// the epoch ends with a deletion of rows of the first epoch
			if _, err := a.Delete(context.Background(), tsfile.MustPattern("root.db.d1"), 0, 120); err != nil {
				t.Fatal(err)
			}
			if err := rs.r["n1"].Flush(); err != nil {
				t.Fatal(err)
			}
			if name == IoTV2 {
				f := LocalFollower("n2")
				f.New = true
				if err := a.AddPeer(f); err != nil {
					t.Fatal(err)
				}
			}
			rs.moveToN2AddN4(t, proto, a)
		})
	}
}
