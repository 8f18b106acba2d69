package journal

// Sync exists for stores that commit without waiting (Options.NoSync) but
// must, now and then, know that what they committed is durable: a block a
// commit freed may be reused only once that commit can no longer be lost.

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Sync waits until every batch committed before it was called is on stable
// storage, whatever Options.NoSync says. Pebble's write-ahead log is one
// ordered log, so syncing an empty log record syncs everything before it.
// After Close it returns an error wrapping ErrClosed.
func (j *Journal) Sync() error {
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.db == nil {
		return fmt.Errorf("journal: sync: %w", ErrClosed)
	}
	if err := j.db.LogData(nil, pebble.Sync); err != nil {
		return fmt.Errorf("journal: sync: %w", err)
	}
	return nil
}
