package wal

import (
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/weir-dev/weir/engine/vfs"
)

// In Batch mode a group whose write(2) was under way when the background fdatasync failed
// must not be acknowledged (nor become readable): the failure is sticky for every group not
// yet complete.
func TestBatchNoAckAfterFailedSync(t *testing.T) {
	ffs := vfs.NewFaulty(vfs.Default)
	o, _ := testOpts(t, t.TempDir())
	o.FS, o.Durability, o.SyncInterval = ffs, Batch, time.Millisecond
	w := mustOpen(t, o)
	defer w.Close()

	var (
		syncStarted  = make(chan struct{})
		writing      = make(chan struct{})
		once1, once2 sync.Once
	)
	deadline := time.Now().Add(10 * time.Second)
	ffs.SetHook(func(op vfs.Op, name string) error {
		if !strings.HasPrefix(filepath.Base(name), "wal-") {
			return nil
		}
		switch op {
		case vfs.OpSync:
			// the background fdatasync: wait for the next group's write to start, then fail
			first := false
			once1.Do(func() { first = true; close(syncStarted) })
			if first {
				select {
				case <-writing:
				case <-time.After(time.Until(deadline)):
				}
			}
			return syscall.EIO
		case vfs.OpWrite:
			select {
			case <-syncStarted:
			default:
				return nil // entry 1
			}
			// the next group's write: let it finish only once the sync failure is recorded
			once2.Do(func() { close(writing) })
			for !w.failed.Load() && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
		}
		return nil
	})

	appendWait(t, w, entry(1))
	select {
	case <-syncStarted:
	case <-time.After(10 * time.Second):
		t.Fatal("no background sync")
	}
	c2, err := w.Append(entry(2))
	if err != nil {
		t.Fatalf("Append(2) before the failure: %v", err)
	}
	if err := c2.Wait(); err == nil {
		t.Fatal("entry 2 acknowledged although the fdatasync before its write completed failed")
	}
	if d := w.DurableIndex(); d >= 2 {
		t.Fatalf("DurableIndex %d after a failed sync", d)
	}
	if _, err := w.Append(entry(3)); err == nil {
		t.Fatal("append after failure accepted")
	}
}
