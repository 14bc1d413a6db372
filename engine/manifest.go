package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/weir-dev/weir/engine/vfs"
	"github.com/weir-dev/weir/tsfile"
)

// ManifestName is the region manifest's file name.
const ManifestName = "MANIFEST"

const manifestHeader = "weir-manifest v1 crc32c="

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// FileInfo describes one sealed TsFile of a region, as the manifest records it.
type FileInfo struct {
	Name     string            `json:"name"`
	Size     int64             `json:"size"`
	CRC32C   uint32            `json:"crc32c"`
	Version  uint64            `json:"version"`
	Epoch    uint64            `json:"epoch"`
	MinIndex uint64            `json:"min_index"`
	MaxIndex uint64            `json:"max_index"`
	MinTime  int64             `json:"min_time"`
	MaxTime  int64             `json:"max_time"`
	Rows     int64             `json:"rows"`
	Points   int64             `json:"points"`
	Progress map[uint32]uint64 `json:"progress,omitempty"`
	// After and Seq place a file received from another replica (MaxIndex 0) among the
	// region's own writes: After is the region's last WAL index when the file was listed
	// (the writes up to it have lower epochs than the file's version, those after it
	// higher), and Seq the region's count of received files then (from 1). Seq 0: listed
	// by a version that did not record the place (After means nothing then).
	After uint64 `json:"after,omitempty"`
	Seq   uint64 `json:"seq,omitempty"`
}

// Placed reports whether f is a received file whose place among the region's writes is
// recorded (After).
func (f FileInfo) Placed() bool { return f.MaxIndex == 0 && f.Seq > 0 }

// manifest is the durable state of a region besides its WAL: sealed files, tombstones,
// the highest WAL index that files cover, and the measurement schema.
type manifest struct {
	Format       int                        `json:"format"`
	Region       string                     `json:"region"`
	NextVersion  uint64                     `json:"next_version"`
	FlushedIndex uint64                     `json:"flushed_index"`
	Files        []FileInfo                 `json:"files"`
	Tombstones   []tomb                     `json:"tombstones"`
	Schema       map[string]tsfile.DataType `json:"schema"`
	// ReceivedSeq is the Seq of the last file received from another replica.
	ReceivedSeq uint64 `json:"received_seq,omitempty"`
}

// encodeManifest frames the manifest: a header line with the CRC32C of the JSON body, then the body.
func encodeManifest(m *manifest) ([]byte, error) {
	body, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "%s%08x\n", manifestHeader, crc32.Checksum(body, castagnoli))
	buf.Write(body)
	return buf.Bytes(), nil
}

func decodeManifest(path string, data []byte) (*manifest, error) {
	nl := bytes.IndexByte(data, '\n')
	if nl < 0 || !strings.HasPrefix(string(data[:nl]), manifestHeader) {
		return nil, fmt.Errorf("manifest %s: bad header", path)
	}
	var want uint32
	if _, err := fmt.Sscanf(string(data[len(manifestHeader):nl]), "%08x", &want); err != nil {
		return nil, fmt.Errorf("manifest %s: bad checksum field: %w", path, err)
	}
	body := data[nl+1:]
	if got := crc32.Checksum(body, castagnoli); got != want {
		return nil, fmt.Errorf("manifest %s: checksum mismatch: header says %08x, body has %08x", path, want, got)
	}
	m := &manifest{}
	if err := json.Unmarshal(body, m); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", path, err)
	}
	if m.Format != 1 {
		return nil, fmt.Errorf("manifest %s: unsupported format %d", path, m.Format)
	}
	if m.Schema == nil {
		m.Schema = map[string]tsfile.DataType{}
	}
	return m, nil
}

func loadManifest(fs vfs.FS, dir string) (*manifest, error) {
	path := filepath.Join(dir, ManifestName)
	f, err := fs.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open manifest %s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", path, err)
	}
	return decodeManifest(path, data)
}

func saveManifest(fs vfs.FS, dir string, m *manifest) error {
	data, err := encodeManifest(m)
	if err != nil {
		return err
	}
	sort.Slice(m.Files, func(i, j int) bool { return m.Files[i].Version < m.Files[j].Version })
	if err := vfs.WriteFileAtomic(fs, filepath.Join(dir, ManifestName), data); err != nil {
		return fmt.Errorf("save manifest: %w", err)
	}
	return nil
}

// dropFile removes the named file from m.Files (saveManifest sorts the list, so the file
// appended last is not necessarily last any more).
func (m *manifest) dropFile(name string) {
	for i, f := range m.Files {
		if f.Name == name {
			m.Files = append(m.Files[:i], m.Files[i+1:]...)
			return
		}
	}
}

// VerifyDir checks a region directory offline: the manifest's checksum, and every file it
// lists for size, CRC32C and structure. It returns one error per problem found.
func VerifyDir(dir string) []error {
	m, err := loadManifest(vfs.Default, dir)
	if err != nil {
		return []error{err}
	}
	if m == nil {
		return []error{fmt.Errorf("%s: no %s", dir, ManifestName)}
	}
	var errs []error
	for _, f := range m.Files {
		p := filepath.Join(dir, f.Name)
		if err := tsfile.VerifyFile(p, f.Size, f.CRC32C); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// LookupFile finds the manifest entry of the TsFile at path (from the manifest beside it).
func LookupFile(path string) (FileInfo, bool) {
	m, err := loadManifest(vfs.Default, filepath.Dir(path))
	if err != nil || m == nil {
		return FileInfo{}, false
	}
	for _, f := range m.Files {
		if f.Name == filepath.Base(path) {
			return f, true
		}
	}
	return FileInfo{}, false
}
