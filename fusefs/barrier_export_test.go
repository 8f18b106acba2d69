package fusefs

import "context"

// NotifyBarrier lets the system tests (package fusefs_test, whose mount
// child serves the store) wait until the notifier has passed every change
// queued before the call to the kernel. It returns false if the mount
// ended first, or ctx did.
func NotifyBarrier(ctx context.Context, s *Server) bool { return s.notifyBarrier(ctx) }
