// Package vfs is the filesystem interface the storage engine uses for every
// file it touches. Production code uses Default (the operating system); tests
// wrap it with NewFaulty to inject fsync failures, full disks and torn writes.
//
// The interface is deliberately small (as in pebble's vfs): what a write-ahead
// log, a manifest and immutable data files need, and nothing else.
package vfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
)

// File is an open file. *os.File implements it.
type File interface {
	io.Reader
	io.Writer
	io.ReaderAt
	io.Closer
	Sync() error
	Truncate(size int64) error
	Stat() (os.FileInfo, error)
	Seek(offset int64, whence int) (int64, error)
}

// FS is a filesystem. All engine file access goes through one.
type FS interface {
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	Open(name string) (File, error)
	Create(name string) (File, error)
	Rename(oldname, newname string) error
	Remove(name string) error
	RemoveAll(path string) error
	ReadDir(dir string) ([]os.DirEntry, error)
	MkdirAll(dir string, perm os.FileMode) error
	Stat(name string) (os.FileInfo, error)
	// SyncDir makes the directory entries of dir (creations, renames,
	// removals) durable.
	SyncDir(dir string) error
}

// DataSyncer is implemented by files that can flush their data without
// necessarily flushing all metadata (fdatasync(2)). SyncData uses it when
// present.
type DataSyncer interface {
	SyncData() error
}

// Default is the operating system's filesystem. Its files are *os.File.
var Default FS = osFS{}

type osFS struct{}

func (osFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err // never a typed nil inside the interface
	}
	return f, nil
}

func (fs osFS) Open(name string) (File, error) { return fs.OpenFile(name, os.O_RDONLY, 0) }

func (fs osFS) Create(name string) (File, error) {
	return fs.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o666)
}

func (osFS) Rename(oldname, newname string) error        { return os.Rename(oldname, newname) }
func (osFS) Remove(name string) error                    { return os.Remove(name) }
func (osFS) RemoveAll(path string) error                 { return os.RemoveAll(path) }
func (osFS) ReadDir(dir string) ([]os.DirEntry, error)   { return os.ReadDir(dir) }
func (osFS) MkdirAll(dir string, perm os.FileMode) error { return os.MkdirAll(dir, perm) }
func (osFS) Stat(name string) (os.FileInfo, error)       { return os.Stat(name) }

func (osFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// SyncData flushes f's data to stable storage: fdatasync(2) for operating
// system files (where the platform has it), f.SyncData for files implementing
// DataSyncer, and f.Sync otherwise.
func SyncData(f File) error {
	switch f := f.(type) {
	case DataSyncer:
		return f.SyncData()
	case *os.File:
		return fdatasync(f)
	default:
		return f.Sync()
	}
}

var tmpSeq atomic.Uint64

// WriteFileAtomic replaces name with data so that after a crash name holds
// either its old content or data, never a mix: it writes a temporary file in
// the same directory, fsyncs it, renames it over name and fsyncs the
// directory. On error the temporary file is removed and name is untouched.
func WriteFileAtomic(fs FS, name string, data []byte) (err error) {
	dir := filepath.Dir(name)
	tmp := fmt.Sprintf("%s.tmp-%d-%d", name, os.Getpid(), tmpSeq.Add(1))
	f, err := fs.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = fs.Remove(tmp)
		}
	}()
	n, err := f.Write(data)
	if err == nil && n != len(data) {
		err = io.ErrShortWrite
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("vfs: write %s: %w", tmp, err)
	}
	if err = fs.Rename(tmp, name); err != nil {
		return err
	}
	if err = fs.SyncDir(dir); err != nil {
		// The rename happened; the caller must not believe it durable.
		return fmt.Errorf("vfs: sync dir %s: %w", dir, err)
	}
	return nil
}

// IsNotExist reports whether err says a file does not exist.
func IsNotExist(err error) bool { return errors.Is(err, os.ErrNotExist) }
