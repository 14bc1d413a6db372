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

// SetAddFollowerHook sets the function called before the leader adds the pipe of a new
// replica; an error it returns fails the add (nil: none).
func SetAddFollowerHook(f func(id uint32) error) {
	if f == nil {
		addFollowerHook.Store(nil)
		return
	}
	addFollowerHook.Store(&f)
}
