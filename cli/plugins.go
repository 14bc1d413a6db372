package cli

// The built-in plugins register themselves; importing them here makes them available to
// every pipectl command (and to a custom binary that calls Main).
import (
	_ "github.com/weir-dev/weir/pipe/connector/builtin"
	_ "github.com/weir-dev/weir/pipe/connector/kafka"
	_ "github.com/weir-dev/weir/pipe/connector/parquet"
	_ "github.com/weir-dev/weir/pipe/connector/peer"
	_ "github.com/weir-dev/weir/pipe/connector/writeback"
	_ "github.com/weir-dev/weir/pipe/extractor"
	_ "github.com/weir-dev/weir/pipe/processor"
)
