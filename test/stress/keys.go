package stress

// What the run knows about each key while it runs: the generations handed
// out and which of them may still show, the file ranges that hold pin
// canaries (which writers must leave alone), and the pins taken, so that a
// Wait-policy operation can be told apart from a lost wakeup.

import (
	"sync"
	"sync/atomic"
	"time"
)

// span is a byte range [off, end) of a file.
type span struct{ off, end int64 }

func (s span) overlaps(t span) bool { return s.off < t.end && t.off < s.end }

// keyState is one key of the run: a main key or a filler.
type keyState struct {
	id   uint32
	name string

	// canaryMu is held shared by a writer around its WriteAt calls and
	// exclusive to add or drop a canary, so no write lands on a canary;
	// a reader also takes it exclusive to re-read a suspicious word with
	// no write of the key in flight.
	canaryMu sync.RWMutex
	canaries []span // guarded by canaryMu: ranges holding pin canaries

	mu       sync.Mutex     // protects the fields below
	nextGen  uint32         // next generation to hand out
	inflight map[uint32]int // generations whose operation has not returned
	floor    uint32         // no word older than this may show in a read begun now
	pins     []*pinRecord   // pins of the key, live or recently released
}

func newKeyState(id uint32, name string, firstGen uint32) *keyState {
	return &keyState{id: id, name: name, nextGen: max(1, firstGen), inflight: map[uint32]int{}}
}

// begin hands out a generation for an operation that writes the key's words
// or replaces its value, and marks it in flight. low is the oldest
// generation in flight, this one included: if the operation replaces the
// value, words older than low can no longer show once it returns.
func (k *keyState) begin() (gen, low uint32) {
	k.mu.Lock()
	defer k.mu.Unlock()
	gen = k.nextGen
	if gen == ^uint32(0) {
		// After four billion operations on one key the last generation is
		// reused: the checks only get more lenient.
		gen--
	} else {
		k.nextGen++
	}
	k.inflight[gen]++
	low = gen
	for g := range k.inflight {
		low = min(low, g)
	}
	return gen, low
}

// end marks gen's operation returned. replaced says the operation replaced
// the whole value (a Put or a Remove that succeeded): reads begun from now
// on see no word older than low.
func (k *keyState) end(gen, low uint32, replaced bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.inflight[gen]--; k.inflight[gen] <= 0 {
		delete(k.inflight, gen)
	}
	if replaced {
		k.floor = max(k.floor, low)
	}
}

// readRule returns the rule of a read that begins now; its next bound is
// fixed by seal once the read has returned.
func (k *keyState) readRule() wordRule {
	k.mu.Lock()
	defer k.mu.Unlock()
	return wordRule{id: k.id, floor: k.floor, next: k.nextGen}
}

// seal sets r's upper bound to the key's next generation now.
func (k *keyState) seal(r wordRule) wordRule {
	k.mu.Lock()
	defer k.mu.Unlock()
	r.next = k.nextGen
	return r
}

// canaryFree returns the parts of s that hold no canary. canaryMu must be
// held.
func (k *keyState) canaryFree(s span) []span {
	out := []span{s}
	for _, c := range k.canaries {
		var next []span
		for _, p := range out {
			if !p.overlaps(c) {
				next = append(next, p)
				continue
			}
			if p.off < c.off {
				next = append(next, span{p.off, c.off})
			}
			if c.end < p.end {
				next = append(next, span{c.end, p.end})
			}
		}
		out = next
	}
	return out
}

// addCanary records s as holding a canary unless it overlaps one already.
// canaryMu must be held exclusive.
func (k *keyState) addCanary(s span) bool {
	for _, c := range k.canaries {
		if c.overlaps(s) {
			return false
		}
	}
	k.canaries = append(k.canaries, s)
	return true
}

// dropCanary forgets s. canaryMu must be held exclusive.
func (k *keyState) dropCanary(s span) {
	for i, c := range k.canaries {
		if c == s {
			k.canaries = append(k.canaries[:i], k.canaries[i+1:]...)
			return
		}
	}
}

// pinRecord is one pin of the run, for judging Wait-policy operations.
type pinRecord struct {
	span    span
	created time.Time
	// unpinning and unpinned are Unix nanoseconds: when Unpin was called
	// and when it returned (0: not yet).
	unpinning, unpinned atomic.Int64
}

// addPin records a pin taken at created. Records of pins released longer
// than keep ago are forgotten.
func (k *keyState) addPin(s span, created time.Time, keep time.Duration) *pinRecord {
	rec := &pinRecord{span: s, created: created}
	k.mu.Lock()
	defer k.mu.Unlock()
	cutoff := created.Add(-keep).UnixNano()
	live := k.pins[:0]
	for _, p := range k.pins {
		if u := p.unpinned.Load(); u == 0 || u > cutoff {
			live = append(live, p)
		}
	}
	clear(k.pins[len(live):])
	k.pins = append(live, rec)
	return rec
}

// pinsOver returns the records of pins over s taken before t.
func (k *keyState) pinsOver(s span, t time.Time) []*pinRecord {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []*pinRecord
	for _, p := range k.pins {
		if p.span.overlaps(s) && !p.created.After(t) {
			out = append(out, p)
		}
	}
	return out
}
