package dax

// The pin registry holds every outstanding pin, for inspection, for
// labelling the busy extents a break creates, and for Close. It is sharded,
// and each shard is a lock, an intrusive list of pin records and a stack of
// free ones, so that pins taken and dropped on different cores rarely share
// a lock or a cache line, and a pin allocates nothing once its shard has
// served as many pins at once before.

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/daxstore/daxstore/pmem"
)

// pinShards is the number of registry shards, a power of two.
const pinShards = 32

type pinRegistry struct {
	shards [pinShards]pinShard

	// waiters counts the Close calls waiting for the registry to empty;
	// only while it is above zero does the removal of a shard's last pin
	// take goneMu.
	waiters atomic.Int32
	goneMu  sync.Mutex    // protects gone
	gone    chan struct{} // closed when the registry is seen empty; made by emptied

	// limit, when not 0, replaces MaxPinsPerBlock: tests lower it to reach
	// the limit with a few pins. Set before the store is shared.
	limit uint32
}

// perBlock returns the most references a pin may take a block to.
func (r *pinRegistry) perBlock() uint32 {
	if r.limit != 0 {
		return r.limit
	}
	return MaxPinsPerBlock
}

// maxFreeRecords bounds the free records a shard keeps, so that a burst of
// pins does not hold its records forever.
const maxFreeRecords = 64

type pinShard struct {
	mu    sync.Mutex   // protects head, free, nfree, seq and the links of their records
	head  *pinRecord   // the shard's pins, linked through prev and next
	free  *pinRecord   // records serving no pin, linked through next
	nfree int          // records in free
	seq   uint64       // pins ever added to the shard
	count atomic.Int64 // pins in the shard; changed under mu, read without it
	_     [16]byte     // keeps shards on separate cache lines
}

// add registers a pin of pf in the shard that hint selects (pins of
// distinct blocks should give distinct hints), gives it an id unique in
// the store and returns its handle.
func (r *pinRegistry) add(s *Store, pf *pinFields, hint uint64) Pin {
	sh, rec := r.take(s, hint)
	rec.pinFields = *pf
	return r.link(sh, rec)
}

// pinOne takes a reference to every block of run and registers a pin of pf
// holding them, whose run and bytes (pf.n of them, skip bytes into the
// run) live in the record itself; ok is
// false, with nothing changed, if the store is closed or failed or the
// references cannot be taken. It does both under the lock of the shard
// that run selects, which is what keeps Close and Check (lockOut) from
// running while a pin is taken without quiesce: a pin is then either
// registered with its references or not started.
func (r *pinRegistry) pinOne(s *Store, pf *pinFields, run pmem.Extent, skip int64) (p Pin, ok bool) {
	i := pinHint(run.Start) % pinShards
	sh := &r.shards[i]
	sh.mu.Lock()
	if s.closed.Load() || s.hasFailed.Load() || s.refs.AcquireUpTo(run, r.perBlock()) != nil {
		sh.mu.Unlock()
		return Pin{}, false
	}
	rec := r.takeLocked(sh, s, i)
	rec.pinFields = *pf
	rec.run1[0], rec.bytes1[0] = run, s.region.Bytes(run)[skip:skip+pf.n:skip+pf.n]
	rec.runs, rec.bytes = rec.run1[:], rec.bytes1[:]
	return r.link(sh, rec), true
}

// Errors of unpin, which Pin.Unpin words.
var (
	errPinGone   = errors.New("pin already unpinned")
	errPinClosed = errors.New("pin invalidated by a forced close")
)

// unpin ends pin id, which rec serves: it drops the pin's references and
// unregisters it, both under the shard's lock (see pinOne), keeps rec for
// reuse, and wakes a Close that waits for the registry to empty when it
// was the last pin. It returns errPinGone if rec no longer serves pin id,
// and errPinClosed once for a pin that a forced Close invalidated. For a
// writable pin it sets *stored to the change its stores may have made,
// while rec still serves the pin.
func (r *pinRegistry) unpin(rec *pinRecord, id uint64, stored *FileChange) error {
	sh := &r.shards[rec.shard]
	sh.mu.Lock()
	if !rec.id.CompareAndSwap(id, 0) {
		sh.mu.Unlock()
		if rec.id.CompareAndSwap(id|closedMark, 0) {
			return errPinClosed
		}
		return errPinGone
	}
	if rec.writable {
		*stored = FileChange{Kind: ChangeData, Key: rec.key, Ino: rec.ino, Off: rec.off, Len: rec.n}
	}
	// Dropping the references before leaving the registry lets a Close
	// waiting for the last pin find every release already queued, and
	// commit it before it closes the journal.
	var err error
	if len(rec.runs) == 1 {
		err = rec.s.refs.Release(rec.runs[0])
	} else {
		err = rec.s.releaseRuns(rec.runs)
	}
	r.removeLocked(sh, rec)
	return err
}

// take locks the shard that hint selects and returns a record of it that
// serves no pin, reused or new. link unlocks the shard.
func (r *pinRegistry) take(s *Store, hint uint64) (*pinShard, *pinRecord) {
	i := hint % pinShards
	sh := &r.shards[i]
	sh.mu.Lock()
	return sh, r.takeLocked(sh, s, i)
}

// takeLocked returns a record of shard sh, number i, whose lock is held.
func (r *pinRegistry) takeLocked(sh *pinShard, s *Store, i uint64) *pinRecord {
	rec := sh.free
	if rec != nil {
		sh.free, rec.next = rec.next, nil
		sh.nfree--
	} else {
		rec = &pinRecord{s: s, shard: uint8(i)}
	}
	return rec
}

// link gives rec, filled in, a fresh id and registers it in sh, whose lock
// take left held, and releases that lock.
func (r *pinRegistry) link(sh *pinShard, rec *pinRecord) Pin {
	sh.seq++
	id := sh.seq*pinShards + uint64(rec.shard)
	rec.pinID = id
	rec.id.Store(id)
	rec.next = sh.head
	if sh.head != nil {
		sh.head.prev = rec
	}
	sh.head = rec
	sh.count.Add(1)
	sh.mu.Unlock()
	return Pin{r: rec, id: id, off: rec.off, n: rec.n, label: rec.label}
}

// remove unregisters rec, whose Unpin claimed it, keeps it for reuse, and
// wakes a Close that waits for the registry to empty when it was the last
// pin. A record that a forced Close drained while its Unpin ran is no
// longer linked: remove leaves the shard alone then, and the record goes
// with the closed store.
func (r *pinRegistry) remove(rec *pinRecord) {
	sh := &r.shards[rec.shard]
	sh.mu.Lock()
	r.removeLocked(sh, rec)
}

// removeLocked is remove with sh's lock held; it releases the lock.
func (r *pinRegistry) removeLocked(sh *pinShard, rec *pinRecord) {
	if rec.prev == nil && sh.head != rec {
		sh.mu.Unlock()
		return
	}
	r.unlinkLocked(sh, rec)
	if sh.nfree < maxFreeRecords {
		// Dropped references: what the record points at must not stay
		// reachable through a free record (labels, callbacks, region
		// slices of a multi-run pin).
		rec.pinFields = pinFields{}
		rec.bytes1[0] = nil
		rec.next = sh.free
		sh.free = rec
		sh.nfree++
	}
	left := sh.count.Add(-1)
	sh.mu.Unlock()
	// A waiter increments waiters before it reads the counts, and this
	// removal decremented a count before it reads waiters, so one of the
	// two sees the other: no wakeup is lost.
	if left == 0 && r.waiters.Load() > 0 {
		r.goneMu.Lock()
		if r.gone != nil && r.len() == 0 {
			close(r.gone)
			r.gone = nil
		}
		r.goneMu.Unlock()
	}
}

func (r *pinRegistry) unlinkLocked(sh *pinShard, p *pinRecord) {
	if p.prev != nil {
		p.prev.next = p.next
	} else {
		sh.head = p.next
	}
	if p.next != nil {
		p.next.prev = p.prev
	}
	p.prev, p.next = nil, nil
}

// len returns the number of registered pins: exact when no pin is being
// added or removed.
func (r *pinRegistry) len() int {
	var n int64
	for i := range r.shards {
		n += r.shards[i].count.Load()
	}
	return int(n)
}

// each calls fn with every registered pin, one shard locked at a time: a pin
// added or removed meanwhile may or may not be seen. fn must not add or
// remove pins, and must not keep the record: once its shard is unlocked it
// may serve another pin.
func (r *pinRegistry) each(fn func(p *pinRecord)) {
	for i := range r.shards {
		sh := &r.shards[i]
		if sh.count.Load() == 0 {
			continue
		}
		sh.mu.Lock()
		for p := sh.head; p != nil; p = p.next {
			fn(p)
		}
		sh.mu.Unlock()
	}
}

// drain unregisters every pin and calls fn with each, under its shard's
// lock: a forced Close invalidates them.
func (r *pinRegistry) drain(fn func(p *pinRecord)) int {
	n := 0
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		for sh.head != nil {
			p := sh.head
			r.unlinkLocked(sh, p)
			sh.count.Add(-1)
			fn(p)
			n++
		}
		sh.mu.Unlock()
	}
	return n
}

// emptied returns a channel that is closed once the registry is seen empty
// after the call, and done, which the caller must call when it stops
// waiting. Check len after emptied: if the registry emptied before, the
// channel may stay open.
func (r *pinRegistry) emptied() (gone <-chan struct{}, done func()) {
	r.goneMu.Lock()
	r.waiters.Add(1)
	if r.gone == nil {
		r.gone = make(chan struct{})
	}
	gone = r.gone
	r.goneMu.Unlock()
	return gone, func() { r.waiters.Add(-1) }
}

// lockAll takes every shard's lock, in order: no pin is then being taken
// without quiesce or being unpinned (see pinOne and unpin). While they are
// held, only eachLocked may walk the pins.
func (r *pinRegistry) lockAll() {
	for i := range r.shards {
		r.shards[i].mu.Lock()
	}
}

func (r *pinRegistry) unlockAll() {
	for i := range r.shards {
		r.shards[i].mu.Unlock()
	}
}

// eachLocked is each for a caller that holds every shard's lock.
func (r *pinRegistry) eachLocked(fn func(p *pinRecord)) {
	for i := range r.shards {
		for p := r.shards[i].head; p != nil; p = p.next {
			fn(p)
		}
	}
}

// pinHint spreads pins over the registry shards by the region block they
// start at: pins of distinct blocks usually land in different
// shards, pins of one block in the same one.
func pinHint(start pmem.Block) uint64 {
	return uint64(start) * 0x9E3779B97F4A7C15 >> 59
}
