package vfs

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
)

// ErrInjected marks every error produced by a Faulty filesystem's knobs.
// Injected errors also wrap the errno a real disk would give (EIO for a failed
// sync, ENOSPC for a full disk), so both errors.Is checks work.
var ErrInjected = errors.New("vfs: injected fault")

// Op names a filesystem operation, for Faulty hooks.
type Op int

// Operations seen by a Faulty hook.
const (
	OpOpen Op = iota // OpenFile, Open and Create
	OpRead           // Read and ReadAt
	OpWrite
	OpSync // File.Sync and SyncData
	OpTruncate
	OpClose
	OpRename
	OpRemove // Remove and RemoveAll
	OpReadDir
	OpMkdirAll
	OpStat
	OpSyncDir
)

var opNames = [...]string{"open", "read", "write", "sync", "truncate", "close", "rename", "remove", "readdir", "mkdirall", "stat", "syncdir"}

func (o Op) String() string {
	if o >= 0 && int(o) < len(opNames) {
		return opNames[o]
	}
	return fmt.Sprintf("Op(%d)", int(o))
}

// Faulty wraps an FS and injects faults on demand. It is safe for concurrent
// use; knobs may be changed while files are open (they apply to all files
// opened through it). The zero knobs inject nothing.
//
//   - FailSyncAfter(n): the next n syncs (File.Sync, SyncData, SyncDir)
//     succeed, every later one fails with ErrInjected+EIO and syncs nothing.
//   - FailWritesAfter(n): the next n bytes are written; the write that crosses
//     the limit writes only the bytes that fit (a short write) and returns
//     ErrInjected+ENOSPC, as does every later write.
//   - TornWritesAfter(n): the next n bytes are written; after that, writes
//     report success but only the prefix that fits reaches the inner file
//     (a crash in the middle of a write: what is on disk afterwards). Syncs
//     keep succeeding. Close the files and reopen to see the damage.
//   - SetHook(fn): fn is called before every operation with its name; a
//     non-nil result is returned instead of doing the operation.
type Faulty struct {
	inner FS

	mu         sync.Mutex
	syncBudget int64 // <0: unlimited
	writeLimit int64 // <0: unlimited
	tornLimit  int64 // <0: off
	hook       func(op Op, name string) error
	syncs      int64
	written    int64
}

// NewFaulty wraps inner (Default if nil).
func NewFaulty(inner FS) *Faulty {
	if inner == nil {
		inner = Default
	}
	return &Faulty{inner: inner, syncBudget: -1, writeLimit: -1, tornLimit: -1}
}

// FailSyncAfter lets n more syncs succeed and fails all later ones.
// A negative n turns the fault off.
func (f *Faulty) FailSyncAfter(n int) {
	f.mu.Lock()
	f.syncBudget = int64(n)
	f.mu.Unlock()
}

// FailWritesAfter lets n more bytes be written and fails later writes with
// ENOSPC. A negative n turns the fault off.
func (f *Faulty) FailWritesAfter(n int64) {
	f.mu.Lock()
	f.writeLimit = n
	f.mu.Unlock()
}

// TornWritesAfter lets n more bytes reach the disk and silently drops the
// rest of every later write. A negative n turns the fault off.
func (f *Faulty) TornWritesAfter(n int64) {
	f.mu.Lock()
	f.tornLimit = n
	f.mu.Unlock()
}

// SetHook installs fn (nil removes it); see Faulty.
func (f *Faulty) SetHook(fn func(op Op, name string) error) {
	f.mu.Lock()
	f.hook = fn
	f.mu.Unlock()
}

// Reset turns every fault off. Counters are kept.
func (f *Faulty) Reset() {
	f.mu.Lock()
	f.syncBudget, f.writeLimit, f.tornLimit, f.hook = -1, -1, -1, nil
	f.mu.Unlock()
}

// Syncs returns how many syncs (file and directory) succeeded so far.
func (f *Faulty) Syncs() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.syncs
}

// BytesWritten returns how many bytes reached the inner filesystem.
func (f *Faulty) BytesWritten() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.written
}

func (f *Faulty) check(op Op, name string) error {
	f.mu.Lock()
	hook := f.hook
	f.mu.Unlock()
	if hook != nil {
		return hook(op, name)
	}
	return nil
}

// sync decides whether a sync may proceed.
func (f *Faulty) sync(name string) error {
	if err := f.check(OpSync, name); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.syncBudget == 0 {
		return fmt.Errorf("%w: sync %s: %w", ErrInjected, name, syscall.EIO)
	}
	if f.syncBudget > 0 {
		f.syncBudget--
	}
	f.syncs++
	return nil
}

// write decides how much of an n-byte write reaches the disk (keep), whether
// the caller is told everything was written (tell), and the error to return.
func (f *Faulty) write(name string, n int) (keep, tell int, err error) {
	if err := f.check(OpWrite, name); err != nil {
		return 0, 0, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	keep, tell = n, n
	if f.tornLimit >= 0 {
		if int64(keep) > f.tornLimit {
			keep = int(f.tornLimit)
		}
		f.tornLimit -= int64(keep)
	}
	if f.writeLimit >= 0 {
		if int64(keep) > f.writeLimit || int64(n) > f.writeLimit {
			keep = min(keep, int(f.writeLimit))
			tell = keep
			err = fmt.Errorf("%w: write %s: %w", ErrInjected, name, syscall.ENOSPC)
		}
		f.writeLimit -= int64(keep)
	}
	return keep, tell, err
}

func (f *Faulty) wrap(name string, file File, err error) (File, error) {
	if err != nil {
		return nil, err
	}
	return &faultyFile{fs: f, name: name, f: file}, nil
}

// OpenFile implements FS.
func (f *Faulty) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	if err := f.check(OpOpen, name); err != nil {
		return nil, err
	}
	file, err := f.inner.OpenFile(name, flag, perm)
	return f.wrap(name, file, err)
}

// Open implements FS.
func (f *Faulty) Open(name string) (File, error) {
	if err := f.check(OpOpen, name); err != nil {
		return nil, err
	}
	file, err := f.inner.Open(name)
	return f.wrap(name, file, err)
}

// Create implements FS.
func (f *Faulty) Create(name string) (File, error) {
	if err := f.check(OpOpen, name); err != nil {
		return nil, err
	}
	file, err := f.inner.Create(name)
	return f.wrap(name, file, err)
}

// Rename implements FS.
func (f *Faulty) Rename(oldname, newname string) error {
	if err := f.check(OpRename, oldname); err != nil {
		return err
	}
	return f.inner.Rename(oldname, newname)
}

// Remove implements FS.
func (f *Faulty) Remove(name string) error {
	if err := f.check(OpRemove, name); err != nil {
		return err
	}
	return f.inner.Remove(name)
}

// RemoveAll implements FS.
func (f *Faulty) RemoveAll(path string) error {
	if err := f.check(OpRemove, path); err != nil {
		return err
	}
	return f.inner.RemoveAll(path)
}

// ReadDir implements FS.
func (f *Faulty) ReadDir(dir string) ([]os.DirEntry, error) {
	if err := f.check(OpReadDir, dir); err != nil {
		return nil, err
	}
	return f.inner.ReadDir(dir)
}

// MkdirAll implements FS.
func (f *Faulty) MkdirAll(dir string, perm os.FileMode) error {
	if err := f.check(OpMkdirAll, dir); err != nil {
		return err
	}
	return f.inner.MkdirAll(dir, perm)
}

// Stat implements FS.
func (f *Faulty) Stat(name string) (os.FileInfo, error) {
	if err := f.check(OpStat, name); err != nil {
		return nil, err
	}
	return f.inner.Stat(name)
}

// SyncDir implements FS.
func (f *Faulty) SyncDir(dir string) error {
	if err := f.check(OpSyncDir, dir); err != nil {
		return err
	}
	if err := f.sync(dir); err != nil {
		return err
	}
	return f.inner.SyncDir(dir)
}

type faultyFile struct {
	fs   *Faulty
	name string
	f    File
}

func (ff *faultyFile) Read(p []byte) (int, error) {
	if err := ff.fs.check(OpRead, ff.name); err != nil {
		return 0, err
	}
	return ff.f.Read(p)
}

func (ff *faultyFile) ReadAt(p []byte, off int64) (int, error) {
	if err := ff.fs.check(OpRead, ff.name); err != nil {
		return 0, err
	}
	return ff.f.ReadAt(p, off)
}

func (ff *faultyFile) Write(p []byte) (int, error) {
	keep, tell, err := ff.fs.write(ff.name, len(p))
	if keep > 0 {
		n, werr := ff.f.Write(p[:keep])
		ff.fs.mu.Lock()
		ff.fs.written += int64(n)
		ff.fs.mu.Unlock()
		if werr != nil {
			return n, werr
		}
	}
	return tell, err
}

func (ff *faultyFile) Sync() error {
	if err := ff.fs.sync(ff.name); err != nil {
		return err
	}
	return ff.f.Sync()
}

// SyncData implements DataSyncer, so fdatasync goes through the fault knobs.
func (ff *faultyFile) SyncData() error {
	if err := ff.fs.sync(ff.name); err != nil {
		return err
	}
	return SyncData(ff.f)
}

func (ff *faultyFile) Truncate(size int64) error {
	if err := ff.fs.check(OpTruncate, ff.name); err != nil {
		return err
	}
	return ff.f.Truncate(size)
}

func (ff *faultyFile) Close() error {
	if err := ff.fs.check(OpClose, ff.name); err != nil {
		_ = ff.f.Close()
		return err
	}
	return ff.f.Close()
}

func (ff *faultyFile) Stat() (os.FileInfo, error) {
	if err := ff.fs.check(OpStat, ff.name); err != nil {
		return nil, err
	}
	return ff.f.Stat()
}

func (ff *faultyFile) Seek(offset int64, whence int) (int64, error) { return ff.f.Seek(offset, whence) }
