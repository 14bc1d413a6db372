package cli

import (
	"context"

	"github.com/weir-dev/weir/node"
	"github.com/weir-dev/weir/pipe/receiver"
)

// A node run by pipectl serves the peer sink's Flight receiver on its flight address:
// region i of a sender's database lands in region i of the local one.
func init() {
	node.RegisterFlight(func(ctx context.Context, env node.FlightEnv) (string, func() error, error) {
		s, err := receiver.New(receiver.Options{Resolve: node.RegionResolver(env.Databases), Admit: env.Admit, Logger: env.Logger})
		if err != nil {
			return "", nil, err
		}
		return s.Serve(ctx, env.Addr)
	})
}
