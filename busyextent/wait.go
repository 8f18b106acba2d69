package busyextent

// This file exists so that whoever needs space or needs blocks to come back
// (an allocation out of space, a truncate under the Wait policy) can sleep
// until the busy set shrinks, with a context and without lost wakeups.

import (
	"context"
	"fmt"

	"github.com/daxstore/daxstore/pmem"
)

// Generation returns the busy generation: a counter bumped by every Remove
// and every Bump, that is, every time space may have come back.
func (s *Set) Generation() uint64 { return s.gen.Load() }

// Bump advances the generation and wakes every Wait and WaitReleased. Callers
// use it when space came back by another route than Remove, for example a
// file removed with no pinned blocks.
func (s *Set) Bump() {
	s.mu.Lock()
	s.bumpLocked()
	s.mu.Unlock()
}

// bumpLocked advances the generation and wakes every waiter. s.mu must be
// held: a waiter reads the generation and takes the wake channel under the
// same lock, so a bump either happens before that (the waiter sees the new
// generation) or after it (the waiter's channel is closed).
// TestWaitLosesNoWakeupInRounds and TestWaitLosesNoWakeupUnderStorm prove it.
func (s *Set) bumpLocked() {
	s.gen.Add(1)
	if s.wake != nil {
		close(s.wake)
		s.wake = nil
	}
}

// wakeLocked returns the channel the next bump closes. s.mu must be held.
func (s *Set) wakeLocked() <-chan struct{} {
	if s.wake == nil {
		s.wake = make(chan struct{})
	}
	return s.wake
}

// Wait blocks until the generation differs from gen and returns the new
// generation. No wakeup is lost: a Remove or Bump that happens after the
// caller read gen always ends the wait. If ctx ends first, Wait returns gen
// and an error wrapping ctx.Err(); a generation that has changed by then wins
// over the ended context.
func (s *Set) Wait(ctx context.Context, gen uint64) (uint64, error) {
	s.waiters.Add(1)
	defer s.waiters.Add(-1)
	for {
		s.mu.Lock()
		cur := s.gen.Load()
		if cur != gen {
			s.mu.Unlock()
			return cur, nil
		}
		wake := s.wakeLocked()
		s.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			if cur := s.gen.Load(); cur != gen {
				return cur, nil
			}
			return gen, fmt.Errorf("busyextent: wait for generation after %d: %w", gen, ctx.Err())
		}
	}
}

// NewTicket returns a ticket that no earlier call on s returned, never 0. An
// operation that detaches blocks stamps its busy extents with one (Extent.
// Ticket), so that it can wait for its own blocks with WaitReleased.
func (s *Set) NewTicket() uint64 { return s.tickets.Add(1) }

// WaitReleased blocks until no busy extent that overlaps one of exts carries
// ticket, or, for ticket 0, until no block of exts is busy at all. Waiting
// on the ticket and not on block numbers matters: once the blocks are
// released they may be allocated, pinned and detached again by another
// operation before the waiter looks, and that operation's pin must not
// keep this waiter asleep (TestWaitReleasedIgnoresLaterOwners). Pieces of
// a trimmed or split extent keep its ticket.
//
// It returns at once when nothing matches, an error wrapping ErrInvalid for
// an extent that runs past the last block number, and an error wrapping
// ctx.Err() if ctx ends first. No wakeup is lost: a Remove that releases
// the last matching block always ends the wait.
func (s *Set) WaitReleased(ctx context.Context, ticket uint64, exts ...pmem.Extent) error {
	for _, e := range exts {
		if e.Empty() {
			continue
		}
		if err := validate(e); err != nil {
			return fmt.Errorf("busyextent: wait for %v: %w", e, err)
		}
	}
	s.waiters.Add(1)
	defer s.waiters.Add(-1)
	for {
		s.mu.Lock()
		e, held := s.heldLocked(ticket, exts)
		if !held {
			s.mu.Unlock()
			return nil
		}
		wake := s.wakeLocked()
		s.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return fmt.Errorf("busyextent: wait for %v to be released: %w", e, ctx.Err())
		}
	}
}

// heldLocked returns the first extent of exts that still overlaps a busy
// extent carrying ticket (any, for 0). s.mu must be held.
func (s *Set) heldLocked(ticket uint64, exts []pmem.Extent) (pmem.Extent, bool) {
	for _, e := range exts {
		if e.Empty() {
			continue
		}
		held := false
		s.visit(e, func(x item) bool {
			held = ticket == 0 || x.rec.Ticket == ticket
			return !held
		})
		if held {
			return e, true
		}
	}
	return pmem.Extent{}, false
}

// Waiters returns the number of goroutines inside Wait or WaitReleased now.
func (s *Set) Waiters() int { return int(s.waiters.Load()) }
