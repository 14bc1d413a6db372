package cli

import (
	"github.com/weir-dev/weir/engine"
)

func init() {
	verifyRegionDir = engine.VerifyDir
	manifestEntry = func(file string) (int64, uint32, bool, error) {
		fi, ok := engine.LookupFile(file)
		return fi.Size, fi.CRC32C, ok, nil
	}
}
