// Package client is a Go client of a Weir node's HTTP API (package node/api for the
// types). pipectl and the tests use it.
//
//	c := client.New("http://127.0.0.1:7070")
//	res, err := c.Write(ctx, strings.NewReader("root.demo.d1 temp=21.5 1732530000000\n"))
//	d, err := c.Digest(ctx, "root.demo")
//
// Every error the node answers is an *api.Error (with its HTTP status, code and message,
// and for a write the points that were still accepted).
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/weir-dev/weir/node/api"
	"github.com/weir-dev/weir/pipe"
)

// DefaultServer is the node address pipectl uses without --server or WEIR_SERVER.
const DefaultServer = "http://127.0.0.1:7070"

// Client talks to one node.
type Client struct {
	base string
	hc   *http.Client
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (default: http.DefaultClient).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// New returns a client of the node at server ("http://host:port"; "host:port" is taken
// as http).
func New(server string, opts ...Option) *Client {
	if !strings.Contains(server, "://") {
		server = "http://" + server
	}
	c := &Client{base: strings.TrimRight(server, "/"), hc: http.DefaultClient}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Server returns the node's base URL.
func (c *Client) Server() string { return c.base }

// do sends a request and returns the response when its status is 2xx; otherwise it
// decodes the error body into an *api.Error.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, contentType string, body io.Reader) (*http.Response, error) {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	e := &api.Error{}
	if err := json.Unmarshal(data, e); err != nil || e.Code == "" {
		e = &api.Error{Code: api.CodeInternal, Message: strings.TrimSpace(string(data))}
		if e.Message == "" {
			e.Message = resp.Status
		}
	}
	e.Status = resp.StatusCode
	return nil, e
}

// call sends a request and decodes a JSON answer into out (if not nil).
func (c *Client) call(ctx context.Context, method, path string, q url.Values, contentType string, body io.Reader, out any) error {
	resp, err := c.do(ctx, method, path, q, contentType, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber() // query values keep int64 precision (as json.Number)
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
	}
	return nil
}

func jsonBody(v any) io.Reader {
	b, _ := json.Marshal(v)
	return bytes.NewReader(b)
}

// AsError returns err's *api.Error, if it is one.
func AsError(err error) (*api.Error, bool) {
	var e *api.Error
	ok := errors.As(err, &e)
	return e, ok
}

// Health checks /healthz.
func (c *Client) Health(ctx context.Context) error {
	return c.call(ctx, http.MethodGet, "/healthz", nil, "", nil, nil)
}

// Status returns the node's status.
func (c *Client) Status(ctx context.Context) (api.Status, error) {
	var s api.Status
	err := c.call(ctx, http.MethodGet, "/v1/status", nil, "", nil, &s)
	return s, err
}

// Write sends a line-format body. Bad lines come back as an *api.Error with code
// bad_lines whose Write holds the points written and the bad lines.
func (c *Client) Write(ctx context.Context, lines io.Reader) (api.WriteResult, error) {
	var res api.WriteResult
	err := c.call(ctx, http.MethodPost, "/v1/write", nil, "text/plain; charset=utf-8", lines, &res)
	if e, ok := AsError(err); ok && e.Write != nil {
		res = *e.Write
	}
	return res, err
}

// WriteTablets sends tablets as JSON.
func (c *Client) WriteTablets(ctx context.Context, tablets []api.Tablet) (api.WriteResult, error) {
	var res api.WriteResult
	err := c.call(ctx, http.MethodPost, "/v1/write", nil, "application/json", jsonBody(api.Tablets{Tablets: tablets}), &res)
	if e, ok := AsError(err); ok && e.Write != nil {
		res = *e.Write
	}
	return res, err
}

// Query runs a query and decodes its JSON answer. A failure after the answer started is
// an error too (and the result holds what came before).
func (c *Client) Query(ctx context.Context, q api.Query) (api.QueryResult, error) {
	var res api.QueryResult
	if err := c.call(ctx, http.MethodPost, "/v1/query", nil, "application/json", jsonBody(q), &res); err != nil {
		return res, err
	}
	if res.Error != "" {
		return res, fmt.Errorf("query: %s", res.Error)
	}
	return res, nil
}

// QueryTo runs a query and copies the streamed answer, in format "json" or "csv", to w.
func (c *Client) QueryTo(ctx context.Context, q api.Query, format string, w io.Writer) error {
	resp, err := c.do(ctx, http.MethodPost, "/v1/query", url.Values{"format": {format}}, "application/json", jsonBody(q))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("query: %w", err)
	}
	return nil
}

// Delete deletes the points of a pattern in a time range.
func (c *Client) Delete(ctx context.Context, d api.Delete) (api.DeleteResult, error) {
	var res api.DeleteResult
	err := c.call(ctx, http.MethodPost, "/v1/delete", nil, "application/json", jsonBody(d), &res)
	return res, err
}

// Digest returns a database's digest (with its regions').
func (c *Client) Digest(ctx context.Context, db string) (api.Digest, error) {
	var d api.Digest
	err := c.call(ctx, http.MethodGet, "/v1/digest", url.Values{"db": {db}}, "", nil, &d)
	return d, err
}

// Digests returns the digest of every database.
func (c *Client) Digests(ctx context.Context) ([]api.Digest, error) {
	var ds []api.Digest
	err := c.call(ctx, http.MethodGet, "/v1/digest", nil, "", nil, &ds)
	return ds, err
}

// Flush flushes a database's regions ("" : every database).
func (c *Client) Flush(ctx context.Context, db string) error {
	var q url.Values
	if db != "" {
		q = url.Values{"db": {db}}
	}
	return c.call(ctx, http.MethodPost, "/v1/flush", q, "", nil, nil)
}

// Databases lists the node's databases.
func (c *Client) Databases(ctx context.Context) ([]api.Database, error) {
	var out []api.Database
	err := c.call(ctx, http.MethodGet, "/v1/databases", nil, "", nil, &out)
	return out, err
}

// CreateDatabase creates a database (regions 0: the node's default); an existing one with
// the same number of regions is no error.
func (c *Client) CreateDatabase(ctx context.Context, name string, regions int) (api.Database, error) {
	var out api.Database
	err := c.call(ctx, http.MethodPost, "/v1/databases", nil, "application/json", jsonBody(api.CreateDatabase{Name: name, Regions: regions}), &out)
	return out, err
}

// Regions lists the regions of a database ("" : of every database).
func (c *Client) Regions(ctx context.Context, db string) ([]api.Region, error) {
	var q url.Values
	if db != "" {
		q = url.Values{"db": {db}}
	}
	var out []api.Region
	err := c.call(ctx, http.MethodGet, "/v1/regions", q, "", nil, &out)
	return out, err
}

// CreateOptions are the options of CreatePipe.
type CreateOptions struct {
	Start       bool // start the pipe once created
	IfNotExists bool // an existing pipe of that name is no error
}

// CreatePipe creates a pipe from a spec in YAML or JSON. Problems with the spec come back
// as an *api.Error with code invalid_spec and Problems.
func (c *Client) CreatePipe(ctx context.Context, spec []byte, o CreateOptions) (api.Pipe, error) {
	q := url.Values{}
	if o.Start {
		q.Set("start", "true")
	}
	if o.IfNotExists {
		q.Set("if_not_exists", "true")
	}
	var p api.Pipe
	err := c.call(ctx, http.MethodPost, "/v1/pipes", q, "application/yaml", bytes.NewReader(spec), &p)
	return p, err
}

// Pipes lists the pipes' status.
func (c *Client) Pipes(ctx context.Context) ([]pipe.Status, error) {
	var out []pipe.Status
	err := c.call(ctx, http.MethodGet, "/v1/pipes", nil, "", nil, &out)
	return out, err
}

// Pipe describes a pipe: its status and spec.
func (c *Client) Pipe(ctx context.Context, name string) (api.Pipe, error) {
	var p api.Pipe
	err := c.call(ctx, http.MethodGet, "/v1/pipes/"+url.PathEscape(name), nil, "", nil, &p)
	return p, err
}

// StartPipe starts a pipe.
func (c *Client) StartPipe(ctx context.Context, name string) (api.Pipe, error) {
	var p api.Pipe
	err := c.call(ctx, http.MethodPost, "/v1/pipes/"+url.PathEscape(name)+"/start", nil, "", nil, &p)
	return p, err
}

// StopPipe stops a pipe.
func (c *Client) StopPipe(ctx context.Context, name string) (api.Pipe, error) {
	var p api.Pipe
	err := c.call(ctx, http.MethodPost, "/v1/pipes/"+url.PathEscape(name)+"/stop", nil, "", nil, &p)
	return p, err
}

// DropPipe drops a pipe; with ifExists a missing pipe is no error. It reports whether a
// pipe was dropped.
func (c *Client) DropPipe(ctx context.Context, name string, ifExists bool) (bool, error) {
	var out struct {
		Dropped bool `json:"dropped"`
	}
	err := c.call(ctx, http.MethodDelete, "/v1/pipes/"+url.PathEscape(name), url.Values{"if_exists": {strconv.FormatBool(ifExists)}}, "", nil, &out)
	return out.Dropped, err
}

// SQL runs one pipe statement (CREATE/START/STOP/DROP PIPE, SHOW PIPES).
func (c *Client) SQL(ctx context.Context, stmt string) (api.SQLResult, error) {
	var res api.SQLResult
	err := c.call(ctx, http.MethodPost, "/v1/sql", nil, "text/plain; charset=utf-8", strings.NewReader(stmt), &res)
	return res, err
}

// Metrics returns the node's Prometheus metrics in the text format.
func (c *Client) Metrics(ctx context.Context) (string, error) {
	resp, err := c.do(ctx, http.MethodGet, "/metrics", nil, "", nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// Cluster returns the node's cluster: its nodes and each replicated database's placement
// (GET /v1/cluster; a node not in a cluster answers not_found).
func (c *Client) Cluster(ctx context.Context) (api.Cluster, error) {
	var out api.Cluster
	err := c.call(ctx, http.MethodGet, "/v1/cluster", nil, "", nil, &out)
	return out, err
}

// ReplicaSets returns the replication state of the regions the node leads (GET
// /v1/cluster/replicasets): per follower, carrier, lag and pinned WAL.
func (c *Client) ReplicaSets(ctx context.Context) ([]api.ReplicaSet, error) {
	var out []api.ReplicaSet
	err := c.call(ctx, http.MethodGet, "/v1/cluster/replicasets", nil, "", nil, &out)
	return out, err
}

// LocalDigest returns the node's digest of its own replicas of a database (local=true: in
// a cluster, no other node is asked), with each region's.
func (c *Client) LocalDigest(ctx context.Context, db string) (api.Digest, error) {
	var d api.Digest
	err := c.call(ctx, http.MethodGet, "/v1/digest", url.Values{"db": {db}, "local": {"true"}}, "", nil, &d)
	return d, err
}

// MoveLeader moves the leadership of a region to node to (POST /v1/cluster/regions/leader;
// any node sends it to the region's leader, which drains its followers first).
func (c *Client) MoveLeader(ctx context.Context, region string, to uint32, timeout time.Duration) (api.RegionChange, error) {
	req := api.RegionChangeRequest{Region: region, Node: to}
	if timeout > 0 {
		req.Timeout = timeout.String()
	}
	return c.changeRegion(ctx, "/v1/cluster/regions/leader", req)
}

// ChangeReplicas adds node add to (or removes node remove from) a region's replicas (POST
// /v1/cluster/regions/replicas); give one of them.
func (c *Client) ChangeReplicas(ctx context.Context, region string, add, remove uint32) (api.RegionChange, error) {
	return c.changeRegion(ctx, "/v1/cluster/regions/replicas", api.RegionChangeRequest{Region: region, Add: add, Remove: remove})
}

func (c *Client) changeRegion(ctx context.Context, path string, req api.RegionChangeRequest) (api.RegionChange, error) {
	var out api.RegionChange
	body, err := json.Marshal(req)
	if err != nil {
		return out, err
	}
	err = c.call(ctx, http.MethodPost, path, nil, "application/json", bytes.NewReader(body), &out)
	return out, err
}
