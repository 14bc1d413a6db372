// Package writeback holds the write-back connector: it applies a pipe's events to another
// local database, idempotently: an event whose progress the target already covers is
// skipped, so redelivery after a restart is harmless.
package writeback

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/tsfile"
)

func init() {
	pipe.RegisterConnector(pipe.PluginInfo{
		Name: "write-back",
		Doc:  "Applies events to another local database (devices renamed into it); idempotent by progress.",
		Params: append([]pipe.ParamSpec{
			{Key: "database", Type: pipe.String, Required: true, Doc: "target database, e.g. root.copy"},
		}, pipe.SinkRuntimeParams...),
	}, func() pipe.Connector { return &Connector{} })
}

// Connector is the write-back connector.
type Connector struct {
	Applier
}

// Applier applies pipe events to a target region idempotently: what the target's progress
// covers is skipped. Devices move into database DB (empty: they keep their database, as on a
// replica). Tmp is a scratch directory for rewritten files.
type Applier struct {
	Target *engine.Region
	DB     string
	Tmp    string
}

// NewApplier returns an applier into target that keeps device names (a replica).
func NewApplier(target *engine.Region) (*Applier, error) {
	tmp := filepath.Join(target.Dir(), "incoming")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("replica %s: %w", target.Name(), err)
	}
	return &Applier{Target: target, Tmp: tmp}, nil
}

// Open implements pipe.Connector.
func (c *Connector) Open(ctx context.Context, env *pipe.Env) error {
	c.DB = env.Params.String("database")
	if err := tsfile.ValidateDevice(c.DB); err != nil || strings.Count(c.DB, ".") != 1 {
		return pipe.Permanent(fmt.Errorf("sink.database: %q is not a database name like root.copy", c.DB))
	}
	if env.Databases == nil {
		return errors.New("sink write-back: no local databases available")
	}
	t, err := env.Databases(c.DB)
	if err != nil {
		return fmt.Errorf("sink.database %s: %w", c.DB, err)
	}
	if env.Region != nil && t == env.Region {
		return pipe.Permanent(fmt.Errorf("sink.database %s: is the pipe's own source", c.DB))
	}
	c.Target = t
	c.Tmp = filepath.Join(t.Dir(), "incoming")
	return os.MkdirAll(c.Tmp, 0o755)
}

// Send implements pipe.Connector.
func (c *Connector) Send(ctx context.Context, batch []*pipe.Event) error {
	for _, e := range batch {
		if err := c.Apply(e); err != nil {
			return err
		}
	}
	return nil
}

func (c *Applier) covered(origin uint32, idx uint64) bool {
	return c.Target.Progress()[origin] >= idx
}

func (c *Applier) device(d string) string {
	if c.DB == "" {
		return d
	}
	return Rename(c.DB, d)
}

func (c *Applier) patterns(p tsfile.Pattern) ([]tsfile.Pattern, error) {
	if c.DB == "" {
		return []tsfile.Pattern{p}, nil
	}
	return RenamePattern(c.DB, p)
}

// Rename moves device (of any database) into database db.
func Rename(db, device string) string { return db + device[len(tsfile.Database(device)):] }

// RenamePattern moves a pattern of the source database into database db: the patterns that
// together select in db what p selects in the source. A `**` right after root stands for
// the database node and zero or more nodes after it, which one pattern cannot say when more
// nodes follow (`**` matches one or more): root.**.d1 becomes root.copy.d1 and
// root.copy.**.d1.
func RenamePattern(db string, p tsfile.Pattern) ([]tsfile.Pattern, error) {
	nodes := strings.Split(p.String(), ".")
	var out []string
	switch {
	case len(nodes) < 2:
		// root alone selects no series of any database (a device has a node after root)
		out = []string{p.String()}
	case nodes[1] == "**" && len(nodes) > 2:
		rest := strings.Join(nodes[2:], ".")
		out = []string{db + "." + rest, db + ".**." + rest}
	case nodes[1] == "**":
		out = []string{db + ".**"}
	case len(nodes) == 2:
		out = []string{db}
	default:
		out = []string{db + "." + strings.Join(nodes[2:], ".")}
	}
	ps := make([]tsfile.Pattern, len(out))
	for i, s := range out {
		var err error
		if ps[i], err = tsfile.ParsePattern(s); err != nil {
			return nil, err
		}
	}
	return ps, nil
}

// Apply applies one event unless the target's progress already covers it.
func (c *Applier) Apply(e *pipe.Event) error {
	switch e.Kind {
	case pipe.KindTablet:
		if c.covered(e.Origin, e.OriginIndex) {
			return nil
		}
		t := tsfile.NewTablet(c.device(e.Tablet.Device), e.Tablet.Rec)
		if _, err := c.Target.WriteReplicated(e.Origin, e.OriginIndex, t); err != nil {
			return fmt.Errorf("apply to %s: %w", c.Target.Name(), err)
		}
	case pipe.KindDeletion:
		if c.covered(e.Origin, e.OriginIndex) {
			return nil
		}
		ps, err := c.patterns(e.Deletion.Pattern)
		if err != nil {
			return fmt.Errorf("apply deletion: %w", err)
		}
		// Only the last pattern advances the target's progress (index 0 before it): a kill
		// between them leaves the deletion uncovered, redelivered, applied again (harmless).
		for i, p := range ps {
			idx := uint64(0)
			if i == len(ps)-1 {
				idx = e.OriginIndex
			}
			if _, err := c.Target.DeleteReplicated(e.Origin, idx, p, e.Deletion.MinTime, e.Deletion.MaxTime); err != nil {
				return fmt.Errorf("apply to %s: %w", c.Target.Name(), err)
			}
		}
	case pipe.KindTsFile:
		if pipe.ProgressIndex(c.Target.Progress()).Covers(e.Progress) {
			return nil
		}
		// The file's deletions go in with it, in the manifest update that lists it (a kill
		// leaves both or neither), with their origin index: the target holds them as part
		// of the file, and a source that ships the file on ships them inside it.
		var dels []engine.IndexedDeletion
		for _, d := range e.File.Deletions {
			if c.covered(d.Origin, d.OriginIndex) {
				continue
			}
			ps, err := c.patterns(d.Pattern)
			if err != nil {
				return fmt.Errorf("apply deletion: %w", err)
			}
			for _, p := range ps {
				dels = append(dels, engine.IndexedDeletion{Deletion: engine.Deletion{Pattern: p, MinTime: d.MinTime, MaxTime: d.MaxTime},
					Origin: d.Origin, OriginIndex: d.OriginIndex})
			}
		}
		return c.loadFile(e, dels)
	}
	return nil
}

// loadFile loads a shipped file into the target: as is when the pipe wants all of it and
// the database name is the same, else rewritten with the selected rows and renamed devices.
func (c *Applier) loadFile(e *pipe.Event, dels []engine.IndexedDeletion) error {
	f := e.File
	if f.Whole() && (c.DB == "" || sameDatabase(c.DB, f.Path)) {
		if ok, err := c.linkFile(e, dels); ok || err != nil {
			return err
		}
		if _, err := c.Target.LoadFileWith(f.Path, e.Progress, dels); err != nil {
			return fmt.Errorf("write-back load %s: %w", f.Path, err)
		}
		return nil
	}
	data, err := f.SelectRows(c.device)
	if err != nil {
		return fmt.Errorf("write-back: %w", err)
	}
	defer func() {
		for _, d := range data {
			d.Rec.Release()
		}
	}()
	tmp, err := os.CreateTemp(c.Tmp, "load-*.tsfile")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	meta := tsfile.FileMeta{Region: c.Target.Name(), Progress: e.Progress}
	if _, err := tsfile.WriteFile(tmp, meta, data, tsfile.WriteOptions{Compression: "lz4"}); err != nil {
		tmp.Close()
		return fmt.Errorf("write-back rewrite %s: %w", f.Path, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if _, err := c.Target.LoadFileWith(tmp.Name(), e.Progress, dels); err != nil {
		return fmt.Errorf("write-back load %s: %w", f.Path, err)
	}
	return nil
}

// linkSeq names the links linkFile stages.
var linkSeq atomic.Uint64

// linkFile loads a shipped file whole by a hard link staged in the target's directory,
// which the target adopts (sealed files are never changed, and the CRC32C is the one the
// source region recorded): no copy. It reports false, with no error, when it cannot link
// (another filesystem, or no recorded CRC); the caller copies then.
func (c *Applier) linkFile(e *pipe.Event, dels []engine.IndexedDeletion) (bool, error) {
	f := e.File
	if f.Info.CRC32C == 0 {
		return false, nil
	}
	staged := filepath.Join(c.Target.Dir(), fmt.Sprintf("link-%d-%d.tmp", os.Getpid(), linkSeq.Add(1)))
	if err := os.Link(f.Path, staged); err != nil {
		return false, nil
	}
	if _, err := c.Target.AdoptFileWith(staged, f.Info.CRC32C, e.Progress, dels); err != nil {
		_ = os.Remove(staged)
		return true, fmt.Errorf("write-back load %s: %w", f.Path, err)
	}
	return true, nil
}

// sameDatabase reports whether the file's devices already live in db (so no renaming).
func sameDatabase(db, path string) bool {
	rd, err := tsfile.OpenFile(path)
	if err != nil {
		return false
	}
	defer rd.Close()
	for _, d := range rd.Meta().Devices {
		if tsfile.Database(d.Device) != db {
			return false
		}
	}
	return true
}

// Close implements pipe.Connector.
func (c *Connector) Close() error { return nil }
