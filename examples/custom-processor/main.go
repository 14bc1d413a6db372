// Command custom-processor is pipectl with one more processor, "units" (unit conversion
// and spike removal, in package units): a custom Weir binary is this small. It registers
// its plugins, then hands over to Weir's CLI, so every pipectl command works and specs can
// name the new processor:
//
//	go run ./examples/custom-processor lint examples/custom-processor/pipe.yaml
package main

import (
	"os"

	"github.com/weir-dev/weir/cli"
	"github.com/weir-dev/weir/examples/custom-processor/units"
)

func main() {
	units.Register()
	os.Exit(cli.Main(os.Args[1:]))
}
