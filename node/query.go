package node

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/node/api"
	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/tsfile"
)

// parseQuery reads a query from the URL parameters (GET) or a JSON body (POST):
// pattern, measurements (comma-separated or repeated), start, end (unix ms or RFC 3339),
// limit.
func parseQuery(r *http.Request) (api.Query, engine.Query, error) {
	var q api.Query
	if r.Method == http.MethodPost {
		if err := decodeJSON(r, &q); err != nil {
			return q, engine.Query{}, err
		}
	} else {
		v := r.URL.Query()
		q.Pattern = v.Get("pattern")
		for _, m := range v["measurements"] {
			for _, s := range strings.Split(m, ",") {
				if s = strings.TrimSpace(s); s != "" {
					q.Measurements = append(q.Measurements, s)
				}
			}
		}
		for _, f := range []struct {
			key string
			dst *int64
		}{{"start", &q.Start}, {"end", &q.End}} {
			if s := v.Get(f.key); s != "" {
				t, err := pipe.ParseTime(s)
				if err != nil {
					return q, engine.Query{}, badRequest(f.key, "%v", err)
				}
				*f.dst = t
			}
		}
		if s := v.Get("limit"); s != "" {
			l, err := strconv.ParseInt(s, 10, 64)
			if err != nil || l < 0 {
				return q, engine.Query{}, badRequest("limit", "%q is not a count of rows", s)
			}
			q.Limit = l
		}
	}
	if q.Pattern == "" {
		return q, engine.Query{}, badRequest("pattern", "missing (e.g. root.demo.**)")
	}
	p, err := tsfile.ParsePattern(q.Pattern)
	if err != nil {
		return q, engine.Query{}, badRequest("pattern", "%v", err)
	}
	for i, m := range q.Measurements {
		if err := tsfile.ValidateMeasurement(m); err != nil {
			return q, engine.Query{}, badRequest(fmt.Sprintf("measurements[%d]", i), "%v", err)
		}
	}
	if q.Limit < 0 {
		return q, engine.Query{}, badRequest("limit", "must be >= 0, got %d", q.Limit)
	}
	eq := engine.Query{Pattern: p, Measurements: q.Measurements, MinTime: q.Start, MaxTime: q.End}
	if q.Start != 0 || q.End != 0 {
		if q.End == 0 {
			eq.MaxTime = math.MaxInt64
		}
		if q.Start == 0 && q.End != 0 {
			eq.MinTime = math.MinInt64
		}
		if eq.MinTime > eq.MaxTime {
			return q, engine.Query{}, badRequest("start", "start %d after end %d", q.Start, q.End)
		}
	}
	return q, eq, nil
}

var errLimit = errors.New("limit reached")

// handleQuery streams the points of a query as JSON (api.QueryResult) or CSV
// (?format=csv, or Accept: text/csv).
func (n *Node) handleQuery(w http.ResponseWriter, r *http.Request) {
	q, eq, err := parseQuery(r)
	if err != nil {
		writeError(w, apiError(err))
		return
	}
	format := r.URL.Query().Get("format")
	if format == "" {
		format = "json"
		if strings.Contains(r.Header.Get("Accept"), "text/csv") {
			format = "csv"
		}
	}
	if format != "json" && format != "csv" {
		writeError(w, badRequest("format", "%q is not one of json, csv", format))
		return
	}
	local, err := localParam(r)
	if err != nil {
		writeError(w, apiError(err))
		return
	}
	dbs, err := n.databasesFor(eq.Pattern, false)
	if err != nil {
		writeError(w, apiError(err))
		return
	}
	if dbs, err = n.narrow(r, dbs); err != nil {
		writeError(w, apiError(err))
		return
	}
	if n.cl != nil && !local {
		n.clusterQuery(w, r, q, eq, format, dbs)
		return
	}
	var out queryWriter
	if format == "csv" {
		cols := q.Measurements
		if len(cols) == 0 {
			set := map[string]bool{}
			for _, d := range dbs {
				for m := range d.Schema() {
					if !set[m] {
						set[m] = true
						cols = append(cols, m)
					}
				}
			}
			sort.Strings(cols)
		}
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		out = newCSVWriter(w, cols)
	} else {
		w.Header().Set("Content-Type", "application/json")
		out = &jsonQueryWriter{w: w}
	}
	out.begin()
	var rows int64
	var qerr error
	for _, d := range dbs {
		qerr = d.Scan(r.Context(), eq, func(dev string, rec arrow.Record) error {
			k := rec.NumRows()
			if q.Limit > 0 && rows+k > q.Limit {
				k = q.Limit - rows
			}
			if err := out.record(dev, rec, int(k)); err != nil {
				return err
			}
			rows += k
			if f, ok := w.(http.Flusher); ok {
				f.Flush()
			}
			if q.Limit > 0 && rows >= q.Limit {
				return errLimit
			}
			return nil
		})
		if qerr != nil {
			break
		}
	}
	if errors.Is(qerr, errLimit) {
		qerr = nil
	}
	if qerr != nil {
		n.log.Warn("query failed while streaming", "pattern", q.Pattern, "err", qerr)
	}
	out.end(qerr)
}

// queryWriter streams a query's answer.
type queryWriter interface {
	begin()
	record(dev string, rec arrow.Record, rows int) error
	end(err error)
}

// jsonQueryWriter writes api.QueryResult, one series per device.
type jsonQueryWriter struct {
	w      io.Writer
	buf    []byte
	dev    string
	open   bool
	rows   int64
	points int64
	nser   int
}

func (j *jsonQueryWriter) begin() { j.buf = append(j.buf, `{"series":[`...) }

func (j *jsonQueryWriter) flush() error {
	_, err := j.w.Write(j.buf)
	j.buf = j.buf[:0]
	return err
}

func (j *jsonQueryWriter) record(dev string, rec arrow.Record, rows int) error {
	fs := rec.Schema().Fields()
	first := true
	if !j.open || dev != j.dev {
		if j.open {
			j.buf = append(j.buf, "]}"...)
		}
		if j.nser > 0 {
			j.buf = append(j.buf, ',')
		}
		j.nser++
		j.open, j.dev = true, dev
		names := make([]string, len(fs))
		types := make([]string, len(fs))
		for i, f := range fs {
			names[i] = f.Name
			if i == 0 {
				types[i] = "INT64"
				continue
			}
			if t, err := tsfile.FromArrow(f.Type); err == nil {
				types[i] = t.String()
			}
		}
		d, _ := json.Marshal(dev)
		nb, _ := json.Marshal(names)
		tb, _ := json.Marshal(types)
		j.buf = append(j.buf, `{"device":`...)
		j.buf = append(j.buf, d...)
		j.buf = append(j.buf, `,"columns":`...)
		j.buf = append(j.buf, nb...)
		j.buf = append(j.buf, `,"types":`...)
		j.buf = append(j.buf, tb...)
		j.buf = append(j.buf, `,"rows":[`...)
	} else {
		first = false
	}
	ts := rec.Column(0).(*array.Int64).Int64Values()
	for r := 0; r < rows; r++ {
		if !first || r > 0 {
			j.buf = append(j.buf, ',')
		}
		j.buf = append(j.buf, '[')
		j.buf = strconv.AppendInt(j.buf, ts[r], 10)
		for c := 1; c < len(fs); c++ {
			j.buf = append(j.buf, ',')
			v := tsfile.Value(rec.Column(c), r)
			if v != nil {
				j.points++
			}
			j.buf = appendJSONValue(j.buf, v)
		}
		j.buf = append(j.buf, ']')
		j.rows++
		if len(j.buf) > 64<<10 {
			if err := j.flush(); err != nil {
				return err
			}
		}
	}
	return j.flush()
}

func appendJSONValue(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...)
	case bool:
		return strconv.AppendBool(b, x)
	case int32:
		return strconv.AppendInt(b, int64(x), 10)
	case int64:
		return strconv.AppendInt(b, x, 10)
	case float32:
		return strconv.AppendFloat(b, float64(x), 'g', -1, 32)
	case float64:
		return strconv.AppendFloat(b, x, 'g', -1, 64)
	case string:
		s, _ := json.Marshal(x)
		return append(b, s...)
	}
	s, _ := json.Marshal(v)
	return append(b, s...)
}

func (j *jsonQueryWriter) end(err error) {
	if j.open {
		j.buf = append(j.buf, "]}"...)
	}
	j.buf = append(j.buf, `],"rows":`...)
	j.buf = strconv.AppendInt(j.buf, j.rows, 10)
	j.buf = append(j.buf, `,"points":`...)
	j.buf = strconv.AppendInt(j.buf, j.points, 10)
	if err != nil {
		e, _ := json.Marshal(err.Error())
		j.buf = append(j.buf, `,"error":`...)
		j.buf = append(j.buf, e...)
	}
	j.buf = append(j.buf, "}\n"...)
	_ = j.flush()
}

// csvWriter writes device,time,<measurements...>: one row per device and time, a value
// in each measurement's column (empty when null). A failure after the answer started is
// a last line "# error: ...".
type csvWriter struct {
	w    http.ResponseWriter
	cw   *csv.Writer
	cols []string
	idx  map[string]int
	row  []string
}

func newCSVWriter(w http.ResponseWriter, cols []string) *csvWriter {
	c := &csvWriter{w: w, cw: csv.NewWriter(w), cols: cols, idx: map[string]int{}, row: make([]string, len(cols)+2)}
	for i, m := range cols {
		c.idx[m] = i + 2
	}
	return c
}

func (c *csvWriter) begin() { _ = c.cw.Write(append([]string{"device", "time"}, c.cols...)) }

func (c *csvWriter) record(dev string, rec arrow.Record, rows int) error {
	fs := rec.Schema().Fields()
	pos := make([]int, len(fs))
	for i := 1; i < len(fs); i++ {
		p, ok := c.idx[fs[i].Name]
		if !ok {
			p = -1
		}
		pos[i] = p
	}
	ts := rec.Column(0).(*array.Int64).Int64Values()
	for r := 0; r < rows; r++ {
		clear(c.row)
		c.row[0] = dev
		c.row[1] = strconv.FormatInt(ts[r], 10)
		for i := 1; i < len(fs); i++ {
			if pos[i] < 0 {
				continue
			}
			if v := tsfile.Value(rec.Column(i), r); v != nil {
				c.row[pos[i]] = string(appendCSVValue(nil, v))
			}
		}
		if err := c.cw.Write(c.row); err != nil {
			return err
		}
	}
	c.cw.Flush()
	return c.cw.Error()
}

func appendCSVValue(b []byte, v any) []byte {
	if s, ok := v.(string); ok {
		return append(b, s...)
	}
	return appendJSONValue(b, v)
}

func (c *csvWriter) end(err error) {
	c.cw.Flush()
	if err != nil {
		fmt.Fprintf(c.w, "# error: %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
	}
}

// handleDelete deletes the points of a pattern in a time range in every database it names.
func (n *Node) handleDelete(w http.ResponseWriter, r *http.Request) {
	var req api.Delete
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, apiError(err))
		return
	}
	if req.Pattern == "" {
		writeError(w, badRequest("pattern", "missing (e.g. root.demo.d1.**)"))
		return
	}
	p, err := tsfile.ParsePattern(req.Pattern)
	if err != nil {
		writeError(w, badRequest("pattern", "%v", err))
		return
	}
	minT, maxT := req.Start, req.End
	switch {
	case minT == 0 && maxT == 0:
		minT, maxT = math.MinInt64, math.MaxInt64
	case maxT == 0:
		maxT = math.MaxInt64
	case minT == 0:
		minT = math.MinInt64
	}
	if minT > maxT {
		writeError(w, badRequest("start", "start %d after end %d", minT, maxT))
		return
	}
	local, err := localParam(r)
	if err != nil {
		writeError(w, apiError(err))
		return
	}
	dbs, err := n.databasesFor(p, false)
	if err != nil {
		writeError(w, apiError(err))
		return
	}
	if dbs, err = n.narrow(r, dbs); err != nil {
		writeError(w, apiError(err))
		return
	}
	res := api.DeleteResult{Databases: []string{}}
	for _, d := range dbs {
		switch {
		case n.routed(d.name, local):
			k, err := n.routeDelete(r.Context(), d, req, p, minT, maxT)
			res.Regions += k
			if err != nil {
				writeError(w, apiError(err))
				return
			}
		case n.cl != nil && n.routed(d.name, false):
			// local=true: the regions asked (?regions=, which this node must lead), or those it leads
			full, _ := n.Database(d.name)
			idx, err := regionsParam(r, full)
			if err != nil {
				writeError(w, apiError(err))
				return
			}
			if idx == nil {
				idx = n.ledRegions(d.name)
			}
			if err := full.deleteIn(r.Context(), idx, p, minT, maxT); err != nil {
				writeError(w, apiError(err))
				return
			}
			res.Regions += len(idx)
		default:
			if err := d.Delete(p, minT, maxT); err != nil {
				writeError(w, apiError(err))
				return
			}
			res.Regions += len(d.regions)
		}
		res.Databases = append(res.Databases, d.name)
	}
	writeJSON(w, http.StatusOK, res)
}
