package dax

// The pin registry holds every outstanding pin, for inspection, for
// labelling the busy extents a break creates, and for Close. It is sharded,
// and each shard is a lock and an intrusive list, so that pins taken and
// dropped on different cores rarely share a lock or a cache line, and
// registering a pin allocates nothing.

import (
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

type pinShard struct {
	mu    sync.Mutex   // protects head and seq
	head  *Pin         // the shard's pins, linked through Pin.prev and Pin.next
	seq   uint64       // pins ever added to the shard
	count atomic.Int64 // pins in the shard; changed under mu, read without it
	_     [32]byte     // keeps shards on separate cache lines
}

// add registers p in the shard that hint selects (pins of distinct blocks
// should give distinct hints) and gives it an id unique in the store.
func (r *pinRegistry) add(p *Pin, hint uint64) {
	i := hint % pinShards
	sh := &r.shards[i]
	sh.mu.Lock()
	sh.seq++
	p.id = sh.seq*pinShards + i
	p.shard = uint8(i)
	p.next = sh.head
	if sh.head != nil {
		sh.head.prev = p
	}
	sh.head = p
	sh.count.Add(1)
	sh.mu.Unlock()
}

// remove unregisters p and wakes a Close that waits for the registry to
// empty when p was the last pin. A pin that a forced Close drained while
// its Unpin ran is no longer linked: remove leaves the shard alone then.
func (r *pinRegistry) remove(p *Pin) {
	sh := &r.shards[p.shard]
	sh.mu.Lock()
	if p.prev == nil && sh.head != p {
		sh.mu.Unlock()
		return
	}
	r.unlinkLocked(sh, p)
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

func (r *pinRegistry) unlinkLocked(sh *pinShard, p *Pin) {
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
// remove pins.
func (r *pinRegistry) each(fn func(p *Pin)) {
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

// all returns every registered pin.
func (r *pinRegistry) all() []*Pin {
	var out []*Pin
	r.each(func(p *Pin) { out = append(out, p) })
	return out
}

// drain unregisters every pin and calls fn with each, under its shard's
// lock: a forced Close invalidates them.
func (r *pinRegistry) drain(fn func(p *Pin)) int {
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

// gateShards is the number of shards of the pin gate, a power of two.
const gateShards = 32

// pinGate is a reader-writer lock whose readers on different cores touch
// different cache lines. Pin's fast path holds it shared instead of the
// store's quiesce lock, which every operation shares; Close and Check hold
// it exclusive, after quiesce, so no pin is in flight while they run.
type pinGate struct {
	shards [gateShards]gateShard
}

type gateShard struct {
	mu sync.RWMutex // held shared by the fast pins that hash to this shard
	_  [40]byte     // keeps shards on separate cache lines
}

// rlock takes the shard that hint selects shared and returns it for
// RUnlock.
func (g *pinGate) rlock(hint uint64) *sync.RWMutex {
	m := &g.shards[hint%gateShards].mu
	m.RLock()
	return m
}

// lock takes every shard exclusive, in order.
func (g *pinGate) lock() {
	for i := range g.shards {
		g.shards[i].mu.Lock()
	}
}

func (g *pinGate) unlock() {
	for i := range g.shards {
		g.shards[i].mu.Unlock()
	}
}

// pinHint spreads pins over the registry and gate shards by the region
// block they start at: pins of distinct blocks usually land in different
// shards, pins of one block in the same one.
func pinHint(start pmem.Block) uint64 {
	return uint64(start) * 0x9E3779B97F4A7C15 >> 59
}
