package pageref

// This file holds the hashed wait queues that let a goroutine sleep until a
// range has no references, without a lock on the Release fast path.

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/daxstore/daxstore/pmem"
)

const waitBuckets = 256

// bucket is one wait queue, shared by every chunk that hashes to it.
type bucket struct {
	// waiters counts goroutines registered on this bucket. Release reads it
	// after its decrement and takes mu only when it is not 0.
	waiters atomic.Int32

	mu sync.Mutex    // protects ch
	ch chan struct{} // closed to wake every registered waiter; nil until a waiter needs one
}

// bucketOf returns the wait queue of chunk ci (Fibonacci hashing, so that
// neighbouring chunks land in different buckets).
func (t *Table) bucketOf(ci uint64) *bucket {
	return &t.buckets[(ci*0x9e3779b97f4a7c15)>>(64-8)]
}

// register adds a waiter to the bucket and returns the channel that the next
// wake closes. It counts the waiter before it reads the channel; the caller
// must recheck the count it waits on after register returns.
func (k *bucket) register() <-chan struct{} {
	k.waiters.Add(1)
	k.mu.Lock()
	if k.ch == nil {
		k.ch = make(chan struct{})
	}
	ch := k.ch
	k.mu.Unlock()
	return ch
}

// unregister removes a waiter added by register.
func (k *bucket) unregister() { k.waiters.Add(-1) }

// wake wakes every goroutine waiting on the bucket of chunk ci. The caller
// has just taken a count of chunk ci to 0.
//
// No wakeup is lost. Go's atomics are sequentially consistent, so the
// waiter's steps (W1 waiters.Add, W2 read ch under mu, W3 load the count) and
// the releaser's (R1 the CAS that takes the count to 0, R2 waiters.Load,
// R3 close ch under mu) fall into one total order. If R1 precedes W3, the
// waiter sees 0 and does not sleep. Otherwise W1 < W3 < R1 < R2, so R2 sees
// the waiter and the releaser reaches R3; and R3 comes after W2, since
// R3 < W2 would put R1 before W3. So R3 closes the channel the waiter read at
// W2, or a wake between W2 and R3 already did. TestWaitIdleNoLostWakeup
// stresses it.
func (t *Table) wake(ci uint64) {
	k := t.bucketOf(ci)
	if k.waiters.Load() == 0 {
		return
	}
	k.mu.Lock()
	if k.ch != nil {
		close(k.ch)
		k.ch = nil // the next waiter makes a fresh channel
	}
	k.mu.Unlock()
}

// WaitIdle returns nil once every block of e has been seen with a count of 0
// at some instant after the call began. Each block is watched until it is
// seen idle, then left, so a block referenced again afterwards does not hold
// WaitIdle back; detached blocks cannot be referenced again, so for them it
// means all were released. It returns an error wrapping ctx.Err() if ctx ends
// first, and one wrapping ErrInvalidRange for an empty or out-of-range e.
//
// WaitIdle takes no table lock while it sleeps, and it returns promptly once
// the last Release has happened: a wakeup is never lost.
func (t *Table) WaitIdle(ctx context.Context, e pmem.Extent) error {
	if err := t.checkRange(e); err != nil {
		return fmt.Errorf("pageref: wait idle: %w", err)
	}
	t.waiting.Add(1)
	defer t.waiting.Add(-1)
	next := e
	for {
		b, busy := t.firstReferenced(next)
		if !busy {
			return nil
		}
		// Blocks before b have been seen idle; only the rest are watched.
		next = pmem.Extent{Start: b, Len: uint64(e.End() - b)}
		k := t.bucketOf(chunkOf(b))
		ch := k.register()
		if t.Count(b) == 0 {
			k.unregister()
			continue
		}
		select {
		case <-ch:
			k.unregister()
		case <-ctx.Done():
			k.unregister()
			if _, busy := t.firstReferenced(next); !busy {
				return nil // went idle as ctx ended: report the success
			}
			return fmt.Errorf("pageref: wait for %v to go idle: block %d still has %d references: %w",
				e, b, t.Count(b), ctx.Err())
		}
	}
}

// Waiters returns the number of goroutines currently inside WaitIdle.
func (t *Table) Waiters() int { return int(t.waiting.Load()) }

// firstReferenced returns the first block of e whose count is above 0.
func (t *Table) firstReferenced(e pmem.Extent) (pmem.Block, bool) {
	return t.firstWith(e, countMask)
}
