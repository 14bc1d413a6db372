package tsfile

import (
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// NewCRC32C returns a hash computing the CRC32C (Castagnoli) of what is written to it, as
// FileChecksum does.
func NewCRC32C() hash.Hash32 {
	return crc32.New(castagnoli)
}

// FileChecksum returns the size and the CRC32C (Castagnoli) of the whole file at path.
func FileChecksum(path string) (size int64, crc uint32, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	n := int64(1 << 20)
	if st, err := f.Stat(); err == nil && st.Size() < n {
		n = max(st.Size(), 512)
	}
	h := crc32.New(castagnoli)
	size, err = io.CopyBuffer(h, f, make([]byte, n))
	if err != nil {
		return 0, 0, err
	}
	return size, h.Sum32(), nil
}

// VerifyFile checks the TsFile at path. When wantSize >= 0 (a manifest entry), the file must
// have that size and CRC32C wantCRC; a negative wantSize skips both. Then the whole file is
// read and checked as by VerifyStructure. The error names the file and the failed check.
func VerifyFile(path string, wantSize int64, wantCRC uint32) error {
	if wantSize >= 0 {
		size, crc, err := FileChecksum(path)
		if err != nil {
			return formatErr(path, "read", err)
		}
		if size != wantSize {
			return formatErr(path, "size mismatch", fmt.Errorf("manifest says %d bytes, file has %d", wantSize, size))
		}
		if crc != wantCRC {
			return formatErr(path, "checksum mismatch", fmt.Errorf("manifest says 0x%08x, file has 0x%08x", wantCRC, crc))
		}
	}
	return VerifyStructure(path)
}

// VerifyStructure opens the TsFile at path and reads and checks all of it (see Reader.Verify).
func VerifyStructure(path string) error {
	r, err := OpenFile(path)
	if err != nil {
		return err
	}
	defer r.Close()
	return r.Verify()
}

// Verify checks that the schema message at the start of the file equals the footer's, decodes
// and checks every batch (buffers, device column and dictionary, time order,
// agreement with the index), then recomputes every device's rows and per-column count, min
// and max and compares them with the index.
func (r *Reader) Verify() error {
	if err := r.checkLeadingSchema(); err != nil {
		return formatErr(r.name, "schema message", err)
	}
	for di := range r.meta.Devices {
		dev := &r.meta.Devices[di]
		accs := make([]statAcc, len(dev.Columns))
		for k, c := range dev.Columns {
			accs[k].typ = c.Type
		}
		for _, b := range dev.Batches {
			rec, err := r.readBatch(b)
			if err != nil {
				return err
			}
			for k, c := range dev.Columns {
				if err := accs[k].add(rec.Column(r.colIdx[c.Name])); err != nil {
					rec.Release()
					return formatErr(r.name, fmt.Sprintf("batch %d", b), fmt.Errorf("column %s: %w", c.Name, err))
				}
			}
			rec.Release()
		}
		for k, c := range dev.Columns {
			got := accs[k].result(c.Name)
			if got.Count != c.Count || got.Min != c.Min || got.Max != c.Max {
				return formatErr(r.name, "stats", fmt.Errorf("device %s column %s: data has count %d min %v max %v, index says count %d min %v max %v",
					dev.Device, c.Name, got.Count, got.Min, got.Max, c.Count, c.Min, c.Max))
			}
		}
	}
	return nil
}
