package cli

import (
	"testing"

	"go.uber.org/goleak"
)

// Every command's goroutines (nodes, brokers, pipes, benchmarks) end with it.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
