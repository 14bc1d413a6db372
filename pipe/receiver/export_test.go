package receiver

// SetBeforeLoadHook sets a function run between a file's deletions and its load (nil: none).
func SetBeforeLoadHook(f func() error) { testHookBeforeLoad = f }
