package writeback

import (
	"context"
	"errors"
	"testing"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/pipe"
)

// A write-back into the pipe's own source, or into a database not named like root.copy, is
// refused for good (as local-replica refuses its own source): retrying cannot fix the spec,
// and the task must not loop through backoff forever.
func TestOpenRefusesForGood(t *testing.T) {
	src := openRegion(t, 1)
	for _, db := range []string{"root.src", "root.a.b", "root"} {
		c := &Connector{}
		err := c.Open(context.Background(), &pipe.Env{Region: src,
			Params:    pipe.NewParams(map[string]string{"database": db}),
			Databases: func(string) (*engine.Region, error) { return src, nil }})
		if err == nil || !pipe.IsPermanent(err) {
			t.Errorf("write-back into %s: %v, want a permanent error", db, err)
		}
	}
	// a target that cannot be had now (e.g. a shape error the operator fixes) is retried
	c := &Connector{}
	err := c.Open(context.Background(), &pipe.Env{Region: src,
		Params:    pipe.NewParams(map[string]string{"database": "root.copy"}),
		Databases: func(string) (*engine.Region, error) { return nil, errors.New("busy") }})
	if err == nil || pipe.IsPermanent(err) {
		t.Errorf("unavailable target: %v, want a retried error", err)
	}
}
