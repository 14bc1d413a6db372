package cli

import (
	"fmt"

	"github.com/weir-dev/weir/engine/wal"
)

type walDurability = wal.Durability

func parseDurability(s string) (wal.Durability, error) {
	d, err := wal.ParseDurability(s)
	if err != nil {
		return 0, fmt.Errorf("--durability: %w", err)
	}
	return d, nil
}
