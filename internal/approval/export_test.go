package approval

// SetWaitSubscribed sets a hook that Wait runs between subscribing to a
// request's news and its first read, so tests can force interleavings.
func SetWaitSubscribed(e *Engine, f func(id string)) { e.waitSubscribed = f }
