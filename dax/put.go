package dax

// Whole-key operations: Put (atomic replace), Get and Remove.

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"time"

	"github.com/daxstore/daxstore/busyextent"
	"github.com/daxstore/daxstore/pmem"
)

// Put stores value under key with the default break policy. See PutWith.
func (s *Store) Put(key string, value []byte) error {
	return s.PutWith(context.Background(), key, value, BreakOptions{})
}

// PutWith atomically replaces the value of key, creating the key if needed.
// The value is copied into new blocks and flushed first; one journal batch
// then swaps the file's extent map. After a crash the key holds the old or
// the new value, never a mix. The old blocks are freed, or detached to busy
// while pins still reference them (they keep the old value).
func (s *Store) PutWith(ctx context.Context, key string, value []byte, bo BreakOptions) error {
	if err := validKey(key); err != nil {
		return err
	}
	if err := checkRange(0, int64(len(value))); err != nil {
		return fmt.Errorf("daxstore: put %q: %w", key, err)
	}
	policy := s.policy(bo)
	err := s.runBreak(ctx, policy, func() (*breakResult, error) { return s.put(key, value, policy) })
	if err != nil {
		return fmt.Errorf("daxstore: put %q: %w", key, err)
	}
	return nil
}

func (s *Store) put(key string, value []byte, policy BreakPolicy) (*breakResult, error) {
	if err := s.begin(true); err != nil {
		return nil, err
	}
	defer s.end()
	// Fill new blocks before taking any lock of the key: readers and pins
	// of the old value go on meanwhile.
	nblocks := uint64((int64(len(value)) + s.bs - 1) / s.bs)
	var reserved []pmem.Extent
	if nblocks > 0 {
		var err error
		if reserved, err = s.reserve(nblocks, 0); err != nil {
			return nil, err
		}
	}
	committed := false
	defer func() {
		if !committed {
			s.unreserve(reserved)
		}
	}()
	var fresh []mapping
	left := slices.Clone(reserved) // carve edits its slice's elements
	for fb := uint64(0); fb < nblocks; {
		e := carve(&left, nblocks-fb)
		if err := s.writeBlocks(e, fb, value, 0, true); err != nil {
			return nil, err
		}
		fresh = append(fresh, mapping{fileBlock: fb, start: e.Start, n: e.Len})
		fb += e.Len
	}
	s.region.Drain()

	s.nsMu.Lock()
	defer s.nsMu.Unlock()
	in := s.names[key]
	if in == nil {
		in = newInode(s.nextIno, key, int64(len(value)), time.Now())
		t := s.newTxn()
		t.claimed = reserved
		s.recordNewInode(t, in)
		for _, m := range fresh {
			t.mapOps(in.ino, in.extents.insert(m))
		}
		if err := s.commit(t); err != nil {
			return nil, err
		}
		committed = true
		s.addInode(in)
		return nil, nil
	}
	in.lockAll()
	defer in.unlockAll()
	b := &breaker{s: s, in: in, key: key, reason: busyextent.ReasonOverwrite, broken: map[*Pin]bool{}}
	res, err := b.run(policy,
		func(*breaker) (uint64, uint64, uint64, error) { return 0, math.MaxUint64, 0, nil },
		func(b *breaker) error {
			b.t.claimed = append(b.t.claimed, reserved...)
			if err := b.drop(0, math.MaxUint64); err != nil {
				return err
			}
			for _, m := range fresh {
				b.t.mapOps(in.ino, in.extents.insert(m))
			}
			in.size = int64(len(value))
			committed = true // from here on a failure fails the store
			return nil
		})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// Get returns a copy of the value of key.
func (s *Store) Get(key string) ([]byte, error) {
	if err := validKey(key); err != nil {
		return nil, err
	}
	if err := s.begin(false); err != nil {
		return nil, fmt.Errorf("daxstore: get %q: %w", key, err)
	}
	defer s.end()
	s.nsMu.RLock()
	in := s.names[key]
	s.nsMu.RUnlock()
	if in == nil {
		return nil, fmt.Errorf("daxstore: get %q: %w", key, ErrNotFound)
	}
	// Hold the IO lock shared across size and read: a Put or truncate
	// cannot slip in between, so the copy is one consistent value.
	in.ioMu.RLock()
	defer in.ioMu.RUnlock()
	f := File{s: s, in: in}
	buf, err := f.readAll()
	if err != nil {
		return nil, fmt.Errorf("daxstore: get %q: %w", key, err)
	}
	return buf, nil
}

// readAll returns a copy of the whole file. The IO lock must be held
// shared. A file that is one written extent, the common case, is copied
// straight into a new slice that is not zeroed first.
func (f *File) readAll() ([]byte, error) {
	s, in := f.s, f.in
	in.mapMu.Lock()
	if err := f.live(); err != nil {
		in.mapMu.Unlock()
		return nil, err
	}
	size := in.size
	if size == 0 {
		in.mapMu.Unlock()
		return []byte{}, nil
	}
	fb, fe := s.blockSpan(0, size)
	m, ok := in.extents.at(fb)
	if !ok || m.unwritten || m.fileEnd() < fe {
		in.mapMu.Unlock()
		buf := make([]byte, size)
		n, err := f.readLocked(buf, 0)
		if err != nil && err != io.EOF {
			return nil, err
		}
		return buf[:n], nil
	}
	run := pmem.Extent{Start: m.start + pmem.Block(fb-m.fileBlock), Len: fe - fb}
	err := s.refs.Acquire(run)
	in.mapMu.Unlock()
	if err != nil {
		return nil, err
	}
	// append to a nil slice allocates without clearing what it copies.
	buf := append([]byte(nil), s.region.Bytes(run)[:size]...)
	if err := s.refs.Release(run); err != nil {
		return nil, err
	}
	return buf, nil
}

// Remove deletes key with the default break policy. See RemoveWith.
func (s *Store) Remove(key string) error {
	return s.RemoveWith(context.Background(), key, BreakOptions{})
}

// RemoveWith deletes key and frees its blocks, detaching those still pinned
// (pins keep their bytes). Open Files of the key get ErrNotFound afterwards.
func (s *Store) RemoveWith(ctx context.Context, key string, bo BreakOptions) error {
	if err := validKey(key); err != nil {
		return err
	}
	policy := s.policy(bo)
	err := s.runBreak(ctx, policy, func() (*breakResult, error) { return s.remove(key, policy) })
	if err != nil {
		return fmt.Errorf("daxstore: remove %q: %w", key, err)
	}
	return nil
}

func (s *Store) remove(key string, policy BreakPolicy) (*breakResult, error) {
	if err := s.begin(true); err != nil {
		return nil, err
	}
	defer s.end()
	s.nsMu.Lock()
	defer s.nsMu.Unlock()
	in := s.names[key]
	if in == nil {
		return nil, ErrNotFound
	}
	in.lockAll()
	defer in.unlockAll()
	b := &breaker{s: s, in: in, key: key, reason: busyextent.ReasonRemove, broken: map[*Pin]bool{}}
	res, err := b.run(policy,
		func(*breaker) (uint64, uint64, uint64, error) { return 0, math.MaxUint64, 0, nil },
		func(b *breaker) error {
			if err := b.drop(0, math.MaxUint64); err != nil {
				return err
			}
			b.t.b.DeleteExtents(in.ino)
			b.t.b.DeleteName(key)
			b.t.b.DeleteInode(in.ino)
			in.removed = true
			return nil
		})
	if err != nil {
		in.removed = false
		return nil, err
	}
	delete(s.names, key)
	delete(s.inodes, in.ino)
	return res, nil
}
