package receiver

// SetBeforeLoadHook sets a function run before a file's load (nil: none).
func SetBeforeLoadHook(f func() error) { testHookBeforeLoad = f }

// SetAfterLoadHook sets a function run after a file's load, before its acknowledgement.
func SetAfterLoadHook(f func() error) { testHookAfterLoad = f }
