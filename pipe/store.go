package pipe

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
	"time"

	"github.com/weir-dev/weir/engine/vfs"
)

// The durable state of pipes lives under a root directory, one directory per pipe:
//
//	<root>/<pipe>/spec.json               the pipe's spec (JSON of Spec)
//	<root>/<pipe>/state.json              {"state": CREATED|RUNNING|STOPPED|DROPPED, "last_error", "updated"}
//	<root>/<pipe>/progress-<region>.json  one task's checkpoint
//
// Every file is replaced atomically (vfs.WriteFileAtomic: temp file, fsync, rename, fsync
// dir). A progress file is a header line "weir-progress v1 crc32c=XXXXXXXX\n" (CRC32C of the
// body, lower-case hex) and then the JSON of a Checkpoint. A progress file that fails its
// check is refused with an error naming it, never reset: the operator repairs or removes it.
// Region names are escaped in file names (bytes other than [A-Za-z0-9._-] become %XX).
const (
	SpecFile       = "spec.json"
	StateFile      = "state.json"
	progressPrefix = "progress-"
	progressSuffix = ".json"
	progressHeader = "weir-progress v1 crc32c="
)

var progressCRCTable = crc32.MakeTable(crc32.Castagnoli)

// PipeState is the lifecycle state of a pipe.
type PipeState string

// Pipe states.
const (
	StateCreated PipeState = "CREATED"
	StateRunning PipeState = "RUNNING"
	StateStopped PipeState = "STOPPED"
	StateDropped PipeState = "DROPPED"
)

// StateRecord is the content of state.json.
type StateRecord struct {
	State     PipeState `json:"state"`
	LastError string    `json:"last_error,omitempty"`
	Updated   time.Time `json:"updated"`
}

// Store keeps pipes' specs, states and progress on disk.
type Store struct {
	fs   vfs.FS
	root string
}

// NewStore opens (creating it if needed) the store in root; fs nil means the OS.
func NewStore(fs vfs.FS, root string) (*Store, error) {
	if fs == nil {
		fs = vfs.Default
	}
	if root == "" {
		return nil, errors.New("pipe store: directory is empty")
	}
	if err := fs.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("pipe store: %w", err)
	}
	return &Store{fs: fs, root: root}, nil
}

// Root returns the store's directory.
func (s *Store) Root() string { return s.root }

// CheckPipeName rejects names that cannot be a directory name of the store.
func CheckPipeName(name string) error {
	switch {
	case name == "":
		return errors.New("pipe name is empty")
	case name == "." || name == "..":
		return fmt.Errorf("pipe name %q is not allowed", name)
	case strings.ContainsAny(name, `/\`):
		return fmt.Errorf("pipe name %q contains a path separator", name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("pipe name %q contains a control character", name)
		}
	}
	return nil
}

// Dir returns the directory of a pipe.
func (s *Store) Dir(pipe string) string { return filepath.Join(s.root, pipe) }

// ProgressPath returns the path of a task's progress file.
func (s *Store) ProgressPath(pipe, region string) string {
	return filepath.Join(s.root, pipe, progressPrefix+escapeName(region)+progressSuffix)
}

func escapeName(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// Pipes lists the pipes in the store (directories holding a spec), by name.
func (s *Store) Pipes() ([]string, error) {
	ents, err := s.fs.ReadDir(s.root)
	if err != nil {
		return nil, fmt.Errorf("pipe store: %w", err)
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		if _, err := s.fs.Stat(filepath.Join(s.root, e.Name(), SpecFile)); err != nil {
			continue
		}
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out, nil
}

func (s *Store) write(path string, data []byte) error {
	dir := filepath.Dir(path)
	if _, err := s.fs.Stat(dir); err != nil {
		// a new pipe directory: its entry in the root must be durable too, or a crash
		// loses the pipe whose files were synced
		if err := s.fs.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := s.fs.SyncDir(filepath.Dir(dir)); err != nil {
			return fmt.Errorf("sync %s: %w", filepath.Dir(dir), err)
		}
	}
	if err := vfs.WriteFileAtomic(s.fs, path, data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func (s *Store) read(path string) ([]byte, error) {
	f, err := s.fs.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// SaveSpec writes a pipe's spec.
func (s *Store) SaveSpec(spec *Spec) error {
	if err := CheckPipeName(spec.Name); err != nil {
		return err
	}
	data, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return fmt.Errorf("encode spec of pipe %s: %w", spec.Name, err)
	}
	return s.write(filepath.Join(s.Dir(spec.Name), SpecFile), append(data, '\n'))
}

// LoadSpec reads a pipe's spec.
func (s *Store) LoadSpec(pipe string) (*Spec, error) {
	path := filepath.Join(s.Dir(pipe), SpecFile)
	data, err := s.read(path)
	if err != nil {
		return nil, fmt.Errorf("read spec %s: %w", path, err)
	}
	spec := &Spec{}
	if err := json.Unmarshal(data, spec); err != nil {
		return nil, fmt.Errorf("spec file %s is corrupt: %w", path, err)
	}
	if spec.Name != pipe {
		return nil, fmt.Errorf("spec file %s names pipe %q, not %q", path, spec.Name, pipe)
	}
	return spec, nil
}

// SaveState writes a pipe's state record.
func (s *Store) SaveState(pipe string, rec StateRecord) error {
	if rec.Updated.IsZero() {
		rec.Updated = time.Now().UTC()
	}
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	return s.write(filepath.Join(s.Dir(pipe), StateFile), append(data, '\n'))
}

// LoadState reads a pipe's state record; a missing file reads as CREATED.
func (s *Store) LoadState(pipe string) (StateRecord, error) {
	path := filepath.Join(s.Dir(pipe), StateFile)
	data, err := s.read(path)
	if errors.Is(err, os.ErrNotExist) {
		return StateRecord{State: StateCreated}, nil
	}
	if err != nil {
		return StateRecord{}, fmt.Errorf("read state %s: %w", path, err)
	}
	var rec StateRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return StateRecord{}, fmt.Errorf("state file %s is corrupt: %w", path, err)
	}
	switch rec.State {
	case StateCreated, StateRunning, StateStopped, StateDropped:
	default:
		return StateRecord{}, fmt.Errorf("state file %s: unknown state %q", path, rec.State)
	}
	return rec, nil
}

// EncodeProgress renders a checkpoint as a progress file.
func EncodeProgress(ck Checkpoint) ([]byte, error) {
	body, err := json.MarshalIndent(ck, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode progress: %w", err)
	}
	body = append(body, '\n')
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "%s%08x\n", progressHeader, crc32.Checksum(body, progressCRCTable))
	buf.Write(body)
	return buf.Bytes(), nil
}

// CorruptProgressError reports a progress file that failed its checks.
type CorruptProgressError struct {
	Path   string
	Reason string
}

func (e *CorruptProgressError) Error() string {
	return fmt.Sprintf("progress file %s is corrupt (%s); refusing to guess the pipe's position: restore the file or remove it to restart the task from the beginning", e.Path, e.Reason)
}

// DecodeProgress parses a progress file; path names it in errors.
func DecodeProgress(path string, data []byte) (Checkpoint, error) {
	bad := func(format string, a ...any) (Checkpoint, error) {
		return Checkpoint{}, &CorruptProgressError{Path: path, Reason: fmt.Sprintf(format, a...)}
	}
	nl := bytes.IndexByte(data, '\n')
	if nl < 0 || !strings.HasPrefix(string(data[:nl]), progressHeader) {
		return bad("bad header")
	}
	var want uint32
	field := string(data[len(progressHeader):nl])
	if len(field) != 8 {
		return bad("bad checksum field %q", field)
	}
	if _, err := fmt.Sscanf(field, "%08x", &want); err != nil {
		return bad("bad checksum field %q", field)
	}
	body := data[nl+1:]
	if got := crc32.Checksum(body, progressCRCTable); got != want {
		return bad("checksum mismatch: header says %08x, body has %08x", want, got)
	}
	var ck Checkpoint
	if err := json.Unmarshal(body, &ck); err != nil {
		return bad("%v", err)
	}
	return ck, nil
}

// SaveProgress writes a task's checkpoint atomically.
func (s *Store) SaveProgress(pipe, region string, ck Checkpoint) error {
	data, err := EncodeProgress(ck)
	if err != nil {
		return err
	}
	return s.write(s.ProgressPath(pipe, region), data)
}

// LoadProgress reads a task's checkpoint; ok is false when there is none yet. A corrupt
// file is a *CorruptProgressError.
func (s *Store) LoadProgress(pipe, region string) (ck Checkpoint, ok bool, err error) {
	path := s.ProgressPath(pipe, region)
	data, err := s.read(path)
	if errors.Is(err, os.ErrNotExist) {
		return Checkpoint{}, false, nil
	}
	if err != nil {
		return Checkpoint{}, false, fmt.Errorf("read progress %s: %w", path, err)
	}
	ck, err = DecodeProgress(path, data)
	if err != nil {
		return Checkpoint{}, false, err
	}
	return ck, true, nil
}

// Remove deletes a pipe's directory.
func (s *Store) Remove(pipe string) error {
	if err := CheckPipeName(pipe); err != nil {
		return err
	}
	if err := s.fs.RemoveAll(s.Dir(pipe)); err != nil {
		return fmt.Errorf("remove pipe %s: %w", pipe, err)
	}
	return s.fs.SyncDir(s.root)
}
