package journal

import (
	"context"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// exportBatchBytes is how many bytes of records Export puts in one batch:
// enough that a large journal takes few commits, small enough that one
// batch stays a modest allocation.
const exportBatchBytes = 4 << 20

// Export writes every record of the snapshot, unchanged, into a new
// journal in dir, which must not hold one (ErrLocked if another journal
// has it open; an error if it holds records). The new journal is synced
// and closed cleanly before Export returns nil, so it opens as the
// snapshot's exact image, independent of the source journal's files. ctx
// is checked between batches; on any error the new journal may be
// partial and the caller removes dir. Commits to the source go on
// meanwhile: the snapshot does not see them.
func (s *Snapshot) Export(ctx context.Context, dir string) (err error) {
	s.j.mu.RLock()
	defer s.j.mu.RUnlock()
	if s.j.db == nil || s.snap == nil {
		return fmt.Errorf("journal: export snapshot of %s: %w", s.j.dir, ErrClosed)
	}
	dst, err := Open(dir, Options{})
	if err != nil {
		return fmt.Errorf("journal: export: %w", err)
	}
	defer func() {
		if cerr := dst.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("journal: export: %w", cerr)
		}
	}()
	if probe, err := dst.db.NewIter(nil); err != nil {
		return dst.loadError(err)
	} else {
		has := probe.First()
		if err := errors.Join(probe.Error(), probe.Close()); err != nil {
			return dst.loadError(err)
		}
		if has {
			return fmt.Errorf("journal: export to %s: the directory already holds a journal", dir)
		}
	}
	it, err := s.snap.NewIter(nil)
	if err != nil {
		return s.j.loadError(err)
	}
	defer it.Close()
	b := dst.db.NewBatch()
	defer func() { _ = b.Close() }()
	commit := func(sync bool) error {
		wo := pebble.NoSync
		if sync {
			wo = pebble.Sync
		}
		dst.dirty.Store(true)
		err := commitGuard(func() error { return dst.db.Apply(b, wo) })
		if err == nil {
			err = dst.g.err()
		}
		if err != nil {
			return fmt.Errorf("journal: export to %s: %w", dir, err)
		}
		b.Reset()
		return nil
	}
	for valid := it.First(); valid; valid = it.Next() {
		value, err := it.ValueAndErr()
		if err != nil {
			return s.j.loadError(err)
		}
		if err := b.Set(it.Key(), value, nil); err != nil {
			return fmt.Errorf("journal: export: %w", err)
		}
		if b.Len() >= exportBatchBytes {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := commit(false); err != nil {
				return err
			}
		}
	}
	if err := it.Error(); err != nil {
		return s.j.loadError(err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return commit(true)
}
