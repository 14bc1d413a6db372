package processor

import (
	"context"
	"fmt"
	"strings"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"

	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/tsfile"
)

const (
	keyFrom = "from"
	keyTo   = "to"
)

func init() {
	pipe.RegisterProcessor(pipe.PluginInfo{
		Name: "rename",
		Doc: "Rewrites a database or device prefix: devices at or under from move under to " +
			"(root.src.line1.d1 → root.dst.line1.d1 for from root.src, to root.dst); deletions " +
			"whose pattern starts with from follow. A TsFile holding no such device passes untouched.",
		Params: []pipe.ParamSpec{
			{Key: keyFrom, Type: pipe.String, Required: true, Check: tsfile.ValidateDevice,
				Doc: "the prefix to replace: a database (root.src) or a device path prefix (root.src.line1)"},
			{Key: keyTo, Type: pipe.String, Required: true, Check: tsfile.ValidateDevice,
				Doc: "what replaces it, e.g. root.dst"},
		},
	}, func() pipe.Processor { return &Rename{} })
}

// Rename is the rename processor: it moves the devices at or under one path prefix under
// another.
type Rename struct {
	from, to string
	origin   uint32
}

// NewRename returns a rename of prefix from into to (both device paths).
func NewRename(from, to string) (*Rename, error) {
	if err := tsfile.ValidateDevice(from); err != nil {
		return nil, errKey(keyFrom, err)
	}
	if err := tsfile.ValidateDevice(to); err != nil {
		return nil, errKey(keyTo, err)
	}
	return &Rename{from: from, to: to, origin: LocalOrigin(nil)}, nil
}

// Open implements pipe.Processor. A bad parameter is a permanent error: retrying cannot
// fix a spec.
func (r *Rename) Open(ctx context.Context, env *pipe.Env) error {
	return pipe.Permanent(r.open(ctx, env))
}

func (r *Rename) open(_ context.Context, env *pipe.Env) error {
	n, err := NewRename(env.Params.String(keyFrom), env.Params.String(keyTo))
	if err != nil {
		return err
	}
	*r = *n
	r.origin = LocalOrigin(env)
	return nil
}

// Close implements pipe.Processor.
func (r *Rename) Close() error { return nil }

// Device returns device renamed, and whether it is at or under the prefix.
func (r *Rename) Device(device string) (string, bool) {
	switch {
	case device == r.from:
		return r.to, true
	case strings.HasPrefix(device, r.from) && device[len(r.from)] == '.':
		return r.to + device[len(r.from):], true
	}
	return device, false
}

// Pattern returns p renamed when its leading nodes are the prefix's, and whether it was.
func (r *Rename) Pattern(p tsfile.Pattern) (tsfile.Pattern, bool) {
	s := p.String()
	if s != r.from && !strings.HasPrefix(s, r.from+".") {
		return p, false
	}
	np, err := tsfile.ParsePattern(r.to + s[len(r.from):])
	if err != nil {
		return p, false
	}
	return np, true
}

// Process implements pipe.Processor.
func (r *Rename) Process(ctx context.Context, e *pipe.Event, emit func(*pipe.Event)) error {
	if e.Kind == pipe.KindDeletion && e.Deletion != nil {
		p, ok := r.Pattern(e.Deletion.Pattern)
		if !ok {
			emit(e)
			return nil
		}
		d := *e.Deletion
		d.Pattern = p
		emit(&pipe.Event{Kind: pipe.KindDeletion, Region: e.Region, Progress: e.Progress, Origin: e.Origin,
			OriginIndex: e.OriginIndex, MinIndex: e.MinIndex, MaxIndex: e.MaxIndex, Epoch: e.Epoch,
			Deletion: &d, EventTime: e.EventTime, Bytes: e.Bytes})
		return nil
	}
	keep := func(f *pipe.FileRef) bool {
		for _, d := range f.Deletions {
			if _, ok := r.Pattern(d.Pattern); ok {
				return false
			}
		}
		rd, err := f.Open()
		if err != nil {
			return false // Each reports the error
		}
		defer rd.Close()
		for _, d := range rd.Meta().Devices {
			if _, ok := r.Device(d.Device); ok {
				return false
			}
		}
		return true
	}
	if e.Kind == pipe.KindTsFile {
		emit = r.renamingDeletions(emit)
	}
	return Map(ctx, e, emit, r.origin, keep, func(t *tsfile.Tablet) (*tsfile.Tablet, error) {
		nd, ok := r.Device(t.Device)
		if !ok {
			return t, nil
		}
		if err := tsfile.ValidateDevice(nd); err != nil {
			return nil, fmt.Errorf("rename %s: %w", t.Device, err)
		}
		return Retitle(t, nd), nil
	})
}

// renamingDeletions wraps emit so that the deletion outputs (a file's, which Map makes
// afresh) are renamed.
func (r *Rename) renamingDeletions(emit func(*pipe.Event)) func(*pipe.Event) {
	return func(o *pipe.Event) {
		if o.Kind == pipe.KindDeletion && o.Deletion != nil {
			if p, ok := r.Pattern(o.Deletion.Pattern); ok {
				o.Deletion.Pattern = p
			}
		}
		emit(o)
	}
}

// Retitle returns a tablet of t's rows as device (its Arrow schema metadata renamed too),
// sharing t's columns.
func Retitle(t *tsfile.Tablet, device string) *tsfile.Tablet {
	rec := t.Rec
	old := rec.Schema()
	md := old.Metadata()
	keys, vals := append([]string(nil), md.Keys()...), append([]string(nil), md.Values()...)
	found := false
	for i, k := range keys {
		if k == tsfile.MetaDevice {
			vals[i], found = device, true
		}
	}
	if !found {
		keys, vals = append(keys, tsfile.MetaDevice), append(vals, device)
	}
	nmd := arrow.NewMetadata(keys, vals)
	return tsfile.NewTablet(device, array.NewRecord(arrow.NewSchema(old.Fields(), &nmd), rec.Columns(), rec.NumRows()))
}
