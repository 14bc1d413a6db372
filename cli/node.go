package cli

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/weir-dev/weir/gctune"
	"github.com/weir-dev/weir/node"
)

func init() { register(newNodeCmd) }

func newNodeCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "node", Short: "Run a Weir node"}
	var (
		cfgPath string
		c       node.Config
		logLvl  string
		logFmt  string
	)
	run := &cobra.Command{
		Use:   "run [--config node.yaml] [--id N --data DIR --http ADDR --flight ADDR]",
		Short: "Run a node: databases, pipes, the HTTP API, metrics and the Flight receiver",
		Long: `Run a node until SIGTERM or SIGINT, then stop gracefully: the HTTP API finishes the
requests in flight, every pipe stops and saves its progress (running pipes restart with the
node), and every region syncs its WAL.

The configuration comes from a YAML file (--config; docs/node.md lists its keys) and flags;
a flag given overrides the file. On start the node prints the addresses it listens on.`,
		Example: `  pipectl node run --config examples/two-nodes/node1.yaml
  pipectl node run --id 1 --data /tmp/weir1 --http 127.0.0.1:7070 --flight 127.0.0.1:7071
  pipectl node run --id 2 --data /tmp/weir2 --cluster examples/three-replicas/cluster.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var cfg node.Config
			if cfgPath != "" {
				var err error
				if cfg, err = node.LoadConfig(cfgPath); err != nil {
					return &ExitError{Code: 2, Err: err}
				}
			}
			f := cmd.Flags()
			if f.Changed("id") {
				cfg.ID = c.ID
			}
			if f.Changed("data") {
				cfg.Data = c.Data
			}
			if f.Changed("http") {
				cfg.HTTP = c.HTTP
			}
			if f.Changed("flight") {
				cfg.Flight = c.Flight
			}
			if f.Changed("regions") {
				if c.Regions < 1 || c.Regions > node.MaxRegions { // 0 in a file means the default; given here, it is a mistake
					return &ExitError{Code: 2, Err: fmt.Errorf("--regions must be 1-%d, got %d", node.MaxRegions, c.Regions)}
				}
				cfg.Regions = c.Regions
			}
			if f.Changed("durability") {
				cfg.Durability = c.Durability
			}
			if f.Changed("cluster") {
				cfg.Cluster = c.Cluster
			}
			if f.Changed("log-level") {
				cfg.Log.Level = logLvl
			}
			if f.Changed("log-format") {
				cfg.Log.Format = logFmt
			}
			o, err := cfg.Options()
			if err != nil {
				name := "configuration"
				if cfgPath != "" {
					name = cfgPath
				}
				return &ExitError{Code: 2, Err: fmt.Errorf("%s:\n%w", name, err)}
			}
			if gc := gctune.Applied(); gc.PercentFrom != "" {
				o.Logger.Info("collector", "settings", gc.String())
			}
			out := cmd.OutOrStdout()
			o.OnStart = func(h, fl string) {
				if fl == "" {
					fl = "none"
				}
				fmt.Fprintf(out, "weir node %d: http http://%s, flight %s, data %s\n", o.ID, h, fl, o.DataDir)
			}
			n, err := node.Open(o)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			if err := n.Run(ctx); err != nil {
				return err
			}
			fmt.Fprintf(out, "weir node %d stopped\n", o.ID)
			return nil
		},
	}
	f := run.Flags()
	f.StringVar(&cfgPath, "config", "", "YAML configuration file")
	f.Uint32Var(&c.ID, "id", 0, "node id, 1-65535, unique among nodes that exchange data")
	f.StringVar(&c.Data, "data", "", "data directory")
	f.StringVar(&c.HTTP, "http", node.DefaultHTTPAddr, "HTTP API address (port 0: any free port)")
	f.StringVar(&c.Flight, "flight", "", "Arrow Flight receiver address (none if empty)")
	f.IntVar(&c.Regions, "regions", node.DefaultRegions, "regions of a database created on this node")
	f.StringVar(&c.Durability, "durability", "sync", "WAL durability: sync|batch|async")
	f.StringVar(&c.Cluster, "cluster", "", "cluster file: run as a member of that cluster (docs/cluster.md)")
	f.StringVar(&logLvl, "log-level", "info", "log level: debug|info|warn|error")
	f.StringVar(&logFmt, "log-format", "text", "log format: text|json")
	cmd.AddCommand(run, newNodeStatusCmd())
	return cmd
}

func newNodeStatusCmd() *cobra.Command {
	var cf *clientFlags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show a node's status: id, addresses, databases, pipes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := cf.client().Status(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if cf.asJSON {
				return printJSON(out, st)
			}
			fmt.Fprintf(out, "node %d: http %s, flight %s, data %s, up %.0fs, %s\n", st.ID, st.HTTP, orDash(st.Flight), st.Data, st.Uptime, plural(st.Pipes, "pipe"))
			for _, d := range st.Databases {
				fmt.Fprintf(out, "  %s: %s\n", d.Name, plural(d.Regions, "region"))
			}
			return nil
		},
	}
	cf = addClientFlags(cmd)
	return cmd
}
