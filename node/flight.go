package node

import (
	"context"
	"log/slog"
	"net"
	"sync"
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
	// Listener listens on the node's flight address (port 0 already resolved); the receiver
	// serves on it and closes it when stopped.
	Listener net.Listener
	// Databases resolves the databases received data goes to. A device's region is
	// Database.RegionOf(device); a database's regions all hold different origins, so a
	// region's Progress() is what the receiver checks to skip redelivered events.
	Databases DatabaseResolver
	NodeID    uint32
	Logger    *slog.Logger
}

// FlightFunc starts a Flight receiver (the server side of the peer connector) serving on
// env.Listener. ctx ends when the node shuts down; stop is then called and must return
// once every goroutine of the receiver has ended and nothing more is written to the
// databases (the node closes its regions right after).
type FlightFunc func(ctx context.Context, env FlightEnv) (stop func(), err error)

var flight struct {
	mu sync.Mutex
	f  FlightFunc
}

// RegisterFlight installs the Flight receiver that nodes start on their flight address
// when Options.Flight is nil. The receiver's package calls it from an init function, so
// that importing the package (as pipectl does) is all it takes. A later call replaces an
// earlier one.
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
