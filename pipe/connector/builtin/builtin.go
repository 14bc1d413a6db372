// Package builtin registers the simplest sinks: the do-nothing and stdout connectors (the
// do-nothing processor lives with the other processors, in pipe/processor). They register
// through the public registry, exactly as a user's plugins do; import the package for its
// side effects:
//
//	import _ "github.com/weir-dev/weir/pipe/connector/builtin"
package builtin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"

	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/tsfile"
)

// Writer is where the stdout connector writes (os.Stdout; tests replace it). Every batch
// is written in one piece while holding WriterMu, so tasks sharing it do not interleave.
var (
	Writer   io.Writer = os.Stdout
	WriterMu sync.Mutex
)

func init() {
	pipe.RegisterConnector(pipe.PluginInfo{
		Name:   "do-nothing",
		Doc:    "Acknowledges every event without sending it anywhere (benchmarks, tests, draining a pipe).",
		Params: append([]pipe.ParamSpec(nil), pipe.SinkRuntimeParams...),
	}, func() pipe.Connector { return &doNothing{} })
	pipe.RegisterConnector(pipe.PluginInfo{
		Name: "stdout",
		Doc: "Writes each event to standard output: format json gives one JSON object per line " +
			"(kind, commit_id, region, progress, device and rows for tablets, file and info for " +
			"TsFiles, pattern and time range for deletions); format summary gives one short line.",
		Params: append([]pipe.ParamSpec{
			{Key: "format", Type: pipe.Enum, Enum: []string{"json", "summary"}, Default: "json",
				Doc: "json: one JSON object per event; summary: one line per event without the rows"},
		}, pipe.SinkRuntimeParams...),
	}, func() pipe.Connector { return &stdout{} })
}

type doNothing struct{}

func (*doNothing) Open(context.Context, *pipe.Env) error     { return nil }
func (*doNothing) Send(context.Context, []*pipe.Event) error { return nil }
func (*doNothing) Close() error                              { return nil }

type stdout struct {
	summary bool
	buf     []byte
}

func (s *stdout) Open(_ context.Context, env *pipe.Env) error {
	switch f := env.Params.String("format"); f {
	case "", "json":
	case "summary":
		s.summary = true
	default:
		return fmt.Errorf("stdout: format %q is not json or summary", f)
	}
	return nil
}

func (s *stdout) Close() error { return nil }

func (s *stdout) Send(_ context.Context, batch []*pipe.Event) error {
	b := s.buf[:0]
	for _, e := range batch {
		var err error
		if s.summary {
			b = AppendSummary(b, e)
		} else if b, err = AppendJSON(b, e); err != nil {
			return err
		}
		b = append(b, '\n')
	}
	s.buf = b
	WriterMu.Lock()
	defer WriterMu.Unlock()
	if _, err := Writer.Write(b); err != nil {
		return fmt.Errorf("stdout: %w", err)
	}
	return nil
}

// AppendJSON appends e as one JSON object (no newline): kind, commit_id, region, progress,
// event_time, and per kind: device and rows (tablet; each row {"time": t, measurement:
// value, ...} without nulls, columns in tablet order); file and info (TsFile); pattern,
// min_time, max_time (deletion).
func AppendJSON(b []byte, e *pipe.Event) ([]byte, error) {
	b = append(b, `{"kind":`...)
	b = strconv.AppendQuote(b, e.Kind.String())
	b = append(b, `,"commit_id":`...)
	b = strconv.AppendUint(b, e.CommitID, 10)
	b = append(b, `,"region":`...)
	b = appendString(b, e.Region)
	b = append(b, `,"progress":`...)
	b = appendString(b, e.Progress.String())
	if e.EventTime != 0 {
		b = append(b, `,"event_time":`...)
		b = strconv.AppendInt(b, e.EventTime, 10)
	}
	switch e.Kind {
	case pipe.KindTablet:
		if e.Tablet == nil {
			break
		}
		var err error
		if b, err = appendTablet(b, e.Tablet); err != nil {
			return nil, err
		}
	case pipe.KindTsFile:
		if e.File == nil {
			break
		}
		b = append(b, `,"file":`...)
		b = appendString(b, e.File.Path)
		info, err := json.Marshal(e.File.Info)
		if err != nil {
			return nil, err
		}
		b = append(b, `,"info":`...)
		b = append(b, info...)
	case pipe.KindDeletion:
		if e.Deletion == nil {
			break
		}
		b = append(b, `,"pattern":`...)
		b = appendString(b, e.Deletion.Pattern.String())
		b = append(b, `,"min_time":`...)
		b = strconv.AppendInt(b, e.Deletion.MinTime, 10)
		b = append(b, `,"max_time":`...)
		b = strconv.AppendInt(b, e.Deletion.MaxTime, 10)
	}
	return append(b, '}'), nil
}

func appendString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}

func appendTablet(b []byte, t *tsfile.Tablet) ([]byte, error) {
	b = append(b, `,"device":`...)
	b = appendString(b, t.Device)
	b = append(b, `,"rows":[`...)
	times := t.Times()
	cols := t.Columns()
	for r, ts := range times {
		if r > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"time":`...)
		b = strconv.AppendInt(b, ts, 10)
		for i, c := range cols {
			v := tsfile.Value(t.Rec.Column(i+1), r)
			if v == nil {
				continue
			}
			b = append(b, ',')
			b = appendString(b, c.Name)
			b = append(b, ':')
			vb, err := json.Marshal(v)
			if err != nil {
				return nil, fmt.Errorf("stdout: %s.%s at %d: %w", t.Device, c.Name, ts, err)
			}
			b = append(b, vb...)
		}
		b = append(b, '}')
	}
	return append(b, ']'), nil
}

// AppendSummary appends a one-line description of e (no newline).
func AppendSummary(b []byte, e *pipe.Event) []byte {
	b = fmt.Appendf(b, "%s commit=%d region=%s progress=%s", e.Kind, e.CommitID, e.Region, e.Progress)
	switch e.Kind {
	case pipe.KindTablet:
		if e.Tablet != nil {
			b = fmt.Appendf(b, " device=%s rows=%d points=%d", e.Tablet.Device, e.Tablet.Rows(), e.Tablet.Points())
		}
	case pipe.KindTsFile:
		if e.File != nil {
			b = fmt.Appendf(b, " file=%s rows=%d points=%d bytes=%d", e.File.Path, e.File.Info.Rows, e.File.Info.Points, e.File.Info.Size)
		}
	case pipe.KindDeletion:
		if e.Deletion != nil {
			b = fmt.Appendf(b, " pattern=%s min_time=%d max_time=%d", e.Deletion.Pattern, e.Deletion.MinTime, e.Deletion.MaxTime)
		}
	}
	return b
}
