package dax

// The store's locks carry their rank in the documented order (namespace →
// IO → invalidate → extent map → commit), so that a build with the
// lockcheck tag can catch any path that takes them out of order, before it
// deadlocks. Without the tag the ranks cost nothing: the hooks are empty
// and inlined away.

import "sync"

// lockRank is a lock's place in the order; a goroutine may take a lock only
// while every lock it holds ranks below it.
type lockRank int

const (
	rankNamespace  lockRank = iota + 1 // Store.nsMu
	rankIO                             // inode.ioMu
	rankInvalidate                     // inode.invalMu
	rankExtentMap                      // inode.mapMu
	rankCommit                         // Store.commitMu
	rankWindow                         // Window.mu
)

func (r lockRank) String() string {
	switch r {
	case rankNamespace:
		return "namespace"
	case rankIO:
		return "IO"
	case rankInvalidate:
		return "invalidate"
	case rankExtentMap:
		return "extent-map"
	case rankCommit:
		return "commit"
	case rankWindow:
		return "window"
	}
	return "unknown"
}

// ranker names the rank of a lock type.
type ranker interface{ rank() lockRank }

type (
	nsRank         struct{}
	ioRank         struct{}
	invalidateRank struct{}
	extentMapRank  struct{}
	commitRank     struct{}
	windowRank     struct{}
)

func (nsRank) rank() lockRank         { return rankNamespace }
func (ioRank) rank() lockRank         { return rankIO }
func (invalidateRank) rank() lockRank { return rankInvalidate }
func (extentMapRank) rank() lockRank  { return rankExtentMap }
func (commitRank) rank() lockRank     { return rankCommit }
func (windowRank) rank() lockRank     { return rankWindow }

// rankedMutex is a sync.Mutex of rank R.
type rankedMutex[R ranker] struct{ mu sync.Mutex }

func (m *rankedMutex[R]) Lock() {
	var r R
	lockAcquire(r.rank())
	m.mu.Lock()
}

func (m *rankedMutex[R]) Unlock() {
	var r R
	m.mu.Unlock()
	lockRelease(r.rank())
}

// rankedRWMutex is a sync.RWMutex of rank R; shared and exclusive holds
// rank the same.
type rankedRWMutex[R ranker] struct{ mu sync.RWMutex }

func (m *rankedRWMutex[R]) Lock() {
	var r R
	lockAcquire(r.rank())
	m.mu.Lock()
}

func (m *rankedRWMutex[R]) Unlock() {
	var r R
	m.mu.Unlock()
	lockRelease(r.rank())
}

func (m *rankedRWMutex[R]) RLock() {
	var r R
	lockAcquire(r.rank())
	m.mu.RLock()
}

func (m *rankedRWMutex[R]) RUnlock() {
	var r R
	m.mu.RUnlock()
	lockRelease(r.rank())
}
