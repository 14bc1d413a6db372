package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/node/api"
	"github.com/weir-dev/weir/pipe"
)

// Handler returns the node's HTTP handler: /healthz, /metrics and the API under /v1
// (docs/node.md). Every error is JSON: {"code": ..., "message": ...}.
func (n *Node) Handler() http.Handler {
	mux := http.NewServeMux()
	route := func(path string, methods map[string]http.HandlerFunc) {
		mux.Handle(path, n.instrument(path, methods))
	}
	route("/healthz", map[string]http.HandlerFunc{"GET": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	}})
	route("/metrics", map[string]http.HandlerFunc{"GET": func(w http.ResponseWriter, r *http.Request) { n.metrics.handler.ServeHTTP(w, r) }})
	route("/v1/status", map[string]http.HandlerFunc{"GET": n.handleStatus})
	route("/v1/write", map[string]http.HandlerFunc{"POST": n.handleWrite})
	route("/v1/query", map[string]http.HandlerFunc{"GET": n.handleQuery, "POST": n.handleQuery})
	route("/v1/delete", map[string]http.HandlerFunc{"POST": n.handleDelete})
	route("/v1/digest", map[string]http.HandlerFunc{"GET": n.handleDigest})
	route("/v1/flush", map[string]http.HandlerFunc{"POST": n.handleFlush})
	route("/v1/databases", map[string]http.HandlerFunc{"GET": n.handleDatabases, "POST": n.handleCreateDatabase})
	route("/v1/regions", map[string]http.HandlerFunc{"GET": n.handleRegions})
	route("/v1/pipes", map[string]http.HandlerFunc{"GET": n.handleListPipes, "POST": n.handleCreatePipe})
	route("/v1/pipes/{name}", map[string]http.HandlerFunc{"GET": n.handleDescribePipe, "DELETE": n.handleDropPipe})
	route("/v1/pipes/{name}/start", map[string]http.HandlerFunc{"POST": n.handlePipeOp(pipeStart)})
	route("/v1/pipes/{name}/stop", map[string]http.HandlerFunc{"POST": n.handlePipeOp(pipeStop)})
	route("/v1/sql", map[string]http.HandlerFunc{"POST": n.handleSQL})
	route("/v1/cluster", map[string]http.HandlerFunc{"GET": n.handleCluster})
	route("/v1/cluster/replicasets", map[string]http.HandlerFunc{"GET": n.handleReplicaSets})
	route("/v1/cluster/pipes", map[string]http.HandlerFunc{"GET": n.handleClusterPipes})
	route("/v1/cluster/regions", map[string]http.HandlerFunc{"PUT": n.handleTellRegion})
	route("/v1/cluster/regions/leader", map[string]http.HandlerFunc{"POST": n.handleRegionChange("leader")})
	route("/v1/cluster/regions/replicas", map[string]http.HandlerFunc{"POST": n.handleRegionChange("replicas")})
	mux.Handle("/", n.instrument("other", map[string]http.HandlerFunc{}))
	return mux
}

// statusWriter records the status code; it passes Flush through for streamed answers.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// instrument dispatches by method (405 or 404 as JSON otherwise), bounds the body, counts
// the request and logs it.
func (n *Node) instrument(route string, methods map[string]http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		if len(methods) == 0 {
			writeError(sw, &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound, Message: "no route " + r.URL.Path})
		} else if h, ok := methods[r.Method]; !ok {
			allowed := make([]string, 0, len(methods))
			for m := range methods {
				allowed = append(allowed, m)
			}
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			writeError(sw, &api.Error{Status: http.StatusMethodNotAllowed, Code: api.CodeMethod, Message: fmt.Sprintf("method %s not allowed on %s (allowed: %s)", r.Method, r.URL.Path, strings.Join(allowed, ", "))})
		} else {
			if r.ContentLength > n.o.MaxBodyBytes {
				writeError(sw, tooLarge(n.o.MaxBodyBytes, nil))
			} else {
				r.Body = http.MaxBytesReader(sw, r.Body, n.o.MaxBodyBytes)
				h(sw, r)
			}
		}
		if sw.code == 0 {
			sw.code = http.StatusOK
		}
		d := time.Since(start)
		n.metrics.observe(route, sw.code, d)
		n.log.Debug("http", "method", r.Method, "path", r.URL.Path, "code", sw.code, "dur", d)
	})
}

func tooLarge(limit int64, wr *api.WriteResult) *api.Error {
	return &api.Error{Status: http.StatusRequestEntityTooLarge, Code: api.CodeTooLarge,
		Message: fmt.Sprintf("request body larger than the node's limit of %d bytes (max-body-size)", limit), Write: wr}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, e *api.Error) {
	if e.Status == 0 {
		e.Status = http.StatusInternalServerError
	}
	writeJSON(w, e.Status, e)
}

func badRequest(field, format string, a ...any) *api.Error {
	msg := fmt.Sprintf(format, a...)
	if field != "" {
		msg = field + ": " + msg
	}
	return &api.Error{Status: http.StatusBadRequest, Code: api.CodeBadRequest, Field: field, Message: msg}
}

// apiError maps an error to its API error: status and code.
func apiError(err error) *api.Error {
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae
	}
	e := &api.Error{Status: http.StatusInternalServerError, Code: api.CodeInternal, Message: err.Error()}
	var mbe *http.MaxBytesError
	var tc *TypeConflictError
	var etc *engine.TypeConflictError
	switch {
	case errors.As(err, &mbe):
		return tooLarge(mbe.Limit, nil)
	case errors.Is(err, pipe.ErrPipeNotFound), errors.Is(err, ErrNoDatabase):
		e.Status, e.Code = http.StatusNotFound, api.CodeNotFound
	case errors.Is(err, pipe.ErrPipeExists), errors.Is(err, ErrDatabaseShape):
		e.Status, e.Code = http.StatusConflict, api.CodeConflict
	case errors.As(err, &tc), errors.As(err, &etc):
		e.Status, e.Code = http.StatusBadRequest, api.CodeTypeConflict
	case errors.Is(err, ErrClosed), errors.Is(err, engine.ErrClosed), errors.Is(err, pipe.ErrManagerClosed):
		e.Status, e.Code = http.StatusServiceUnavailable, api.CodeUnavailable
	}
	return e
}

// decodeJSON decodes a JSON body strictly (unknown fields are errors naming them).
func decodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &mbe):
			return err
		case errors.As(err, &te):
			return badRequest(te.Field, "%s is not %s", te.Value, te.Type)
		case errors.As(err, &se):
			return badRequest("", "malformed JSON at byte %d: %v", se.Offset, err)
		case errors.Is(err, io.EOF):
			return badRequest("", "empty body: a JSON object is expected")
		}
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			f = strings.Trim(f, `"`)
			return badRequest(f, "unknown field")
		}
		return badRequest("", "malformed JSON: %v", err)
	}
	if dec.More() {
		return badRequest("", "malformed JSON: more than one value in the body")
	}
	return nil
}

func mediaType(r *http.Request) string {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt
}

// readBody reads a whole (bounded) body.
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, badRequest("", "reading the body: %v", err)
	}
	return b, nil
}

func boolParam(r *http.Request, key string) (bool, error) {
	v := r.URL.Query().Get(key)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, badRequest(key, "%q is not true or false", v)
	}
	return b, nil
}

func (n *Node) handleStatus(w http.ResponseWriter, r *http.Request) {
	st := api.Status{ID: n.o.ID, HTTP: n.HTTPAddr(), Flight: n.FlightAddr(), Data: n.dir, Pipes: len(n.mgr.List()),
		Uptime: time.Since(n.started).Seconds(), Databases: []api.Database{}}
	for _, d := range n.Databases() {
		st.Databases = append(st.Databases, api.Database{Name: d.name, Regions: len(d.regions)})
	}
	writeJSON(w, http.StatusOK, st)
}

// database returns the database named by the parameter db, or a 404.
func (n *Node) database(name string) (*Database, error) {
	if err := CheckDatabaseName(name); err != nil {
		return nil, badRequest("db", "%v", err)
	}
	d, ok := n.Database(name)
	if !ok {
		return nil, &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound, Field: "db", Message: fmt.Sprintf("database %s: %v", name, ErrNoDatabase)}
	}
	return d, nil
}

// databasesParam returns the database named by ?db=, or every database.
func (n *Node) databasesParam(r *http.Request) ([]*Database, error) {
	if name := r.URL.Query().Get("db"); name != "" {
		d, err := n.database(name)
		if err != nil {
			return nil, err
		}
		return []*Database{d}, nil
	}
	return n.Databases(), nil
}

func (n *Node) handleDigest(w http.ResponseWriter, r *http.Request) {
	local, err := localParam(r)
	if err != nil {
		writeError(w, apiError(err))
		return
	}
	dbs, err := n.databasesParam(r)
	if err != nil {
		writeError(w, apiError(err))
		return
	}
	if dbs, err = n.narrow(r, dbs); err != nil {
		writeError(w, apiError(err))
		return
	}
	out := []api.Digest{}
	for _, d := range dbs {
		dg, err := func() (api.Digest, error) {
			if n.routed(d.name, local) {
				return n.clusterDigest(r.Context(), d)
			}
			return d.Digest(r.Context())
		}()
		if err != nil {
			writeError(w, apiError(err))
			return
		}
		out = append(out, dg)
	}
	if r.URL.Query().Get("db") != "" {
		writeJSON(w, http.StatusOK, out[0])
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (n *Node) handleFlush(w http.ResponseWriter, r *http.Request) {
	local, err := localParam(r)
	if err != nil {
		writeError(w, apiError(err))
		return
	}
	dbs, err := n.databasesParam(r)
	if err != nil {
		writeError(w, apiError(err))
		return
	}
	names := []string{}
	for _, d := range dbs {
		if err := d.Flush(); err != nil {
			writeError(w, apiError(err))
			return
		}
		names = append(names, d.name)
	}
	if n.cl != nil && !local {
		// then every other node; one that is down does not keep the others from flushing
		if err := n.clusterFlush(r.Context(), r.URL.Query().Get("db")); err != nil {
			writeError(w, &api.Error{Status: http.StatusServiceUnavailable, Code: api.CodeUnavailable,
				Message: fmt.Sprintf("flushed on node %d and on every node that answered, but not on: %v", n.o.ID, err)})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"databases": names})
}

func (n *Node) handleDatabases(w http.ResponseWriter, r *http.Request) {
	out := []api.Database{}
	for _, d := range n.Databases() {
		out = append(out, api.Database{Name: d.name, Regions: len(d.regions)})
	}
	writeJSON(w, http.StatusOK, out)
}

func (n *Node) handleCreateDatabase(w http.ResponseWriter, r *http.Request) {
	var req api.CreateDatabase
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, apiError(err))
		return
	}
	if err := CheckDatabaseName(req.Name); err != nil {
		writeError(w, badRequest("name", "%v", err))
		return
	}
	if req.Regions < 0 || req.Regions > MaxRegions {
		writeError(w, badRequest("regions", "must be 1-%d, got %d", MaxRegions, req.Regions))
		return
	}
	d, err := n.CreateDatabase(req.Name, req.Regions)
	if err != nil {
		writeError(w, apiError(err))
		return
	}
	writeJSON(w, http.StatusOK, api.Database{Name: d.name, Regions: len(d.regions)})
}

func (n *Node) handleRegions(w http.ResponseWriter, r *http.Request) {
	dbs, err := n.databasesParam(r)
	if err != nil {
		writeError(w, apiError(err))
		return
	}
	out := []api.Region{}
	for _, d := range dbs {
		for i, rg := range d.regions {
			out = append(out, api.Region{Database: d.name, Region: rg.Name(), Index: i, Origin: rg.Origin(), Dir: rg.Dir(), Stats: rg.Stats()})
		}
	}
	writeJSON(w, http.StatusOK, out)
}
