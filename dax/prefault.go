package dax

// Prefaulting: the first store into a page of a fresh mapping costs a page
// fault of 1.5-3 µs, ten to twenty times the copy of 4 KiB itself. The
// store populates the page tables of the region one window at a time, just
// ahead of where allocation is working, and never the whole region at once:
// Open of a huge, mostly empty region stays fast and its page tables small.
//
// Populating a page writable allocates its file space, so a window is
// populated only once its space is reserved (pmem.Region.Reserve, see
// regionspace.go). The background goroutine reserves, best effort, the
// chunk of the window after the one allocation reached and the chunk after
// that: allocation that works its way through the region finds its space
// allocated a chunk ahead and does not wait for a fallocate, and the
// region's file takes at most two chunks more than the store handed out.

import (
	"sync/atomic"

	"github.com/daxstore/daxstore/pmem"
)

// prefaultWindow is how many bytes of the region one prefault covers, at
// most: a window never spans two chunks of file space
// (pmem.Region.SpaceChunk), so it is either reserved as a whole or not.
const prefaultWindow = 4 << 20

type prefaulter struct {
	region       *pmem.Region
	windowBlocks uint64
	chunkWindows uint64          // windows per chunk of file space
	done         []atomic.Uint64 // one bit per window: page tables populated
	queue        chan uint64     // windows to populate in the background
	stop         chan struct{}
	stopped      chan struct{}
}

func newPrefaulter(r *pmem.Region) *prefaulter {
	wb := max(1, uint64(min(prefaultWindow, r.SpaceChunk()))/uint64(r.BlockSize()))
	windows := (r.BlockCount() + wb - 1) / wb
	p := &prefaulter{
		region: r, windowBlocks: wb,
		chunkWindows: max(1, uint64(r.SpaceChunk())/(wb*uint64(r.BlockSize()))),
		done:         make([]atomic.Uint64, (windows+63)/64),
		queue:        make(chan uint64, 64),
		stop:         make(chan struct{}),
		stopped:      make(chan struct{}),
	}
	go p.run()
	return p
}

// claim marks window w as done and reports whether this call did so.
func (p *prefaulter) claim(w uint64) bool {
	if w/64 >= uint64(len(p.done)) {
		return false
	}
	word, bit := &p.done[w/64], uint64(1)<<(w%64)
	for {
		old := word.Load()
		if old&bit != 0 {
			return false
		}
		if word.CompareAndSwap(old, old|bit) {
			return true
		}
	}
}

// unclaim undoes claim of window w, whose space was not reserved, so a
// later touch populates it once it is.
func (p *prefaulter) unclaim(w uint64) {
	p.done[w/64].And(^(uint64(1) << (w % 64)))
}

// window returns the data blocks of window w; Len is 0 past the region.
func (p *prefaulter) window(w uint64) pmem.Extent {
	start := w * p.windowBlocks
	end := min(start+p.windowBlocks, p.region.BlockCount())
	start = max(start, 1) // block 0 is the superblock
	if start >= end {
		return pmem.Extent{}
	}
	return pmem.Extent{Start: pmem.Block(start), Len: end - start}
}

// populate prefaults window w, which the caller claimed, if its space is
// reserved; otherwise it gives the claim back.
func (p *prefaulter) populate(w uint64) {
	e := p.window(w)
	if e.Len == 0 {
		return
	}
	if !p.region.Reserved(e) {
		p.unclaim(w)
		return
	}
	p.region.Prefault(e)
}

// touch is called for blocks about to be written, whose space is reserved:
// it populates their windows now if nobody has, and queues the following
// window so the next allocation finds it reserved and ready.
func (p *prefaulter) touch(e pmem.Extent) {
	first, last := uint64(e.Start)/p.windowBlocks, uint64(e.End()-1)/p.windowBlocks
	for w := first; w <= last; w++ {
		if p.claim(w) {
			p.populate(w)
		}
	}
	select {
	case p.queue <- last + 1:
	default: // the background goroutine is busy: it will catch up later
	}
}

func (p *prefaulter) run() {
	defer close(p.stopped)
	for {
		select {
		case w := <-p.queue:
			for _, ahead := range []uint64{w, w + p.chunkWindows} {
				if e := p.window(ahead); e.Len > 0 && !p.region.Reserved(e) {
					// Best effort: if the filesystem is full, the
					// allocation that reaches this window fails there
					// with ErrNoSpace.
					_ = p.region.Reserve(e)
				}
			}
			if p.claim(w) {
				p.populate(w)
			}
		case <-p.stop:
			return
		}
	}
}

func (p *prefaulter) close() {
	if p == nil {
		return
	}
	close(p.stop)
	<-p.stopped
}
