package dax

// The seal cross-checks the journal against the region. A damaged or
// truncated journal write-ahead log loses the batches from the damage on
// without a trace, since Pebble takes damage at the log's end for a write
// torn by the crash. So, now and then, a synced commit carries a commit mark
// (journal.Batch.SetMark), and once that commit is durable the store writes
// the mark into the region's seal (pmem.Region.SetSeal): "the journal holds
// every commit up to this mark". A journal that comes back at Open with a
// lower mark than the seal has lost acknowledged operations, and Open
// refuses it with ErrCorrupt instead of serving an older state
// (TestSealDetectsJournalLogThatLostAcknowledgedCommits); an undamaged
// crash or a clean Close never trips it (TestSealPassesUndamagedCrashAndCleanClose,
// and the power-cut and crash suites under test/).

import (
	"fmt"
	"time"

	"github.com/daxstore/daxstore/pmem"
)

// sealInterval is the least time between two commit marks. The seal can
// only vouch for commits up to the last mark, so damage that loses just
// the commits of roughly the last sealInterval before a crash goes unseen;
// damage that reaches back further is caught. Each mark costs one record in
// its batch and one cache-line flush of the region (an msync of one page
// when the region is not on DAX), so at 50 ms the cost vanishes next to the
// commits themselves.
const sealInterval = 50 * time.Millisecond

// sealState is the commit mark bookkeeping; commitMu protects it.
type sealState struct {
	region *pmem.Region // where the seal lives; kept past a forced Close, which keeps the mapping
	mark   uint64       // last mark in a committed batch (durable or not)
	sealed uint64       // marks up to this need no sealing: stored in the seal, or the journal's at Open
	at     time.Time    // when the last mark was committed
}

// markDue reports whether the commit about to be made should carry a new
// mark; commitMu must be held. Only synced commits carry marks, so that the
// mark is durable once its commit settles (or, under NoSync, when the next
// journal sync returns). With group commit a mark is in the journal's
// memory before it is durable: it is sealed only by the settle that saw its
// batch durable (sealUpTo), never earlier.
func (s *Store) markDue(sync bool) bool {
	return sync && s.seal.region != nil && time.Since(s.seal.at) >= sealInterval
}

// marked notes that an unsynced commit carrying mark s.seal.mark+1 (under
// NoSync) returned nil. The mark is sealed by the next journal sync
// (syncFreedLocked) or a clean Close. commitMu must be held.
func (s *Store) marked() {
	s.seal.mark++
	s.seal.at = time.Now()
}

// sealUpTo stores mark m in the region's seal, unless a higher mark is
// sealed already. The caller must know that the batch carrying m is
// durable; then, the log being ordered, every batch before it is too.
// commitMu must be held.
func (s *Store) sealUpTo(m uint64) error {
	if s.seal.region == nil || m <= s.seal.sealed {
		return nil
	}
	if err := s.seal.region.SetSeal(m); err != nil {
		return fmt.Errorf("seal journal mark %d: %w", m, err)
	}
	s.seal.sealed = m
	return nil
}

// sealLocked stores the last committed mark in the region's seal. The
// caller must know that every commit so far is durable in the journal: a
// synced commit just returned, the journal was synced, or it was closed
// cleanly. commitMu must be held, or the store must be closing.
func (s *Store) sealLocked() error {
	return s.sealUpTo(s.seal.mark)
}

// checkSeal compares the journal's recovered mark with the region's seal at
// Open, before anything is written.
func checkSeal(region *pmem.Region, journalMark uint64, journalDir string) error {
	sealed := region.Seal()
	if sealed <= journalMark {
		return nil
	}
	return fmt.Errorf("daxstore: open: journal %s lost acknowledged operations: it ends at commit mark %d, "+
		"but region %s sealed mark %d, so the journal's write-ahead log was damaged or truncated after a crash; "+
		"nothing was changed; restore the store from a backup: %w",
		journalDir, journalMark, region.Path(), sealed, ErrCorrupt)
}
