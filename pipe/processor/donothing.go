package processor

import (
	"context"

	"github.com/weir-dev/weir/pipe"
)

func init() {
	pipe.RegisterProcessor(pipe.PluginInfo{
		Name: "do-nothing",
		Doc:  "Passes every event through unchanged; a TsFile stays a file, unopened.",
	}, func() pipe.Processor { return DoNothing{} })
}

// DoNothing is the do-nothing processor: every event passes through unchanged.
type DoNothing struct{}

// Open implements pipe.Processor.
func (DoNothing) Open(context.Context, *pipe.Env) error { return nil }

// Close implements pipe.Processor.
func (DoNothing) Close() error { return nil }

// Process implements pipe.Processor: it emits e itself.
func (DoNothing) Process(_ context.Context, e *pipe.Event, emit func(*pipe.Event)) error {
	emit(e)
	return nil
}
