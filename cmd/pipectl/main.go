// Command pipectl runs Weir: the demo, nodes, pipes, TsFile tools and benchmarks.
package main

import (
	"os"

	"github.com/weir-dev/weir/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}
