package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/weir-dev/weir/node/api"
	"github.com/weir-dev/weir/pipe"
)

// specError turns the problems of a spec or statement into a 400 invalid_spec answer.
func specError(errs []error) *api.Error {
	e := &api.Error{Status: http.StatusBadRequest, Code: api.CodeInvalidSpec}
	for _, err := range errs {
		for _, p := range pipe.Problems(err) {
			pr := api.Problem{Message: p.Error()}
			var prob *pipe.Problem
			var se *pipe.SyntaxError
			switch {
			case errors.As(p, &prob):
				pr.Key, pr.Message = prob.Key, prob.Error()
			case errors.As(p, &se):
				pr.Message = se.Msg
			}
			if pos, ok := pipe.PositionOf(p); ok {
				pr.Line, pr.Column = pos.Line, pos.Column
			}
			e.Problems = append(e.Problems, pr)
		}
	}
	switch len(e.Problems) {
	case 0:
		e.Message = "invalid spec"
	case 1:
		e.Message = e.Problems[0].String()
	default:
		e.Message = fmt.Sprintf("%d problems; first: %s", len(e.Problems), e.Problems[0])
	}
	return e
}

func (n *Node) describe(name string) (api.Pipe, error) {
	st, err := n.mgr.Describe(name)
	if err != nil {
		return api.Pipe{}, err
	}
	spec, err := n.mgr.Spec(name)
	if err != nil {
		return api.Pipe{}, err
	}
	p := api.Pipe{Status: st, Spec: spec}
	if n.cl != nil {
		p.Generation = n.cl.book.gen(name)
	}
	return p, nil
}

func (n *Node) handleListPipes(w http.ResponseWriter, r *http.Request) {
	local, err := localParam(r)
	if err != nil {
		writeError(w, apiError(err))
		return
	}
	sts, err := n.listPipes(r.Context(), local)
	if err != nil {
		writeError(w, apiError(err))
		return
	}
	writeJSON(w, http.StatusOK, sts)
}

func (n *Node) handleDescribePipe(w http.ResponseWriter, r *http.Request) {
	p, err := n.describe(r.PathValue("name"))
	if err != nil {
		writeError(w, apiError(err))
		return
	}
	if local, _ := localParam(r); n.cl != nil && !local && n.clusterPipe(p.Spec) {
		// the cluster's view: every node's tasks of the pipe
		sts, err := n.listPipes(r.Context(), false)
		if err != nil {
			writeError(w, apiError(err))
			return
		}
		for _, st := range sts {
			if st.Name == p.Name {
				p.Status = st
			}
		}
	}
	writeJSON(w, http.StatusOK, p)
}

// handleCreatePipe creates a pipe from a YAML or JSON spec; ?start=true starts it,
// ?if_not_exists=true makes an existing pipe of that name no error.
func (n *Node) handleCreatePipe(w http.ResponseWriter, r *http.Request) {
	start, err := boolParam(r, "start")
	if err != nil {
		writeError(w, apiError(err))
		return
	}
	ine, err := boolParam(r, "if_not_exists")
	if err != nil {
		writeError(w, apiError(err))
		return
	}
	body, err := readBody(r)
	if err != nil {
		writeError(w, apiError(err))
		return
	}
	if len(body) == 0 {
		writeError(w, badRequest("", "empty body: send a pipe spec in YAML or JSON"))
		return
	}
	gen, at, err := fanOutParams(r)
	if err != nil {
		writeError(w, apiError(err))
		return
	}
	spec, errs := pipe.CheckSpec(body)
	if len(errs) > 0 {
		writeError(w, specError(errs))
		return
	}
	if n.fansOut(r, spec) {
		// a cluster pipe this node lacks (the create's fan-out to it failed, or it was down)
		// is learnt first: its generation is the cluster's, not a new one that would
		// replace the other nodes' copies
		n.learnPipe(r.Context(), spec.Name, true)
	}
	code, gen, err := n.createPipe(r.Context(), spec, ine, start, at, gen, n.fansOut(r, spec))
	if err != nil {
		writeError(w, apiError(err))
		return
	}
	if n.fansOut(r, spec) {
		q := url.Values{"if_not_exists": {"true"}, "start": {strconv.FormatBool(start)}, "generation": {gen}, "intent_at": {at.Format(time.RFC3339Nano)}}
		if err := n.fanPipeOp(r.Context(), http.MethodPost, "/v1/pipes", q, r.Header.Get("Content-Type"), body); err != nil {
			writeError(w, apiError(err))
			return
		}
	}
	p, err := n.describe(spec.Name)
	if err != nil {
		writeError(w, apiError(err))
		return
	}
	writeJSON(w, code, p)
}

// createPipe creates (and starts, as asked at time at) a checked spec; 201, or 200 when it
// existed and ifNotExists is set. A cluster pipe takes generation gen, or when gen is "" and
// the request came to this node first (draw), a new one; it returns the pipe's generation.
func (n *Node) createPipe(ctx context.Context, spec *pipe.Spec, ifNotExists, start bool, at time.Time, gen string, draw bool) (int, string, error) {
	if n.cl != nil {
		// the checks of the book, the create and its record at once (two fan-outs of one
		// pipe's creates with different generations are taken one after the other)
		n.cl.pipeOps.Lock()
		defer n.cl.pipeOps.Unlock()
	}
	if gen != "" && n.cl != nil && n.clusterPipe(spec) {
		// a generation from another node's fan-out
		if n.cl.book.dropped(spec.Name, gen) {
			return 0, "", &api.Error{Status: http.StatusConflict, Code: api.CodeConflict, Message: fmt.Sprintf(
				"pipe %s: node %d dropped generation %s of it: the node the create came to holds a stale copy (it missed the drop); "+
					"drop the pipe through that node, or restart it, and create it again", spec.Name, n.o.ID, gen)}
		}
		if have := n.cl.book.gen(spec.Name); have != "" && have != gen {
			if _, err := n.mgr.Spec(spec.Name); err == nil {
				if !n.cl.book.dropped(spec.Name, have) {
					n.mergeDropped(ctx) // the drops the other nodes know
				}
				if !n.cl.book.dropped(spec.Name, have) {
					// nobody dropped this copy: the pipe was created through two nodes at once
					return 0, "", &api.Error{Status: http.StatusConflict, Code: api.CodeConflict, Message: fmt.Sprintf(
						"pipe %s: node %d holds generation %s of it, not %s, and no node dropped that one: was it created through "+
							"two nodes at once? Drop the pipe (through any node) and create it again", spec.Name, n.o.ID, have, gen)}
				}
				// this copy missed its drop (the cluster has created the pipe again since)
				if err := n.dropPipeLocked(spec.Name); err != nil {
					return 0, "", fmt.Errorf("pipe %s: replace generation %s with %s: %w", spec.Name, have, gen, err)
				}
				n.log.Info("pipe replaced by a newer generation: this node missed the drop of its copy", "pipe", spec.Name, "old", have, "new", gen)
			}
		}
	}
	_, existed := n.mgr.Describe(spec.Name)
	if err := n.mgr.Create(spec, ifNotExists); err != nil {
		if len(pipe.Problems(err)) > 1 || errors.As(err, new(*pipe.Problem)) {
			return 0, "", specError([]error{err})
		}
		return 0, "", err
	}
	code := http.StatusCreated
	if existed == nil {
		code = http.StatusOK
	}
	if n.cl != nil && n.clusterPipe(spec) {
		if have := n.cl.book.gen(spec.Name); existed == nil && have != "" {
			gen = have // it existed: it keeps its generation
		} else if gen == "" && draw {
			gen = newGeneration()
		}
		if gen != "" {
			if err := n.cl.book.set(spec.Name, gen); err != nil {
				return 0, "", err
			}
		}
	}
	if start {
		if err := n.setPipeStateLocked(spec.Name, pipe.StateRunning, at); err != nil {
			return 0, gen, fmt.Errorf("pipe %s created but not started: %w", spec.Name, err)
		}
	}
	return code, gen, nil
}

// generationParam returns the ?generation= of a request ("" when absent). Only the node
// that fans a create out sets it (with local=true).
func generationParam(r *http.Request) (string, error) {
	g := r.URL.Query().Get("generation")
	if g == "" {
		return "", nil
	}
	if err := fanOutParam(r, "generation"); err != nil {
		return "", err
	}
	if err := checkGeneration(g); err != nil {
		return "", badRequest("generation", "%v", err)
	}
	return g, nil
}

// fanOutParams returns a request's ?generation= and ?intent_at= (generationParam,
// intentAtParam).
func fanOutParams(r *http.Request) (gen string, at time.Time, err error) {
	if gen, err = generationParam(r); err != nil {
		return "", time.Time{}, err
	}
	at, err = intentAtParam(r)
	return gen, at, err
}

// intentAtParam returns the ?intent_at= of a start or stop (RFC 3339), the time the node it
// was asked of stamped on it, or now when absent (this is that node).
func intentAtParam(r *http.Request) (time.Time, error) {
	v := r.URL.Query().Get("intent_at")
	if v == "" {
		return time.Now().UTC(), nil
	}
	if err := fanOutParam(r, "intent_at"); err != nil {
		return time.Time{}, err
	}
	at, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, badRequest("intent_at", "want an RFC 3339 time, got %q", v)
	}
	return at, nil
}

// fanOutParam refuses parameter key on a request without local=true: only the node that
// fans a request out sets it (a client's intent_at far ahead would make every later start
// or stop do nothing; a client's generation would replace the cluster's copies).
func fanOutParam(r *http.Request, key string) error {
	if local, err := localParam(r); err != nil || !local {
		return badRequest(key, "set by the node that fans a request out to the others (with local=true), not by a client")
	}
	return nil
}

// setPipeState starts (RUNNING) or stops (STOPPED) a pipe; a cluster pipe's book keeps the
// request with its time, unless it already holds a later one (then the pipe is left as that
// one asked: a stale request from a node that was down changes nothing).
//
// gen, when not "", is the generation the request is about (a fanned-out request's): the
// node refuses it (conflict) if it dropped that generation and holds another one now, so
// that a late request about a pipe dropped and created again since never touches the new
// one. (Two generations held at once by different nodes, after creates through two nodes
// at the same moment, are no reason to refuse: a drop by name is how they are undone.)
func (n *Node) setPipeState(name string, state pipe.PipeState, at time.Time, gen string) error {
	if n.cl != nil {
		// the check of the book, the start or stop and its record at once
		n.cl.pipeOps.Lock()
		defer n.cl.pipeOps.Unlock()
		if err := n.sameGeneration(name, gen); err != nil {
			return err
		}
	}
	return n.setPipeStateLocked(name, state, at)
}

// sameGeneration refuses a late request about generation gen ("" any) of a pipe: this node
// dropped that generation and holds another one (n.cl.pipeOps held).
func (n *Node) sameGeneration(name, gen string) error {
	if have := n.cl.book.gen(name); gen != "" && have != gen && n.cl.book.dropped(name, gen) {
		return &api.Error{Status: http.StatusConflict, Code: api.CodeConflict, Message: fmt.Sprintf(
			"pipe %s: the request is about generation %s, which node %d dropped (it holds %q now): a late request", name, gen, n.o.ID, have)}
	}
	return nil
}

// genOf returns the generation this node holds of a pipe ("" outside a cluster).
func (n *Node) genOf(name string) string {
	if n.cl == nil {
		return ""
	}
	return n.cl.book.gen(name)
}

// setPipeStateLocked is setPipeState with n.cl.pipeOps held (in a cluster).
func (n *Node) setPipeStateLocked(name string, state pipe.PipeState, at time.Time) error {
	spec, err := n.mgr.Spec(name)
	if err != nil {
		return err
	}
	if n.cl != nil && n.clusterPipe(spec) {
		if later := n.cl.book.get(name).IntentAt; at.Before(later) {
			return nil
		}
	}
	if state == pipe.StateRunning {
		err = n.mgr.Start(name)
	} else {
		err = n.mgr.Stop(name)
	}
	if err != nil {
		return err
	}
	if n.cl != nil && n.clusterPipe(spec) {
		if _, err := n.cl.book.intend(name, state, at); err != nil {
			n.log.Error("pipe state set, but not recorded in the cluster pipes' book", "pipe", name, "err", err)
		}
	}
	return nil
}

// dropPipe drops a pipe; a cluster pipe's generation is remembered as dropped (pipebook.go).
// gen, when not "", is the generation the request is about (as for setPipeState).
func (n *Node) dropPipe(name, gen string) error {
	if n.cl != nil {
		n.cl.pipeOps.Lock()
		defer n.cl.pipeOps.Unlock()
		if err := n.sameGeneration(name, gen); err != nil {
			return err
		}
	}
	return n.dropPipeLocked(name)
}

// dropPipeLocked is dropPipe with n.cl.pipeOps held (in a cluster).
func (n *Node) dropPipeLocked(name string) error {
	spec, _ := n.mgr.Spec(name)
	if err := n.mgr.Drop(name); err != nil {
		return err
	}
	if n.cl != nil && n.clusterPipe(spec) {
		if err := n.cl.book.drop(name); err != nil {
			n.log.Error("pipe dropped, but its generation not recorded as dropped", "pipe", name, "err", err)
		}
	}
	return nil
}

type pipeOp int

const (
	pipeStart pipeOp = iota
	pipeStop
)

func (n *Node) handlePipeOp(op pipeOp) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		gen, at, err := fanOutParams(r)
		if err != nil {
			writeError(w, apiError(err))
			return
		}
		if local, _ := localParam(r); !local {
			n.learnPipe(r.Context(), name, false) // a cluster pipe created while this node was down
		}
		state := pipe.StateRunning
		if op == pipeStop {
			state = pipe.StateStopped
		}
		if err := n.setPipeState(name, state, at, gen); err != nil {
			writeError(w, apiError(err))
			return
		}
		if spec, _ := n.mgr.Spec(name); n.fansOut(r, spec) {
			q := url.Values{"intent_at": {at.Format(time.RFC3339Nano)}, "generation": {n.genOf(name)}}
			if err := n.fanPipeOp(r.Context(), http.MethodPost, r.URL.Path, q, "", nil); err != nil {
				writeError(w, apiError(err))
				return
			}
		}
		p, err := n.describe(name)
		if err != nil {
			writeError(w, apiError(err))
			return
		}
		writeJSON(w, http.StatusOK, p)
	}
}

// handleDropPipe drops a pipe; ?if_exists=true makes a missing pipe no error.
func (n *Node) handleDropPipe(w http.ResponseWriter, r *http.Request) {
	ie, err := boolParam(r, "if_exists")
	if err != nil {
		writeError(w, apiError(err))
		return
	}
	name := r.PathValue("name")
	gen, err := generationParam(r)
	if err != nil {
		writeError(w, apiError(err))
		return
	}
	if local, _ := localParam(r); !local {
		n.learnPipe(r.Context(), name, false) // a cluster pipe created while this node was down
	}
	spec, _ := n.mgr.Spec(name)
	held := n.genOf(name) // the generation dropped here, which the others are to drop
	err = n.dropPipe(name, gen)
	dropped := err == nil
	if err != nil && !(ie && errors.Is(err, pipe.ErrPipeNotFound)) {
		writeError(w, apiError(err))
		return
	}
	if n.fansOut(r, spec) {
		if err := n.fanPipeOp(r.Context(), http.MethodDelete, r.URL.Path, url.Values{"if_exists": {"true"}, "generation": {held}}, "", nil); err != nil {
			writeError(w, apiError(err))
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"name": name, "dropped": dropped})
}

// handleSQL runs one pipe statement of IoTDB's SQL (CREATE/START/STOP/DROP PIPE, SHOW PIPES).
func (n *Node) handleSQL(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		writeError(w, apiError(err))
		return
	}
	st, errs := pipe.CheckSQL(string(body))
	if len(errs) > 0 {
		writeError(w, specError(errs))
		return
	}
	res := api.SQLResult{Statement: st.Kind.String(), Name: st.Name, Done: true}
	at := time.Now().UTC() // a START or STOP's time, the same on every node
	intent := url.Values{"intent_at": {at.Format(time.RFC3339Nano)}}
	// a statement about a cluster pipe is repeated on the other nodes (as the REST calls)
	var fan func() error
	switch st.Kind {
	case pipe.CreatePipe:
		if n.fansOut(r, st.Spec) {
			n.learnPipe(r.Context(), st.Spec.Name, true) // as the REST create
			fan = func() error {
				js, err := json.Marshal(st.Spec)
				if err != nil {
					return err
				}
				q := url.Values{"if_not_exists": {"true"}, "generation": {n.cl.book.gen(st.Spec.Name)}}
				return n.fanPipeOp(r.Context(), http.MethodPost, "/v1/pipes", q, "application/json", js)
			}
		}
	case pipe.StartPipe, pipe.StopPipe, pipe.DropPipe:
		if local, _ := localParam(r); !local {
			n.learnPipe(r.Context(), st.Name, false) // a cluster pipe created while this node was down
		}
		if spec, _ := n.mgr.Spec(st.Name); n.fansOut(r, spec) {
			path := "/v1/pipes/" + url.PathEscape(st.Name)
			gen := n.genOf(st.Name) // before a drop here forgets it
			intent.Set("generation", gen)
			fan = func() error {
				switch st.Kind {
				case pipe.StartPipe:
					return n.fanPipeOp(r.Context(), http.MethodPost, path+"/start", intent, "", nil)
				case pipe.StopPipe:
					return n.fanPipeOp(r.Context(), http.MethodPost, path+"/stop", intent, "", nil)
				}
				return n.fanPipeOp(r.Context(), http.MethodDelete, path, url.Values{"if_exists": {"true"}, "generation": {gen}}, "", nil)
			}
		}
	case pipe.ShowPipes:
		if local, _ := localParam(r); n.cl != nil && !local {
			sts, err := n.listPipes(r.Context(), false)
			if err != nil {
				writeError(w, apiError(err))
				return
			}
			for _, s := range sts {
				if st.Name == "" || s.Name == st.Name {
					res.Pipes = append(res.Pipes, s)
				}
			}
			if st.Name != "" && len(res.Pipes) == 0 {
				writeError(w, apiError(fmt.Errorf("pipe %s: %w", st.Name, pipe.ErrPipeNotFound)))
				return
			}
			writeJSON(w, http.StatusOK, res)
			return
		}
	}
	switch st.Kind {
	case pipe.CreatePipe:
		_, existed := n.mgr.Describe(st.Spec.Name)
		if _, _, err := n.createPipe(r.Context(), st.Spec, st.IfNotExists, false, at, "", n.fansOut(r, st.Spec)); err != nil {
			writeError(w, apiError(err))
			return
		}
		res.Done = existed != nil
		ps, _ := n.mgr.Describe(st.Spec.Name)
		res.Pipes = []pipe.Status{ps}
	case pipe.StartPipe, pipe.StopPipe:
		state := pipe.StateRunning
		if st.Kind == pipe.StopPipe {
			state = pipe.StateStopped
		}
		if err := n.setPipeState(st.Name, state, at, ""); err != nil {
			writeError(w, apiError(err))
			return
		}
		ps, _ := n.mgr.Describe(st.Name)
		res.Pipes = []pipe.Status{ps}
	case pipe.DropPipe:
		if err := n.dropPipe(st.Name, ""); err != nil {
			if !(st.IfExists && errors.Is(err, pipe.ErrPipeNotFound)) {
				writeError(w, apiError(err))
				return
			}
			res.Done = false
		}
	case pipe.ShowPipes:
		if st.Name != "" {
			ps, err := n.mgr.Describe(st.Name)
			if err != nil {
				writeError(w, apiError(err))
				return
			}
			res.Pipes = []pipe.Status{ps}
		} else {
			res.Pipes = n.mgr.List()
		}
	}
	if fan != nil {
		if err := fan(); err != nil {
			writeError(w, apiError(err))
			return
		}
	}
	writeJSON(w, http.StatusOK, res)
}
