package node_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"

	"github.com/weir-dev/weir/node"
)

// The node starts the Flight receiver it is given on its flight address, hands it its
// databases, and stops it at shutdown.
func TestFlightHook(t *testing.T) {
	var (
		mu      sync.Mutex
		gotEnv  node.FlightEnv
		stopped bool
	)
	fake := func(ctx context.Context, env node.FlightEnv) (string, func() error, error) {
		ln, err := net.Listen("tcp", env.Addr)
		if err != nil {
			return "", nil, err
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		mu.Lock()
		gotEnv = env
		mu.Unlock()
		return ln.Addr().String(), func() error {
			ln.Close()
			<-done
			mu.Lock()
			stopped = true
			mu.Unlock()
			return nil
		}, nil
	}
	n := startNode(t, node.Options{ID: 7, Regions: 3, FlightAddr: "127.0.0.1:0", Flight: fake})
	addr := n.FlightAddr()
	if addr == "" || addr == "127.0.0.1:0" {
		t.Fatalf("flight address %q", addr)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	mu.Lock()
	env := gotEnv
	mu.Unlock()
	if env.NodeID != 7 || env.Databases == nil || env.Logger == nil {
		t.Fatalf("env %+v", env)
	}
	resolve := node.RegionResolver(env.Databases)
	r, err := resolve("root.demo", "root.demo/2")
	if err != nil || r.Name() != "root.demo/2" {
		t.Fatalf("resolve: %v %v", r, err)
	}
	if d, ok := n.Database("root.demo"); !ok || len(d.Regions()) != 3 {
		t.Fatalf("database not created with the default regions")
	}
	if _, err := resolve("root.demo", "root.demo/3"); !errors.Is(err, node.ErrDatabaseShape) {
		t.Errorf("region without a counterpart: %v", err)
	}
	for _, bad := range [][2]string{{"root.demo", "root.other/1"}, {"root.demo", "root.demo/x"}, {"demo", ""}} {
		if _, err := resolve(bad[0], bad[1]); err == nil {
			t.Errorf("resolve %q %q: no error", bad[0], bad[1])
		}
	}
	if st, err := n.c.Status(ctx(t)); err != nil || st.Flight != addr {
		t.Errorf("status: %v %+v", err, st)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !stopped {
		t.Error("the receiver was not stopped at shutdown")
	}
}
