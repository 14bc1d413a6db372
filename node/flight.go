package node

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	"github.com/weir-dev/weir/engine"
)

// DatabaseResolver is what the Flight receiver applies received data through: the node's
// databases. *Node implements it.
type DatabaseResolver interface {
	// Database returns a database of the node, if it has it.
	Database(name string) (*Database, bool)
	// CreateDatabase returns database name, creating it when missing with the given number
	// of regions (0: the node's default). An existing database with another non-zero number
	// of regions is an error wrapping ErrDatabaseShape.
	CreateDatabase(name string, regions int) (*Database, error)
}

// FlightEnv is what a Flight receiver is started with.
type FlightEnv struct {
	// Addr is the node's flight address (host:port; port 0 picks a free port).
	Addr string
	// Databases resolves the databases received data goes to; RegionResolver adapts it to
	// "the local region for a sender's region".
	Databases DatabaseResolver
	NodeID    uint32
	Logger    *slog.Logger
	// Admit refuses the streams the node must not take (receiver.Options.Admit): in a
	// cluster, a peer pipe from outside it into a database the cluster replicates.
	Admit func(database, pipe string, origin uint32) error
}

// FlightFunc starts a Flight receiver (the server side of the peer connector) listening
// on env.Addr, and returns the address it is bound to. ctx ends when the node shuts down;
// stop is called then and must return once every goroutine of the receiver has ended and
// nothing more is written to the databases (the node closes its regions right after).
// receiver.Serve of package pipe/receiver has this shape:
//
//	node.RegisterFlight(func(ctx context.Context, env node.FlightEnv) (string, func() error, error) {
//		s, err := receiver.New(receiver.Options{Resolve: node.RegionResolver(env.Databases), Admit: env.Admit, Logger: env.Logger})
//		if err != nil {
//			return "", nil, err
//		}
//		return s.Serve(ctx, env.Addr)
//	})
type FlightFunc func(ctx context.Context, env FlightEnv) (bound string, stop func() error, err error)

var flight struct {
	mu sync.Mutex
	f  FlightFunc
}

// RegisterFlight installs the Flight receiver that nodes start on their flight address
// when Options.Flight is nil. A package calls it from an init function, so that importing
// the package (as pipectl does) is all it takes. A later call replaces an earlier one.
func RegisterFlight(f FlightFunc) {
	flight.mu.Lock()
	flight.f = f
	flight.mu.Unlock()
}

// RegisteredFlight returns the Flight receiver installed by RegisterFlight, or nil.
func RegisteredFlight() FlightFunc {
	flight.mu.Lock()
	defer flight.mu.Unlock()
	return flight.f
}

// RegionResolver returns the function a receiver calls to find the local region for a
// sender's region: region i of the sender's database root.x (region name "root.x/i")
// goes to region i of the local root.x, created with the node's default number of regions
// when missing. Devices map to regions by the same hash on both nodes, so two nodes whose
// databases have the same number of regions hold each device in the same region; a sender
// region without a local counterpart (i ≥ the local number of regions) is an error
// naming the fix.
func RegionResolver(dbs DatabaseResolver) func(database, region string) (*engine.Region, error) {
	return func(database, region string) (*engine.Region, error) {
		if err := CheckDatabaseName(database); err != nil {
			return nil, err
		}
		idx := 0
		if region != "" {
			name, num, ok := strings.Cut(region, "/")
			i, err := strconv.Atoi(num)
			if !ok || name != database || err != nil || i < 0 {
				return nil, fmt.Errorf("sender region %q is not %s/<index>", region, database)
			}
			idx = i
		}
		d, ok := dbs.Database(database)
		if !ok {
			var err error
			if d, err = dbs.CreateDatabase(database, 0); err != nil {
				return nil, err
			}
		}
		if idx >= len(d.regions) {
			return nil, fmt.Errorf("sender region %s has no counterpart: database %s has %d regions here (create it with as many regions as the sender's): %w",
				region, database, len(d.regions), ErrDatabaseShape)
		}
		return d.regions[idx], nil
	}
}
