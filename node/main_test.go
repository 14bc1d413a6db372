package node_test

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"

	"go.uber.org/goleak"

	"github.com/weir-dev/weir/node"
	_ "github.com/weir-dev/weir/pipe/connector/builtin"
	_ "github.com/weir-dev/weir/pipe/connector/writeback"
	_ "github.com/weir-dev/weir/pipe/extractor"
)

// childEnv names the config file of a node run as a child process by TestMain.
const childEnv = "WEIR_NODE_TEST_CONFIG"

func TestMain(m *testing.M) {
	if cfg := os.Getenv(childEnv); cfg != "" {
		os.Exit(runChild(cfg))
	}
	goleak.VerifyTestMain(m)
}

// runChild runs a node as pipectl node run does: until SIGTERM or SIGINT.
func runChild(path string) int {
	c, err := node.LoadConfig(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	o, err := c.Options()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	o.OnStart = func(h, f string) { fmt.Printf("listening http=%s\n", h) }
	n, err := node.Open(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := n.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("stopped cleanly")
	return 0
}
