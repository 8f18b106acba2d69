package dax

// Whole-key operations: Put (atomic replace), Get and Remove.

import (
	"context"
	"fmt"
	"io"
	"math"
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
// while pins still reference them (they keep the old value). PutReader
// does the same from an io.Reader, for values not held in memory.
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
	v := &pendingValue{s: s}
	defer v.discard()
	if err := v.reserve(s.blocksFor(int64(len(value)))); err != nil {
		return nil, err
	}
	if err := v.write(value); err != nil {
		return nil, err
	}
	return s.swapIn(key, v, policy)
}

// putChunk is how many bytes of input PutReader copies at a time: the
// memory it needs, whatever the size of the value.
const putChunk = 1 << 20

// PutReader atomically replaces the value of key with the bytes read from
// r, as PutWith does with a slice, without holding the value in memory: it
// reads r in chunks of at most 1 MiB and copies each straight into new
// blocks, zeroed and flushed as Put does, and then commits them in the
// same single journal batch that swaps the extent map. After a crash the
// key holds the old or the new value, never a mix.
//
// size, when not negative, is the exact length of the value. PutReader then
// reserves every block before it reads anything, so a value the region
// cannot hold fails with ErrNoSpace without consuming r; it fails with
// io.ErrUnexpectedEOF if r ends early, and reads nothing past size. With a
// negative size the length is whatever r holds: blocks are reserved chunk by
// chunk as input arrives, and a value too large fails with ErrNoSpace once
// the region runs out, after that much of r was read. Either way, on any
// error (from r, ctx, or for space) every reserved block goes back to free
// space and the old value is untouched.
//
// While it reads r the put is an operation in flight: Close and Check wait
// for it, so a reader that stalls stalls them. ctx is checked between
// chunks; cancel it to give up.
func (s *Store) PutReader(ctx context.Context, key string, r io.Reader, size int64, bo BreakOptions) error {
	if err := validKey(key); err != nil {
		return err
	}
	if size >= 0 {
		if err := checkRange(0, size); err != nil {
			return fmt.Errorf("daxstore: put %q: %w", key, err)
		}
	}
	if err := s.putReader(ctx, key, r, size, s.policy(bo)); err != nil {
		return fmt.Errorf("daxstore: put %q: %w", key, err)
	}
	return nil
}

func (s *Store) putReader(ctx context.Context, key string, r io.Reader, size int64, policy BreakPolicy) error {
	if err := s.begin(true); err != nil {
		return err
	}
	ended := false
	end := func() {
		if !ended {
			ended = true
			s.end()
		}
	}
	defer end()
	v := &pendingValue{s: s}
	defer v.discard()
	if err := v.fill(ctx, r, size); err != nil {
		return err
	}
	// The swap is Put's; the operation ends with it, before runBreak calls
	// OnBreak callbacks or waits for released blocks, as Put's does.
	swapped := false
	return s.runBreak(ctx, policy, func() (*breakResult, error) {
		if swapped {
			// A swap never needs space, so runBreak has no reason to
			// retry it; and v is gone once it ran.
			return nil, fmt.Errorf("put retried after its value was discarded: %w", ErrFailed)
		}
		swapped = true
		defer end()
		defer v.discard()
		return s.swapIn(key, v, policy)
	})
}

// fill reads the value from r into v: size bytes exactly, or all of r if
// size is negative.
func (v *pendingValue) fill(ctx context.Context, r io.Reader, size int64) error {
	s := v.s
	reserve := func(n uint64) error {
		return s.retrySpace(ctx, func() error { return v.reserve(n) })
	}
	chunk := int64(putChunk) // a multiple of every block size
	if size >= 0 {
		// Space first: a value that cannot fit fails before r is read.
		if err := reserve(s.blocksFor(size)); err != nil {
			return err
		}
		chunk = min(chunk, int64(s.blocksFor(size))*s.bs)
	}
	buf := make([]byte, chunk)
	for size < 0 || v.size < size {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := buf
		if size >= 0 {
			p = buf[:min(int64(len(buf)), size-v.size)]
		}
		n, rerr := io.ReadFull(r, p)
		if n > 0 {
			if int64(n) > MaxFileSize-v.size {
				return fmt.Errorf("value longer than %d bytes: %w", int64(MaxFileSize), ErrInvalidRange)
			}
			if size < 0 {
				if err := reserve(s.blocksFor(int64(n))); err != nil {
					return fmt.Errorf("value longer than %d bytes: %w", v.size+int64(n), err)
				}
			}
			if err := v.write(p[:n]); err != nil {
				return err
			}
		}
		switch {
		case rerr == nil:
		case size < 0 && (rerr == io.EOF || rerr == io.ErrUnexpectedEOF):
			return nil
		case rerr == io.EOF:
			return fmt.Errorf("read value: %d of %d bytes: %w", v.size, size, io.ErrUnexpectedEOF)
		default:
			return fmt.Errorf("read value: %w", rerr)
		}
	}
	return nil
}

// blocksFor returns the number of blocks that hold n bytes.
func (s *Store) blocksFor(n int64) uint64 { return uint64((n + s.bs - 1) / s.bs) }

// pendingValue is a value being written into reserved blocks for an atomic
// replace: nothing refers to the blocks until swapIn commits them, so a
// crash or an error before then leaves the old value as it was.
type pendingValue struct {
	s         *Store
	size      int64
	used      []pmem.Extent // reserved blocks that hold the value so far
	spare     []pmem.Extent // reserved blocks not used yet
	fresh     []mapping     // the value's extent map, in file order
	committed bool          // swapIn took the blocks: discard leaves them
}

// reserve takes n more blocks from free space, after the ones already
// taken so the value stays contiguous where it can.
func (v *pendingValue) reserve(n uint64) error {
	if n == 0 {
		return nil
	}
	var goal pmem.Block
	if len(v.used) > 0 {
		goal = v.used[len(v.used)-1].End()
	}
	got, err := v.s.reserve(n, goal)
	if err != nil {
		return err
	}
	v.spare = append(v.spare, got...)
	return nil
}

// write appends p to the value: it copies p into spare blocks and zeroes
// and flushes them, as WriteAt does with new blocks. The spare blocks must
// cover p, and every write but the last must be whole blocks.
func (v *pendingValue) write(p []byte) error {
	s := v.s
	nb := s.blocksFor(int64(len(p)))
	off := v.size
	fb := uint64(off / s.bs)
	for end := fb + nb; fb < end; {
		e := carve(&v.spare, end-fb)
		if err := s.writeBlocks(e, fb, p, off, true); err != nil {
			v.spare = append(v.spare, e)
			return s.faulted(err)
		}
		v.used = append(v.used, e)
		v.fresh = append(v.fresh, mapping{fileBlock: fb, start: e.Start, n: e.Len})
		fb += e.Len
	}
	v.size += int64(len(p))
	return nil
}

// discard gives back every block of a value that was not committed, and
// the spare blocks of one that was.
func (v *pendingValue) discard() {
	if !v.committed {
		v.s.unreserve(v.used)
		v.used = nil
	}
	v.s.unreserve(v.spare)
	v.spare = nil
}

// swapIn makes v the value of key in one journal batch, creating the key
// if needed, and detaches or frees the old value's blocks by policy. It is
// the commit of every atomic replace (Put and PutReader).
func (s *Store) swapIn(key string, v *pendingValue, policy BreakPolicy) (*breakResult, error) {
	s.region.Drain()
	s.unreserve(v.spare) // a value that ended early leaves spare blocks
	v.spare = nil
	s.nsMu.Lock()
	defer s.nsMu.Unlock()
	in := s.names[key]
	if in == nil {
		in = newInode(s.nextIno, key, v.size, time.Now())
		t := s.newTxn()
		t.claimed = v.used
		s.recordNewInode(t, in)
		for _, m := range v.fresh {
			t.mapOps(in.ino, in.extents.insert(m))
		}
		if err := s.commit(t); err != nil {
			return nil, err
		}
		v.committed = true
		s.addInode(in)
		return nil, nil
	}
	in.lockAll()
	defer in.unlockAll()
	b := &breaker{s: s, in: in, key: key, reason: busyextent.ReasonOverwrite, broken: map[uint64]brokenPin{}}
	res, err := b.run(policy,
		func(*breaker) (uint64, uint64, uint64, error) { return 0, math.MaxUint64, 0, nil },
		func(b *breaker) error {
			b.t.claimed = append(b.t.claimed, v.used...)
			if err := b.drop(0, math.MaxUint64); err != nil {
				return err
			}
			for _, m := range v.fresh {
				b.t.mapOps(in.ino, in.extents.insert(m))
			}
			in.size = v.size
			v.committed = true // from here on a failure fails the store
			return nil
		})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// MaxGetSize is the largest value Get returns, in bytes (1 GiB). Get
// allocates the whole value at once, and a file may be a sparse 64 TiB:
// rather than let one call exhaust the process's memory, Get refuses larger
// values with ErrTooLarge before it allocates anything. Read those through
// Open and File.ReadAt in bounded chunks, skipping holes with
// File.SeekData and File.SeekHole. The limit trades one large allocation
// that a caller plainly asked for (up to 1 GiB) against never taking the
// process down for a size a caller may not know.
const MaxGetSize = 1 << 30

// Get returns a copy of the value of key. A value larger than MaxGetSize
// fails with ErrTooLarge and allocates nothing.
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
	if size > MaxGetSize {
		in.mapMu.Unlock()
		return nil, fmt.Errorf("value is %d bytes, more than MaxGetSize (%d); read it with Open and ReadAt: %w",
			size, int64(MaxGetSize), ErrTooLarge)
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
	buf, err := pmem.Append(nil, s.region.Bytes(run)[:size])
	if rerr := s.refs.Release(run); err == nil {
		err = rerr
	}
	if err != nil {
		return nil, s.faulted(err)
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
	b := &breaker{s: s, in: in, key: key, reason: busyextent.ReasonRemove, broken: map[uint64]brokenPin{}}
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
