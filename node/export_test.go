package node

// SetSyncDropHook sets the function a pipe sync calls between finding that a pipe's
// generation was dropped and dropping it (nil: none).
func SetSyncDropHook(f func(id uint32, name string)) {
	if f == nil {
		syncDropHook.Store(nil)
		return
	}
	syncDropHook.Store(&f)
}
