//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package kafkaserve

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// lockDir takes an exclusive lock on dir (the file .lock in it), as Kafka does on its log
// directories: two brokers writing one directory lose each other's records. The lock goes
// with the process, also when it is killed.
func lockDir(dir string) (unlock func(), err error) {
	name := filepath.Join(dir, ".lock")
	f, err := os.OpenFile(name, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("data dir %s: %w", dir, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("data dir %s is in use by another broker (%s is locked)", dir, name)
		}
		return nil, fmt.Errorf("data dir %s: lock %s: %w", dir, name, err)
	}
	return func() { f.Close() }, nil
}
