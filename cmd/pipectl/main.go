// Command pipectl runs Weir: the demo, nodes, pipes, TsFile tools and benchmarks.
package main

import (
	"fmt"
	"os"

	"github.com/weir-dev/weir/cli"
	"github.com/weir-dev/weir/gctune"
)

func main() {
	if _, err := gctune.Apply(); err != nil { // the process runs on without a memory limit
		fmt.Fprintln(os.Stderr, "pipectl: warning:", err)
	}
	os.Exit(cli.Main(os.Args[1:]))
}
