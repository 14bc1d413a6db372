package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"

	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/weir-dev/weir/node/api"
	"github.com/weir-dev/weir/tsfile"
)

// writeBatch is the number of points parsed before they are written.
const writeBatch = 10_000

// maxLineErrors bounds the bad lines an answer lists.
const maxLineErrors = 100

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	c.n += int64(k)
	return k, err
}

// handleWrite takes a line-format body (text/plain, or no type) or JSON tablets
// (application/json).
func (n *Node) handleWrite(w http.ResponseWriter, r *http.Request) {
	body := &countingReader{r: r.Body}
	defer func() { n.metrics.bodyBytes.Add(float64(body.n)) }()
	local, err := localParam(r)
	if err != nil {
		writeError(w, apiError(err))
		return
	}
	switch mt := mediaType(r); mt {
	case "application/json":
		res, err := n.writeJSON(r.Context(), body, local)
		n.metrics.written.WithLabelValues("json").Add(float64(res.Points))
		if err != nil {
			e := apiError(err)
			e.Write = &res
			writeError(w, e)
			return
		}
		writeJSON(w, http.StatusOK, res)
	case "", "text/plain", "application/octet-stream":
		res, err := n.writeLines(r.Context(), body, local)
		n.metrics.written.WithLabelValues("line").Add(float64(res.Points))
		n.metrics.lineErrs.Add(float64(len(res.LineErrors) + res.Omitted))
		if err != nil {
			e := apiError(err)
			e.Write = &res
			writeError(w, e)
			return
		}
		if bad := len(res.LineErrors) + res.Omitted; bad > 0 {
			msg := fmt.Sprintf("%d bad lines (the other %d lines were written); first: %s", bad, res.Lines, res.LineErrors[0])
			if bad == 1 {
				msg = fmt.Sprintf("bad line (the other %d lines were written): %s", res.Lines, res.LineErrors[0])
			}
			writeError(w, &api.Error{Status: http.StatusBadRequest, Code: api.CodeBadLines, Message: msg, Write: &res})
			return
		}
		writeJSON(w, http.StatusOK, res)
	default:
		writeError(w, &api.Error{Status: http.StatusUnsupportedMediaType, Code: api.CodeBadRequest, Field: "Content-Type",
			Message: fmt.Sprintf("Content-Type %q: send the line format as text/plain or tablets as application/json", mt)})
	}
}

// dbFor returns the database of a device, creating it when the node auto-creates.
func (n *Node) dbFor(device string) (*Database, error) { return n.dbNamed(tsfile.Database(device)) }

// dbNamed returns a database, creating it when the node auto-creates.
func (n *Node) dbNamed(name string) (*Database, error) {
	if d, ok := n.Database(name); ok {
		return d, nil
	}
	if !n.o.AutoCreate {
		return nil, fmt.Errorf("database %s: %w (auto-create is off: create it first)", name, ErrNoDatabase)
	}
	return n.CreateDatabase(name, 0)
}

// writeLines parses a line-format body in batches and writes each batch. Bad lines are
// reported, not written; the good ones are. In a cluster, the points of a replicated
// database go to their regions' leaders unless local is set.
func (n *Node) writeLines(ctx context.Context, body io.Reader, local bool) (api.WriteResult, error) {
	var res api.WriteResult
	dbs := map[string]bool{}
	var bad []api.LineError
	addBad := func(le api.LineError) {
		if len(bad) < maxLineErrors {
			bad = append(bad, le)
		} else {
			res.Omitted++
		}
	}
	var batch []linePoint
	flush := func() error {
		byDB := map[*Database][]linePoint{}
		var order []*Database
		for _, lp := range batch {
			d, err := n.dbFor(lp.p.Device)
			if err != nil {
				if errors.Is(err, ErrClosed) {
					return err
				}
				addBad(api.LineError{Line: lp.line, Message: err.Error()})
				continue
			}
			cols := make([]tsfile.Column, len(lp.p.Fields))
			for i, f := range lp.p.Fields {
				cols[i] = tsfile.Column{Name: f.Name, Type: f.Type}
			}
			if err := d.CheckTypes(lp.p.Device, cols); err != nil {
				addBad(api.LineError{Line: lp.line, Message: err.Error()})
				continue
			}
			if _, ok := byDB[d]; !ok {
				order = append(order, d)
			}
			byDB[d] = append(byDB[d], lp)
			res.Lines++
		}
		batch = batch[:0]
		for _, d := range order {
			if n.routed(d.name, local) {
				r, les, err := n.routeLines(ctx, d, byDB[d])
				res.Points += r.Points
				res.Tablets += r.Tablets
				for _, le := range les {
					addBad(le)
				}
				res.Omitted += r.Omitted
				res.Lines -= int64(len(les) + r.Omitted) // the lines the leaders refused were not written
				dbs[d.name] = true
				if err != nil {
					return err
				}
				continue
			}
			pts := make([]tsfile.Point, len(byDB[d]))
			for i, lp := range byDB[d] {
				pts[i] = lp.p
			}
			// a device's points together, in line order: one tablet per device and field set
			sort.SliceStable(pts, func(i, j int) bool { return pts[i].Device < pts[j].Device })
			tablets, err := tsfile.PointsToTablets(memory.DefaultAllocator, pts)
			if err != nil {
				return fmt.Errorf("database %s: %w", d.name, err)
			}
			k, err := d.WriteTablets(ctx, tablets)
			res.Points += k
			res.Tablets += int64(len(tablets))
			for _, t := range tablets {
				t.Release()
			}
			dbs[d.name] = true
			if err != nil {
				return err
			}
		}
		return nil
	}
	err := tsfile.ParseLines(body, nil, func(line int, p tsfile.Point) error {
		batch = append(batch, linePoint{line, p})
		if len(batch) >= writeBatch {
			return flush()
		}
		return nil
	})
	var les *tsfile.LineErrors
	if errors.As(err, &les) {
		for _, le := range les.Errors {
			addBad(api.LineError{Line: le.Line, Column: le.Column, Message: le.Msg})
		}
		res.Omitted += les.Omitted
	}
	var mbe *http.MaxBytesError
	if _, onlyBadLines := err.(*tsfile.LineErrors); err == nil || onlyBadLines {
		err = flush()
	} else if errors.As(err, &mbe) {
		// the lines read before the limit are good: write them, then report the limit
		if ferr := flush(); ferr != nil {
			err = ferr
		} else {
			err = tooLarge(mbe.Limit, nil)
		}
	}
	sort.SliceStable(bad, func(i, j int) bool { return bad[i].Line < bad[j].Line })
	res.LineErrors = bad
	for name := range dbs {
		res.Databases = append(res.Databases, name)
	}
	sort.Strings(res.Databases)
	return res, err
}

// linePoint is a parsed point and its line in the body.
type linePoint struct {
	line int
	p    tsfile.Point
}

// writeJSON decodes JSON tablets, checks all of them, then writes them. In a cluster, the
// tablets of a replicated database go to their regions' leaders unless local is set.
func (n *Node) writeJSON(ctx context.Context, body io.Reader, local bool) (api.WriteResult, error) {
	var res api.WriteResult
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	dec.UseNumber()
	var req api.Tablets
	if err := dec.Decode(&req); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return res, err
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return res, badRequest(te.Field, "%s is not %s", te.Value, te.Type)
		}
		return res, badRequest("", "malformed JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		// a second value (or stray characters) after the tablets: refused, not ignored
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return res, err
		}
		return res, badRequest("", "malformed JSON: more than one value in the body")
	}
	if len(req.Tablets) == 0 {
		return res, badRequest("tablets", "no tablets")
	}
	var tablets []*tsfile.Tablet
	defer func() {
		for _, t := range tablets {
			t.Release()
		}
	}()
	for i, jt := range req.Tablets {
		t, err := buildTablet(jt, fmt.Sprintf("tablets[%d]", i))
		if err != nil {
			return res, err
		}
		tablets = append(tablets, t)
	}
	byDB := map[string][]*tsfile.Tablet{}
	jsonOf := map[*tsfile.Tablet]api.Tablet{}
	var order []string
	for i, t := range tablets {
		db := tsfile.Database(t.Device)
		if _, ok := byDB[db]; !ok {
			order = append(order, db)
		}
		byDB[db] = append(byDB[db], t)
		jsonOf[t] = req.Tablets[i]
	}
	// every database and the types of its tablets checked before anything is written (a
	// replicated database's types are checked by its regions' leaders)
	dbs := make([]*Database, len(order))
	for i, name := range order {
		d, err := n.dbNamed(name)
		if err != nil {
			return res, err
		}
		if !n.routed(name, local) {
			for _, t := range byDB[name] {
				if err := d.CheckTypes(t.Device, t.Columns()); err != nil {
					return res, err
				}
			}
		}
		dbs[i] = d
	}
	for i, name := range order {
		d := dbs[i]
		if n.routed(name, local) {
			r, err := n.routeTablets(ctx, d, byDB[name], jsonOf)
			res.Points += r.Points
			res.Tablets += r.Tablets
			res.Databases = append(res.Databases, name)
			if err != nil {
				return res, err
			}
			continue
		}
		k, err := d.WriteTablets(ctx, byDB[name])
		res.Points += k
		res.Tablets += int64(len(byDB[name]))
		res.Databases = append(res.Databases, name)
		if err != nil {
			return res, err
		}
	}
	sort.Strings(res.Databases)
	return res, nil
}

// buildTablet checks a JSON tablet and builds it; errors name the field (tablets[i].values[c][r]).
func buildTablet(jt api.Tablet, key string) (*tsfile.Tablet, error) {
	if err := tsfile.ValidateDevice(jt.Device); err != nil {
		return nil, badRequest(key+".device", "%v", err)
	}
	if len(jt.Columns) == 0 {
		return nil, badRequest(key+".columns", "no columns")
	}
	if len(jt.Times) == 0 {
		return nil, badRequest(key+".times", "no times")
	}
	cols := make([]tsfile.Column, len(jt.Columns))
	seen := map[string]bool{}
	for c, jc := range jt.Columns {
		if err := tsfile.ValidateMeasurement(jc.Name); err != nil {
			return nil, badRequest(fmt.Sprintf("%s.columns[%d].name", key, c), "%v", err)
		}
		if seen[jc.Name] {
			return nil, badRequest(fmt.Sprintf("%s.columns[%d].name", key, c), "%q given twice", jc.Name)
		}
		seen[jc.Name] = true
		t, err := tsfile.ParseDataType(jc.Type)
		if err != nil {
			return nil, badRequest(fmt.Sprintf("%s.columns[%d].type", key, c), "%v", err)
		}
		cols[c] = tsfile.Column{Name: jc.Name, Type: t}
	}
	if len(jt.Values) != len(cols) {
		return nil, badRequest(key+".values", "%d arrays for %d columns (one array per column)", len(jt.Values), len(cols))
	}
	vals := make([][]any, len(cols))
	for c, vs := range jt.Values {
		if len(vs) != len(jt.Times) {
			return nil, badRequest(fmt.Sprintf("%s.values[%d]", key, c), "%d values for %d times", len(vs), len(jt.Times))
		}
		vals[c] = make([]any, len(vs))
		for r, v := range vs {
			gv, err := jsonValue(cols[c].Type, v)
			if err != nil {
				return nil, badRequest(fmt.Sprintf("%s.values[%d][%d]", key, c, r), "%v", err)
			}
			vals[c][r] = gv
		}
	}
	tb := tsfile.NewTabletBuilder(memory.DefaultAllocator, jt.Device, cols)
	defer tb.Release()
	row := make([]any, len(cols))
	for r, ts := range jt.Times {
		for c := range cols {
			row[c] = vals[c][r]
		}
		if err := tb.AppendRow(ts, row...); err != nil {
			return nil, badRequest(fmt.Sprintf("%s.values[*][%d]", key, r), "%v", err)
		}
	}
	t, err := tb.Build()
	if err != nil {
		return nil, badRequest(key, "%v", err)
	}
	return t, nil
}

// jsonValue converts a decoded JSON value (json.Number, string, bool or nil) to the Go
// value of type t.
func jsonValue(t tsfile.DataType, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	fail := func() (any, error) { return nil, fmt.Errorf("%v (%s) is not a %s value", v, jsonKind(v), t) }
	switch t {
	case tsfile.Boolean:
		if b, ok := v.(bool); ok {
			return b, nil
		}
	case tsfile.Int32, tsfile.Int64:
		var s string
		switch x := v.(type) {
		case json.Number:
			s = x.String()
		case string:
			s = x
		default:
			return fail()
		}
		bits := 64
		if t == tsfile.Int32 {
			bits = 32
		}
		i, err := strconv.ParseInt(s, 10, bits)
		if err != nil {
			return nil, fmt.Errorf("%s is not a %s value", s, t)
		}
		if t == tsfile.Int32 {
			return int32(i), nil
		}
		return i, nil
	case tsfile.Float, tsfile.Double:
		x, ok := v.(json.Number)
		if !ok {
			return fail()
		}
		bits := 64
		if t == tsfile.Float {
			bits = 32
		}
		f, err := strconv.ParseFloat(x.String(), bits)
		if err != nil {
			return nil, fmt.Errorf("%s is not a %s value", x, t)
		}
		if t == tsfile.Float {
			return float32(f), nil
		}
		return f, nil
	case tsfile.Text:
		if s, ok := v.(string); ok {
			return s, nil
		}
	}
	return fail()
}

func jsonKind(v any) string {
	switch v.(type) {
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}
