package peer

import (
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/apache/arrow/go/v17/arrow/flight"

	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/pipe/peerwire"
	"github.com/weir-dev/weir/tsfile"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// outFile is a TsFile on its way: the region's own file when the pipe wants all of it, else
// a temporary file of the rows it selects.
type outFile struct {
	path  string
	temp  bool // path is ours to remove
	name  string
	id    string // names the file at the receiver: name, size and CRC32C
	size  int64
	crc   uint32
	empty bool // no rows selected: only the deletions travel
	dels  []peerwire.Deletion
	alone []peerwire.Deletion // with empty: the deletions the receiver lacks
}

func (f *outFile) remove() {
	if f != nil && f.temp {
		_ = os.Remove(f.path)
	}
}

// safeName keeps letters, digits, '.', '_' and '-' of s (others become '_').
func safeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	return strings.TrimLeft(string(b), ".")
}

func fileID(prefix, name string, size int64, crc uint32) string {
	n := safeName(name)
	if len(n) > 120 {
		n = n[:120]
	}
	return fmt.Sprintf("%s%s-%d-%08x", prefix, n, size, crc)
}

// removeOutgoing removes temporary files this pipe left behind (a crash mid-send):
// peer-<pipe>-<digits>.tsfile as rewrite names them (os.CreateTemp's random part is all
// digits), so that those of a pipe whose name extends this one's after a '-' (a-b of a)
// stay: that pipe may be sending them.
func (c *Connector) removeOutgoing() {
	prefix := "peer-" + safeName(c.pipeName) + "-"
	matches, _ := filepath.Glob(filepath.Join(c.outDir, prefix+"*.tsfile"))
	for _, m := range matches {
		rnd := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(m), prefix), ".tsfile")
		if rnd == "" || strings.TrimLeft(rnd, "0123456789") != "" {
			continue
		}
		_ = os.Remove(m)
	}
}

// prepareFile returns what to send for a file event.
func (c *Connector) prepareFile(e *pipe.Event) (*outFile, error) {
	ref := e.File
	var dels []peerwire.Deletion
	for _, d := range ref.Deletions {
		dels = append(dels, peerwire.Deletion{Origin: d.Origin, OriginIndex: d.OriginIndex, Pattern: d.Pattern.String(), MinTime: d.MinTime, MaxTime: d.MaxTime})
	}
	if ref.Whole() {
		return &outFile{path: ref.Path, name: ref.Info.Name, size: ref.Info.Size, crc: ref.Info.CRC32C,
			id: fileID("", ref.Info.Name, ref.Info.Size, ref.Info.CRC32C), dels: dels}, nil
	}
	f, err := c.rewrite(e)
	if err != nil {
		return nil, fmt.Errorf("select rows of %s: %w", ref.Path, err)
	}
	f.dels = dels
	return f, nil
}

// rewrite writes the rows of e's file that the pipe selects (pattern, time range) to a
// temporary TsFile; devices keep their names (the peer holds the same database).
func (c *Connector) rewrite(e *pipe.Event) (*outFile, error) {
	ref := e.File
	data, err := ref.SelectRows(nil)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, d := range data {
			d.Rec.Release()
		}
	}()
	if len(data) == 0 {
		return &outFile{empty: true, name: ref.Info.Name}, nil
	}
	if err := os.MkdirAll(c.outDir, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(c.outDir, "peer-"+safeName(c.pipeName)+"-*.tsfile")
	if err != nil {
		return nil, err
	}
	h := crc32.New(castagnoli)
	cw := &countWriter{w: io.MultiWriter(tmp, h)}
	meta := tsfile.FileMeta{Region: c.region.Name(), Progress: e.Progress, MinIndex: e.MinIndex, MaxIndex: e.MaxIndex, Epoch: e.Epoch}
	_, err = tsfile.WriteFile(cw, meta, data, tsfile.WriteOptions{Compression: "lz4"})
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return nil, err
	}
	name := "sel-" + ref.Info.Name
	return &outFile{path: tmp.Name(), temp: true, name: name, size: cw.n, crc: h.Sum32(), id: fileID("sel-", ref.Info.Name, cw.n, h.Sum32())}, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// sendFile sends a file as FileBegin, chunks from the receiver's offset, and FileEnd.
func (c *Connector) sendFile(st *stream, lim *limiter, it *item, seq uint64) error {
	f, e := it.file, it.e
	off := st.partials[f.id]
	if off < 0 || off > f.size {
		off = 0
	}
	delete(st.partials, f.id) // a later resend on this stream starts over
	begin := &peerwire.Msg{Type: peerwire.TypeFileBegin, Seq: seq, Commit: e.CommitID, Progress: e.Progress,
		FileID: f.id, Name: f.name, Size: f.size, CRC: f.crc, Offset: off, Deletions: f.dels}
	if err := c.send(st, lim, &flight.FlightData{AppMetadata: begin.Encode()}); err != nil {
		return err
	}
	fh, err := os.Open(f.path)
	if err != nil {
		return err
	}
	defer fh.Close()
	for off < f.size {
		// the chunk is read straight into its gRPC message, its metadata (with the CRC) after it
		n := int(min(int64(c.chunk), f.size-off))
		frame, b := peerwire.BodyFirst(n, 32)
		if _, err := fh.ReadAt(b, off); err != nil {
			return fmt.Errorf("read %s at %d: %w", f.path, off, err)
		}
		m := &peerwire.Msg{Type: peerwire.TypeFileChunk, Seq: seq, Offset: off, CRC: crc32.Checksum(b, castagnoli)}
		frame.AppendMeta(m.Append(c.meta[:0]))
		if err := c.send(st, lim, frame); err != nil {
			return err
		}
		off += int64(n)
	}
	return c.send(st, lim, &flight.FlightData{AppMetadata: (&peerwire.Msg{Type: peerwire.TypeFileEnd, Seq: seq}).Encode()})
}
