package writeback

import (
	"context"
	"errors"
	"fmt"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/pipe"
)

func init() {
	pipe.RegisterConnector(pipe.PluginInfo{
		Name: "local-replica",
		Doc:  "Applies events to a replica region in the same process (devices keep their names); idempotent by progress. In-process replica sets use it where nodes would use peer.",
		Params: append([]pipe.ParamSpec{
			{Key: "replica", Type: pipe.String, Required: true, Doc: "name of the replica region, resolved by the host (Env.Databases)"},
		}, pipe.SinkRuntimeParams...),
	}, func() pipe.Connector { return &Replica{} })
}

// ErrReplicaDown is what a local replica that is stopped answers; the pipe retries.
var ErrReplicaDown = errors.New("replica is down")

// Replica is the local-replica connector. It resolves its replica again on every send, so
// a host can take a replica down (resolve returns an error) and bring it back.
type Replica struct {
	*Applier
	name    string
	resolve func(string) (*engine.Region, error)
	source  *engine.Region
}

// Open implements pipe.Connector.
func (c *Replica) Open(ctx context.Context, env *pipe.Env) error {
	name := env.Params.String("replica")
	if name == "" {
		return errors.New("sink.replica: missing")
	}
	if env.Databases == nil {
		return errors.New("sink local-replica: the host resolves no replicas")
	}
	// A replica that is down now is not an error here: sends fail (and are retried) until it
	// is back, while the extractor keeps running, so the carrier selector sees the backlog.
	c.name, c.resolve, c.source = name, env.Databases, env.Region
	return nil
}

// Send implements pipe.Connector.
func (c *Replica) Send(ctx context.Context, batch []*pipe.Event) error {
	t, err := c.resolve(c.name)
	if err != nil {
		return fmt.Errorf("replica %s: %w", c.name, err)
	}
	if c.source != nil && t == c.source {
		return pipe.Permanent(fmt.Errorf("sink.replica %s: is the pipe's own source", c.name))
	}
	if c.Applier == nil || t != c.Target {
		a, err := NewApplier(t)
		if err != nil {
			return err
		}
		c.Applier = a
	}
	for _, e := range batch {
		if err := c.Apply(e); err != nil {
			return err
		}
	}
	return nil
}

// Close implements pipe.Connector.
func (c *Replica) Close() error { return nil }
