package dax

// Whole-key operations: Put (atomic replace), Get and Remove.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"runtime/debug"
	"slices"
	"time"
	"unsafe"

	"github.com/daxstore/daxstore/alloc"
	"github.com/daxstore/daxstore/busyextent"
	"github.com/daxstore/daxstore/pmem"
)

// Put stores value under key with the default break policy. See PutWith.
func (s *Store) Put(key string, value []byte) error {
	return s.PutWith(context.Background(), key, value, BreakOptions{})
}

// PutWith atomically replaces the value of key, creating the key if needed.
// The value is copied into new blocks and flushed first; one journal batch
// then swaps the file's extent map. A value of at most Options.InlineLimit
// bytes takes no block: it is stored in the file's journal record, and
// that one record is the whole commit. After a crash the key holds the old
// or the new value, never a mix. The old blocks are freed, or detached to
// busy while pins still reference them (they keep the old value).
// PutReader does the same from an io.Reader, for values not held in
// memory.
func (s *Store) PutWith(ctx context.Context, key string, value []byte, bo BreakOptions) (err error) {
	defer func() { s.met.wroteBytes(opPut, len(value), err) }()
	if err := validKey(key); err != nil {
		return err
	}
	if err := checkRange(0, int64(len(value))); err != nil {
		return fmt.Errorf("daxstore: put %q: %w", key, err)
	}
	policy := s.policy(bo)
	var ch FileChange // what the put changed, for watchers
	err = s.runBreak(ctx, policy, func() (*breakResult, error) {
		res, err := s.put(key, value, policy, &ch)
		s.notify(ch) // after put's end: outside every lock
		return res, err
	})
	if err != nil {
		return fmt.Errorf("daxstore: put %q: %w", key, err)
	}
	return nil
}

func (s *Store) put(key string, value []byte, policy BreakPolicy, ch *FileChange) (*breakResult, error) {
	if err := s.begin(true); err != nil {
		return nil, err
	}
	defer s.end()
	if int64(len(value)) <= s.inlineLimit() {
		// Copied: the caller may reuse value once Put returns.
		return s.swapIn(key, nil, bytes.Clone(value), policy, ch)
	}
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
	return s.swapIn(key, v, nil, policy, ch)
}

// inlineLimit returns the largest value stored inline; negative when
// every value goes into blocks.
func (s *Store) inlineLimit() int64 { return int64(s.opts.InlineLimit) }

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
func (s *Store) PutReader(ctx context.Context, key string, r io.Reader, size int64, bo BreakOptions) (err error) {
	cr := &putCounter{r: r}
	defer func() { s.met.wroteBytes(opPut, int(cr.n), err) }()
	if err := validKey(key); err != nil {
		return err
	}
	if size >= 0 {
		if err := checkRange(0, size); err != nil {
			return fmt.Errorf("daxstore: put %q: %w", key, err)
		}
	}
	if err := s.putReader(ctx, key, cr, size, s.policy(bo)); err != nil {
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
	data, inline, r, err := s.readInline(ctx, r, size)
	if err != nil {
		return err
	}
	var v *pendingValue
	if !inline {
		v = &pendingValue{s: s}
		defer v.discard()
		if err := v.fill(ctx, r, size); err != nil {
			return err
		}
	}
	// The swap is Put's; the operation ends with it, before runBreak calls
	// OnBreak callbacks or waits for released blocks, as Put's does.
	swapped := false
	var ch FileChange // what the put changed, for watchers
	return s.runBreak(ctx, policy, func() (*breakResult, error) {
		if swapped {
			// A swap never needs space, so runBreak has no reason to
			// retry it; and v is gone once it ran.
			return nil, fmt.Errorf("put retried after its value was discarded: %w", ErrFailed)
		}
		swapped = true
		defer func() { s.notify(ch) }() // after end: outside every lock
		defer end()
		if v != nil {
			defer v.discard()
		}
		return s.swapIn(key, v, data, policy, &ch)
	})
}

// readInline reads a value of at most Options.InlineLimit bytes from r
// whole, for an inline Put: when size says it is one, or, with a negative
// size, when r ends within the limit. Otherwise it returns inline false
// and a reader that yields all of r's bytes, those it read first
// included, for the block path.
func (s *Store) readInline(ctx context.Context, r io.Reader, size int64) (data []byte, inline bool, rest io.Reader, err error) {
	lim := s.inlineLimit()
	if lim < 0 || size > lim {
		return nil, false, r, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, false, nil, err
	}
	if size >= 0 {
		data = make([]byte, size)
		n, rerr := io.ReadFull(r, data)
		switch {
		case rerr == io.EOF || rerr == io.ErrUnexpectedEOF:
			return nil, false, nil, fmt.Errorf("read value: %d of %d bytes: %w", n, size, io.ErrUnexpectedEOF)
		case rerr != nil:
			return nil, false, nil, fmt.Errorf("read value: %w", rerr)
		}
		return data, true, nil, nil
	}
	buf := make([]byte, lim+1)
	n, rerr := io.ReadFull(r, buf)
	switch {
	case rerr == io.EOF || rerr == io.ErrUnexpectedEOF:
		return buf[:n:n], true, nil, nil
	case rerr != nil:
		return nil, false, nil, fmt.Errorf("read value: %w", rerr)
	}
	return nil, false, io.MultiReader(bytes.NewReader(buf), r), nil
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
// taken so the value stays contiguous where it can, and, for a large
// value, congruent with their file blocks (alloc.Allocator.AllocFor).
func (v *pendingValue) reserve(n uint64) error {
	if n == 0 {
		return nil
	}
	h := alloc.Hint{}
	if len(v.used) > 0 {
		h.Goal = v.used[len(v.used)-1].End()
	}
	// Every write but the last is whole blocks, and none follows it.
	h.FileBlock = uint64(v.size / v.s.bs)
	for _, e := range v.spare {
		h.FileBlock += e.Len
	}
	got, err := v.s.reserveFor(n, h)
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

// swapIn makes v, or with v nil the inline value data, the value of key
// in one journal batch, creating the key if needed, and detaches or frees
// the old value's blocks by policy. It is the commit of every atomic
// replace (Put and PutReader). The new value is visible once the batch is
// applied, under the locks; swapIn returns after it released them and the
// batch is durable.
func (s *Store) swapIn(key string, v *pendingValue, data []byte, policy BreakPolicy, ch *FileChange) (*breakResult, error) {
	res, err := s.swapInLocked(key, v, data, policy, ch)
	if v == nil && errors.Is(err, errWindowed) {
		// The key has follow windows, which map blocks: the small value
		// goes into blocks rather than inline.
		bv := &pendingValue{s: s}
		defer bv.discard()
		if err := bv.reserve(s.blocksFor(int64(len(data)))); err != nil {
			return nil, err
		}
		if err := bv.write(data); err != nil {
			return nil, err
		}
		res, err = s.swapInLocked(key, bv, nil, policy, ch)
	}
	if err != nil {
		return nil, err
	}
	if err := s.settle(res.durable); err != nil {
		return nil, err
	}
	return res, nil
}

// errWindowed tells swapIn that the key has follow windows, so an inline
// value must go into blocks instead: windows map blocks, and an inline
// file has none.
var errWindowed = errors.New("the file has follow windows")

// swapInLocked is swapIn under the namespace and the file's locks. It sets
// *ch to the change once applied.
func (s *Store) swapInLocked(key string, v *pendingValue, data []byte, policy BreakPolicy, ch *FileChange) (*breakResult, error) {
	size := int64(len(data))
	if v != nil {
		s.region.Drain()
		s.unreserve(v.spare) // a value that ended early leaves spare blocks
		v.spare = nil
		size = v.size
	}
	s.nsMu.Lock()
	defer s.nsMu.Unlock()
	in, err := s.acquireLocked(key)
	if err != nil {
		return nil, err
	}
	if in == nil {
		if err := s.refuseDirLocked(key); err != nil {
			return nil, err
		}
		in = newInode(s.nextIno, key, size, time.Now())
		t := s.newTxn()
		if v != nil {
			t.claimed = v.used
			for _, m := range v.fresh {
				t.mapOps(in, in.extents.insert(m))
			}
		} else {
			in.inline, in.data = true, data
		}
		s.recordNewInode(t, in)
		d, err := s.commit(t)
		if err != nil {
			return nil, err
		}
		if v != nil {
			v.committed = true
		}
		s.addInode(in)
		*ch = FileChange{Kind: ChangeCreate, Key: key, Ino: in.ino}
		return &breakResult{durable: d}, nil
	}
	defer s.release(in)
	in.lockAll()
	defer in.unlockAll()
	if v == nil && len(in.windows) > 0 {
		return nil, errWindowed
	}
	if v == nil && in.extents.len() == 0 {
		// An inline value over a file with no blocks (inline or empty):
		// nothing to detach, free or wait for, so no break: one record.
		t := s.newTxn()
		was, wasData, wasSize, wasTime := in.inline, in.data, in.size, in.mtime
		in.inline, in.data, in.size, in.mtime = true, data, size, time.Now()
		t.setInode(in)
		d, err := s.commit(t)
		if err != nil {
			in.inline, in.data, in.size, in.mtime = was, wasData, wasSize, wasTime
			return nil, err
		}
		*ch = FileChange{Kind: ChangeReplace, Key: key, Ino: in.ino}
		return &breakResult{durable: d}, nil
	}
	b := &breaker{s: s, in: in, key: key, reason: busyextent.ReasonOverwrite}
	res, err := b.run(policy,
		func(*breaker) (uint64, uint64, uint64, error) { return 0, math.MaxUint64, 0, nil },
		func(b *breaker) error {
			if v != nil {
				b.t.claimed = append(b.t.claimed, v.used...)
			}
			if err := b.drop(0, math.MaxUint64); err != nil {
				return err
			}
			in.size = size
			b.t.setInode(in) // an inline file maps nothing that drop would touch
			if v == nil {
				in.inline, in.data = true, data
				return nil
			}
			in.inline, in.data = false, nil
			for _, m := range v.fresh {
				b.t.mapOps(in, in.extents.insert(m))
			}
			v.committed = true // from here on a failure fails the store
			return nil
		})
	if err != nil {
		return nil, err
	}
	*ch = FileChange{Kind: ChangeReplace, Key: key, Ino: in.ino}
	return res, nil
}

// MaxGetSize is the largest value Get and AppendGet return, and View
// copies, in bytes (1 GiB). Get allocates the whole value at once, and a
// file may be a sparse 64 TiB: rather than let one call exhaust the
// process's memory, Get refuses larger values with ErrTooLarge before it
// allocates anything. Read those through Open and File.ReadAt in bounded
// chunks, skipping holes with File.SeekData and File.SeekHole. The limit
// trades one large allocation that a caller plainly asked for (up to 1 GiB)
// against never taking the process down for a size a caller may not know.
const MaxGetSize = 1 << 30

// Get returns a copy of the value of key in a new slice. A value larger
// than MaxGetSize fails with ErrTooLarge and allocates nothing. AppendGet
// reads into a caller's buffer instead, and View without a copy.
func (s *Store) Get(key string) ([]byte, error) {
	buf, err := s.AppendGet(nil, key)
	if err != nil {
		return nil, err
	}
	if buf == nil {
		buf = []byte{} // an empty value is a value, not a missing one
	}
	return buf, nil
}

// AppendGet appends the value of key to dst and returns the extended slice,
// as the built-in append does: when dst has room for the value it allocates
// nothing, so a caller that reuses one buffer reads at the cost of the copy
// out of the region. Holes and unwritten blocks read as zeros. On an error
// it returns dst unchanged in length (its spare capacity may have been
// written). A value larger than MaxGetSize fails with ErrTooLarge before
// anything is allocated.
func (s *Store) AppendGet(dst []byte, key string) (_ []byte, err error) {
	defer func() {
		if err != nil {
			s.met.readBytes(opGet, 0, err)
		}
	}()
	if err := validKey(key); err != nil {
		return dst, err
	}
	if err := s.begin(false); err != nil {
		return dst, fmt.Errorf("daxstore: get %q: %w", key, err)
	}
	defer s.end()
	in, err := s.acquire(key)
	if err != nil {
		return dst, fmt.Errorf("daxstore: get %q: %w", key, err)
	}
	if in == nil {
		return dst, fmt.Errorf("daxstore: get %q: %w", key, ErrNotFound)
	}
	defer s.release(in)
	// Hold the IO lock shared across size and read: a Put or truncate
	// cannot slip in between, so the copy is one consistent value.
	in.ioMu.RLock()
	defer in.ioMu.RUnlock()
	f := File{s: s, in: in}
	out, err := f.appendAll(dst)
	if err != nil {
		return dst, fmt.Errorf("daxstore: get %q: %w", key, err)
	}
	s.met.readBytes(opGet, len(out)-len(dst), nil)
	return out, nil
}

// View calls fn with the value of key, without copying it when the value
// is one run of written blocks (what Put writes whenever free space allows):
// fn then sees the region's mapping itself. Any other value (holes,
// unwritten blocks, several runs) is first copied into a new slice, holes
// and unwritten blocks as zeros, so fn always sees the whole value. View
// returns fn's error as is.
//
// The slice is valid only while fn runs: fn must not keep it, nor any
// slice of it, nor write to it. For fn's duration View holds a short-term
// reference on the blocks, so a Put, Remove or truncate of key that runs
// meanwhile does not wait for fn; it detaches those blocks, which keep the
// bytes fn sees, and they are freed when View returns: fn never sees bytes
// of another key (TestViewRacingPutAndRemoveSeesOnlyItsKeysBytes). fn runs
// inside a read of the store: it must not call methods of the store, as a
// Close or Check waiting for View would wait for fn forever. A fault on the
// region mapping while fn reads it (a region file truncated under the
// store) returns an error wrapping ErrCorrupt instead of killing the
// process. A value that must be copied and is larger than MaxGetSize fails
// with ErrTooLarge; fn is then not called.
func (s *Store) View(key string, fn func(value []byte) error) (err error) {
	defer func() { s.met.done(opGet, err) }()
	if err := validKey(key); err != nil {
		return err
	}
	if fn == nil {
		return fmt.Errorf("daxstore: view %q: nil function: %w", key, ErrInvalidRange)
	}
	if err := s.begin(false); err != nil {
		return fmt.Errorf("daxstore: view %q: %w", key, err)
	}
	defer s.end()
	in, err := s.acquire(key)
	if err != nil {
		return fmt.Errorf("daxstore: view %q: %w", key, err)
	}
	if in == nil {
		return fmt.Errorf("daxstore: view %q: %w", key, ErrNotFound)
	}
	defer s.release(in)
	value, run, held, err := s.holdValue(in)
	if err != nil {
		return fmt.Errorf("daxstore: view %q: %w", key, err)
	}
	err = callView(fn, value)
	if held {
		if rerr := s.refs.Release(run); rerr != nil && err == nil {
			err = fmt.Errorf("daxstore: view %q: %w", key, rerr)
		}
	}
	if errors.Is(err, pmem.ErrFault) {
		return fmt.Errorf("daxstore: view %q: %w", key, s.faulted(err))
	}
	return err
}

// holdValue returns the value of in for View: a slice of the mapping with a
// short-term reference held on run when held is true, else a copy.
func (s *Store) holdValue(in *inode) (value []byte, run pmem.Extent, held bool, err error) {
	in.ioMu.RLock()
	defer in.ioMu.RUnlock()
	f := File{s: s, in: in}
	in.mapMu.Lock()
	if err := f.live(); err != nil {
		in.mapMu.Unlock()
		return nil, run, false, err
	}
	size := in.size
	if size == 0 {
		in.mapMu.Unlock()
		return []byte{}, run, false, nil
	}
	if in.inline {
		value := in.data // never written in place: no copy needed
		in.mapMu.Unlock()
		return value[:size:size], run, false, nil
	}
	fb, fe := s.blockSpan(0, size)
	if m, ok := in.extents.at(fb); ok && !m.unwritten && m.fileEnd() >= fe {
		run = pmem.Extent{Start: m.start + pmem.Block(fb-m.fileBlock), Len: fe - fb}
		err := s.refs.Acquire(run)
		in.mapMu.Unlock()
		if err != nil {
			return nil, run, false, err
		}
		return s.region.Bytes(run)[:size:size], run, true, nil
	}
	in.mapMu.Unlock()
	value, err = f.appendAll(nil)
	return value, run, false, err
}

// callView runs fn over value with the runtime told to turn a fault on
// value's memory into a panic, and turns that panic into an error wrapping
// pmem.ErrFault. Any other panic, and a fault elsewhere, goes on: it is
// fn's, not the region's.
func callView(fn func([]byte) error, value []byte) (err error) {
	defer func(old bool) {
		debug.SetPanicOnFault(old)
		r := recover()
		if r == nil {
			return
		}
		if fault, ok := r.(interface {
			runtime.Error
			Addr() uintptr
		}); ok && len(value) > 0 {
			lo := uintptr(unsafe.Pointer(unsafe.SliceData(value)))
			if a := fault.Addr(); a >= lo && a-lo < uintptr(len(value)) {
				err = fmt.Errorf("%w at address %#x", pmem.ErrFault, a)
				return
			}
		}
		panic(r)
	}(debug.SetPanicOnFault(true))
	return fn(value)
}

// appendAll appends the whole file to dst. The IO lock must be held
// shared. A file that is one written extent, the common case, is copied
// straight from the mapping, and dst's new part is not zeroed first.
func (f *File) appendAll(dst []byte) ([]byte, error) {
	s, in := f.s, f.in
	in.mapMu.Lock()
	if err := f.live(); err != nil {
		in.mapMu.Unlock()
		return dst, err
	}
	size := in.size
	if size == 0 {
		in.mapMu.Unlock()
		return dst, nil
	}
	if in.inline {
		value := in.data // never written in place: copied without the lock
		in.mapMu.Unlock()
		return append(dst, value...), nil
	}
	if size > MaxGetSize {
		in.mapMu.Unlock()
		return dst, fmt.Errorf("value is %d bytes, more than MaxGetSize (%d); read it with Open and ReadAt: %w",
			size, int64(MaxGetSize), ErrTooLarge)
	}
	fb, fe := s.blockSpan(0, size)
	m, ok := in.extents.at(fb)
	if !ok || m.unwritten || m.fileEnd() < fe {
		in.mapMu.Unlock()
		n0 := len(dst)
		buf := slices.Grow(dst, int(size))[:n0+int(size)]
		n, _, err := f.readLocked(buf[n0:], 0, false)
		if err != nil && err != io.EOF {
			return dst, err
		}
		return buf[:n0+n], nil
	}
	run := pmem.Extent{Start: m.start + pmem.Block(fb-m.fileBlock), Len: fe - fb}
	err := s.refs.Acquire(run)
	in.mapMu.Unlock()
	if err != nil {
		return dst, err
	}
	// append does not clear what it copies into new capacity.
	buf, err := pmem.Append(dst, s.region.Bytes(run)[:size])
	if rerr := s.refs.Release(run); err == nil {
		err = rerr
	}
	if err != nil {
		return dst, s.faulted(err)
	}
	return buf, nil
}

// Remove deletes key with the default break policy. See RemoveWith.
func (s *Store) Remove(key string) error {
	return s.RemoveWith(context.Background(), key, BreakOptions{})
}

// RemoveWith deletes key and frees its blocks, detaching those still pinned
// (pins keep their bytes). Open Files of the key get ErrNotFound afterwards.
func (s *Store) RemoveWith(ctx context.Context, key string, bo BreakOptions) (err error) {
	defer func() { s.met.done(opRemove, err) }()
	if err := validKey(key); err != nil {
		return err
	}
	policy := s.policy(bo)
	var ch FileChange // what the removal changed, for watchers
	err = s.runBreak(ctx, policy, func() (*breakResult, error) {
		res, err := s.remove(key, policy, &ch)
		s.notify(ch) // after remove's end: outside every lock
		return res, err
	})
	if err != nil {
		return fmt.Errorf("daxstore: remove %q: %w", key, err)
	}
	return nil
}

func (s *Store) remove(key string, policy BreakPolicy, ch *FileChange) (*breakResult, error) {
	if err := s.begin(true); err != nil {
		return nil, err
	}
	defer s.end()
	res, err := s.removeLocked(key, policy, ch)
	if err != nil {
		return nil, err
	}
	if err := s.settle(res.durable); err != nil {
		return nil, err
	}
	return res, nil
}

// removeLocked is remove under the namespace and the file's locks. It sets
// *ch to the change once applied.
func (s *Store) removeLocked(key string, policy BreakPolicy, ch *FileChange) (*breakResult, error) {
	s.nsMu.Lock()
	defer s.nsMu.Unlock()
	in, err := s.acquireLocked(key)
	if err != nil {
		return nil, err
	}
	if in == nil {
		return nil, ErrNotFound
	}
	defer s.release(in)
	keep, err := s.leavingParentsLocked(key, false)
	if err != nil {
		return nil, err
	}
	in.lockAll()
	defer in.unlockAll()
	b := &breaker{s: s, in: in, key: key, reason: busyextent.ReasonRemove}
	res, err := b.run(policy,
		func(*breaker) (uint64, uint64, uint64, error) { return 0, math.MaxUint64, 0, nil },
		func(b *breaker) error {
			keepParents(b.t, keep)
			if err := b.drop(0, math.MaxUint64); err != nil {
				return err
			}
			b.t.touch(in) // removed: recordInodes deletes its records
			b.t.files--
			in.removed = true
			return nil
		})
	if err != nil {
		in.removed = false
		return nil, err
	}
	s.met.foldReads(in) // its extent-map lock is held (lockAll)
	delete(s.names, key)
	*ch = FileChange{Kind: ChangeRemove, Key: key, Ino: in.ino}
	return res, nil
}
