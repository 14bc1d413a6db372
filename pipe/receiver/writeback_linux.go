package receiver

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback starts (does not wait for) the writeback of n bytes of f from off
// (sync_file_range(2) with SYNC_FILE_RANGE_WRITE); it is only a hint, errors are ignored:
// the fsync before a load is what makes the bytes durable.
func startWriteback(f *os.File, off, n int64) {
	if rc, err := f.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) { _ = unix.SyncFileRange(int(fd), off, n, unix.SYNC_FILE_RANGE_WRITE) })
	}
}
