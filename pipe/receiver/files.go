package receiver

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/pipe/peerwire"
	"github.com/weir-dev/weir/tsfile"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

const partSuffix = ".part"

// incoming is a file being received: staged at path, have bytes so far, CRC32C of them.
type incoming struct {
	msg  *peerwire.Msg // its FileBegin
	skip bool          // the region already covers it: chunks are drained, nothing is written
	path string
	f    *os.File
	have int64
	crc  uint32 // CRC32C of the have bytes
	// flushed: bytes whose writeback to disk was started
	flushed int64
}

// validFileID reports whether id is safe as a file name: letters, digits, '.', '_', '-'.
func validFileID(id string) bool {
	if id == "" || len(id) > 200 || strings.HasPrefix(id, ".") {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// listPartials lists the partial files staged in dir (none when dir does not exist).
func listPartials(dir string) ([]peerwire.Partial, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list partial files: %w", err)
	}
	var out []peerwire.Partial
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, partSuffix) || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		out = append(out, peerwire.Partial{FileID: strings.TrimSuffix(name, partSuffix), Have: info.Size()})
		if len(out) == peerwire.MaxPartials {
			break
		}
	}
	return out, nil
}

// removeOthers removes the staged partial files of dir except keep: a sender ships one file
// at a time, so a partial file of another id will never be resumed.
func removeOthers(dir, keep string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.Name() != keep && strings.HasSuffix(e.Name(), partSuffix) {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

func (ss *session) beginFile(m *peerwire.Msg) error {
	if !validFileID(m.FileID) {
		return badInput("file-begin seq %d: file id %q is not a safe file name", m.Seq, m.FileID)
	}
	in := &incoming{msg: m}
	ss.file = in
	if coversAll(ss.progress(), m.Progress) {
		in.skip = true
		return nil
	}
	if err := os.MkdirAll(ss.dir, 0o755); err != nil {
		return fmt.Errorf("file %s: staging dir: %w", m.FileID, err)
	}
	name := m.FileID + partSuffix
	removeOthers(ss.dir, name)
	in.path = filepath.Join(ss.dir, name)
	f, err := os.OpenFile(in.path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("file %s: %w", m.FileID, err)
	}
	in.f = f
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("file %s: %w", m.FileID, err)
	}
	switch {
	case st.Size() < m.Offset:
		// the sender believes we have more than we do: a new stream resyncs from the Welcome
		return badInput("file %s: receiver holds %d bytes, sender resumes at %d", m.FileID, st.Size(), m.Offset)
	case st.Size() > m.Offset:
		if err := f.Truncate(m.Offset); err != nil {
			return fmt.Errorf("file %s: truncate to %d: %w", m.FileID, m.Offset, err)
		}
	}
	h := crc32.New(castagnoli)
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, m.Offset)); err != nil {
		return fmt.Errorf("file %s: read staged bytes: %w", m.FileID, err)
	}
	in.crc = h.Sum32()
	if _, err := f.Seek(m.Offset, io.SeekStart); err != nil {
		return fmt.Errorf("file %s: %w", m.FileID, err)
	}
	in.have, in.flushed = m.Offset, m.Offset
	if m.Offset > 0 {
		ss.s.stats.resumed.Add(m.Offset)
		ss.log.Info("resuming file", "file", m.FileID, "offset", m.Offset, "size", m.Size)
	}
	return nil
}

func (ss *session) chunk(m *peerwire.Msg, body []byte) error {
	in := ss.file
	if in == nil || m.Seq != in.msg.Seq {
		return badInput("file-chunk seq %d outside its file", m.Seq)
	}
	if in.skip {
		return nil
	}
	if m.Offset != in.have {
		return badInput("file %s: chunk at offset %d, expected %d", in.msg.FileID, m.Offset, in.have)
	}
	if in.have+int64(len(body)) > in.msg.Size {
		return badInput("file %s: chunk at %d of %d bytes runs past the size %d", in.msg.FileID, m.Offset, len(body), in.msg.Size)
	}
	got := crc32.Checksum(body, castagnoli)
	if got != m.CRC {
		return badInput("file %s: chunk at offset %d: CRC32C %08x, sender sent %08x; %d good bytes kept", in.msg.FileID, m.Offset, got, m.CRC, in.have)
	}
	if _, err := in.f.Write(body); err != nil {
		return fmt.Errorf("file %s: write at %d: %w", in.msg.FileID, in.have, err)
	}
	in.crc = crc32cCombine(in.crc, got, int64(len(body)))
	in.have += int64(len(body))
	// let the disk take the bytes while the rest arrives, so that the fsync before the
	// load has little left to wait for
	if in.have-in.flushed >= writebackBytes || in.have == in.msg.Size {
		startWriteback(in.f, in.flushed, in.have-in.flushed)
		in.flushed = in.have
	}
	return nil
}

// writebackBytes is how many staged bytes accumulate before their writeback is started.
const writebackBytes = 4 << 20

func (ss *session) endFile(m *peerwire.Msg) (uint64, error) {
	in := ss.file
	if in == nil || m.Seq != in.msg.Seq {
		return 0, badInput("file-end seq %d outside its file", m.Seq)
	}
	if in.skip {
		ss.file = nil
		ss.s.stats.skipped.Add(1)
		ss.trace("file covered", in.msg, "file", in.msg.FileID, "progress", fmt.Sprint(in.msg.Progress))
		return m.Seq, nil
	}
	fm := in.msg
	if in.have != fm.Size {
		return 0, badInput("file %s: ended at %d bytes of %d", fm.FileID, in.have, fm.Size)
	}
	if got := in.crc; got != fm.CRC {
		ss.discardFile()
		return 0, badInput("file %s: CRC32C %08x, sender declared %08x: rejected, not loaded", fm.FileID, got, fm.CRC)
	}
	if err := in.f.Close(); err != nil {
		return 0, fmt.Errorf("file %s: %w", fm.FileID, err)
	}
	in.f = nil
	if !coversAll(ss.progress(), fm.Progress) {
		if err := ss.waitDurable(); err != nil {
			return 0, fmt.Errorf("file %s: earlier tablets: %w", fm.FileID, err)
		}
		if err := os.MkdirAll(ss.dir, 0o755); err != nil {
			return 0, fmt.Errorf("file %s: staging dir: %w", fm.FileID, err)
		}
		// The deletions of the file's epoch that the region does not cover go in with the
		// file, in the manifest update that lists it (a crash leaves both or neither): they
		// are part of the received file, not writes of their own, so a source that ships
		// the file on ships them inside it, and nothing applied before the load can make
		// the file look loaded when it is not.
		var dels []engine.IndexedDeletion
		for _, d := range fm.Deletions {
			if ss.covered(d.Origin, d.OriginIndex) {
				continue
			}
			p, err := tsfile.ParsePattern(d.Pattern)
			if err != nil {
				return 0, badInput("file %s: deletion: pattern: %w", fm.FileID, err)
			}
			if d.MinTime > d.MaxTime {
				return 0, badInput("file %s: deletion: start time %d after end time %d", fm.FileID, d.MinTime, d.MaxTime)
			}
			ss.trace("file deletion", fm, "deletion_origin_index", d.OriginIndex, "pattern", d.Pattern)
			dels = append(dels, engine.IndexedDeletion{Deletion: engine.Deletion{Pattern: p, MinTime: d.MinTime, MaxTime: d.MaxTime},
				Origin: d.Origin, OriginIndex: d.OriginIndex})
		}
		if testHookBeforeLoad != nil {
			if err := testHookBeforeLoad(); err != nil {
				return 0, err
			}
		}
		// the staged file is in the region's directory: the region takes it over (renames
		// it into place) rather than copying it; the CRC32C is the one just checked
		info, err := ss.region.AdoptFileWith(in.path, in.crc, fm.Progress, dels)
		ss.trace("file loaded", fm, "file", fm.FileID, "version", info.Version, "progress", fmt.Sprint(fm.Progress), "err", err)
		if err != nil {
			var fe *tsfile.FormatError
			if errors.As(err, &fe) {
				// a file whose CRC matched but that is not a TsFile is bad input from the sender
				ss.discardFile()
				return 0, badInput("file %s: %w", fm.FileID, err)
			}
			// kept whole: a new stream resumes at its end and loads it again
			return 0, fmt.Errorf("file %s: %w", fm.FileID, err)
		}
		ss.applied(fm.Progress) // a pending load (left by an older version) ends with it
		ss.s.stats.deletions.Add(int64(len(dels)))
		ss.s.stats.files.Add(1)
		ss.s.stats.fileBytes.Add(fm.Size)
	}
	_ = os.Remove(in.path)
	ss.file = nil
	if testHookAfterLoad != nil {
		if err := testHookAfterLoad(); err != nil {
			return 0, err
		}
	}
	return fm.Seq, nil
}

// discardFile removes the staged file being received: it will be sent again from 0.
func (ss *session) discardFile() {
	if in := ss.file; in != nil {
		if in.f != nil {
			in.f.Close()
			in.f = nil
		}
		if in.path != "" {
			_ = os.Remove(in.path)
		}
		ss.file = nil
	}
}

// closeFile closes the staged file at the end of a stream, keeping its bytes for a resume.
func (ss *session) closeFile() {
	if in := ss.file; in != nil && in.f != nil {
		in.f.Close()
		in.f = nil
	}
}

// testHookBeforeLoad, set by tests, runs before a file's load; testHookAfterLoad after
// it, before the file is acknowledged.
var testHookBeforeLoad, testHookAfterLoad func() error
