package test

// The stale-data test exists because a block store's worst bug is showing
// one key's old bytes through another: it fills the region with a known
// pattern, lets those blocks go (remove, Put over, truncate), reuses them
// through small writes, preallocation, pins and growth, and proves that
// only the new bytes and zeros ever come back.

import (
	"bytes"
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/daxstore/daxstore/dax"
)

// stalePattern fills blocks that are given up. Its bytes are upper-case
// letters, which the new data (lower-case letters) never uses, so a single
// stale byte shows.
func stalePattern(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = 'A' + byte(i%26)
	}
	return p
}

// freshBytes are new data: lower-case letters only.
func freshBytes(rng *rand.Rand, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = 'a' + byte(rng.Intn(26))
	}
	return p
}

// staleStore is a store under test together with a model of its keys.
type staleStore struct {
	t     *testing.T
	s     *dax.Store
	rng   *rand.Rand
	seed  int64
	bs    int64
	model map[string][]byte
}

func openStale(t *testing.T, bs int64, blocks int64) *staleStore {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	s, err := dax.Open(t.TempDir(), &dax.Options{Size: blocks * bs, BlockSize: uint32(bs), AllocWait: -1, NoAdminSocket: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &staleStore{t: t, s: s, rng: rand.New(rand.NewSource(seed)), seed: seed, bs: bs, model: map[string][]byte{}}
}

// fillWithPattern puts pattern values under keys prefix0, prefix1, ...
// until the region is nearly full, and returns the keys.
func (ss *staleStore) fillWithPattern(prefix string) []string {
	st, err := ss.s.Stats()
	if err != nil {
		ss.t.Fatal(err)
	}
	var keys []string
	per := 5*ss.bs + ss.bs/3 // unaligned, so tails of last blocks hold pattern too
	for i := 0; uint64(len(keys)+1)*uint64(6) < st.FreeBlocks; i++ {
		k := fmt.Sprintf("%s%d", prefix, i)
		if err := ss.s.Put(k, stalePattern(int(per))); err != nil {
			ss.t.Fatalf("seed %d: put %q: %v", ss.seed, k, err)
		}
		ss.model[k] = stalePattern(int(per))
		keys = append(keys, k)
	}
	return keys
}

// writePieces creates key and writes small fresh pieces at random,
// unaligned offsets (leaving holes and partial blocks), preallocates a
// range, and zeroes a range, keeping the model in step.
func (ss *staleStore) writePieces(key string, span int64) {
	f, err := ss.s.Open(key)
	if err != nil {
		if f, err = ss.s.Create(key); err != nil {
			ss.t.Fatalf("seed %d: create %q: %v", ss.seed, key, err)
		}
		ss.model[key] = nil
	}
	defer f.Close()
	for range 6 {
		off := ss.rng.Int63n(span)
		p := freshBytes(ss.rng, 1+ss.rng.Intn(100))
		if _, err := f.WriteAt(p, off); err != nil {
			ss.t.Fatalf("seed %d: write %q at %d: %v", ss.seed, key, off, err)
		}
		ss.modelWrite(key, p, off)
	}
	off, n := ss.rng.Int63n(span), 1+ss.rng.Int63n(3*ss.bs)
	if err := f.Allocate(off, n); err != nil {
		ss.t.Fatalf("seed %d: allocate %q [%d,+%d): %v", ss.seed, key, off, n, err)
	}
	ss.modelGrow(key, off+n)
	size := int64(len(ss.model[key]))
	off, n = ss.rng.Int63n(size), 1+ss.rng.Int63n(2*ss.bs)
	if err := f.ZeroRange(off, n); err != nil {
		ss.t.Fatalf("seed %d: zero %q [%d,+%d): %v", ss.seed, key, off, n, err)
	}
	clear(ss.model[key][off:min(off+n, size)])
}

func (ss *staleStore) modelGrow(key string, size int64) {
	if m := ss.model[key]; int64(len(m)) < size {
		ss.model[key] = append(m, make([]byte, size-int64(len(m)))...)
	}
}

func (ss *staleStore) modelWrite(key string, p []byte, off int64) {
	ss.modelGrow(key, off+int64(len(p)))
	copy(ss.model[key][off:], p)
}

// verify reads every key back and pins a random range of each: the bytes
// must equal the model, which holds only new bytes and zeros for new data.
func (ss *staleStore) verify(what string) {
	ss.t.Helper()
	for k, want := range ss.model {
		got, err := ss.s.Get(k)
		if err != nil {
			ss.t.Fatalf("seed %d: %s: get %q: %v", ss.seed, what, k, err)
		}
		if !bytes.Equal(got, want) {
			i := firstDiff(got, want)
			ss.t.Fatalf("seed %d: %s: %q differs at byte %d of %d: got %q, want %q (upper case is stale data)",
				ss.seed, what, k, i, len(want), excerpt(got, i), excerpt(want, i))
		}
		if len(want) == 0 {
			continue
		}
		f, err := ss.s.Open(k)
		if err != nil {
			ss.t.Fatal(err)
		}
		off := ss.rng.Int63n(int64(len(want)))
		n := 1 + ss.rng.Int63n(int64(len(want))-off)
		p, err := f.Pin(off, n, dax.PinOptions{Label: "stale-check"})
		if err != nil {
			ss.t.Fatalf("seed %d: %s: pin %q [%d,+%d): %v", ss.seed, what, k, off, n, err)
		}
		got = bytes.Join(p.Bytes(), nil)
		if !bytes.Equal(got, want[off:off+n]) {
			ss.t.Fatalf("seed %d: %s: pin of %q [%d,+%d) differs at %d", ss.seed, what, k, off, n, firstDiff(got, want[off:off+n]))
		}
		if err := p.Unpin(); err != nil {
			ss.t.Fatal(err)
		}
		f.Close()
	}
	if err := ss.s.Check(); err != nil {
		ss.t.Fatalf("seed %d: %s: %v", ss.seed, what, err)
	}
}

func excerpt(p []byte, i int) []byte { return p[i:min(len(p), i+16)] }

func TestStaleData(t *testing.T) {
	for _, bs := range []int64{512, 4096} {
		t.Run(fmt.Sprintf("blocks of %d bytes", bs), func(t *testing.T) {
			t.Run("small writes into blocks of removed keys show only new bytes and zeros", func(t *testing.T) {
				ss := openStale(t, bs, 160)
				for _, k := range ss.fillWithPattern("old") {
					if err := ss.s.Remove(k); err != nil {
						t.Fatal(err)
					}
					delete(ss.model, k)
				}
				for i := range 8 {
					ss.writePieces(fmt.Sprintf("new%d", i), 12*bs)
				}
				ss.verify("after remove and rewrite")
			})
			t.Run("put over existing keys shows only the new value and frees no stale bytes to others", func(t *testing.T) {
				ss := openStale(t, bs, 160)
				for _, k := range ss.fillWithPattern("k") {
					v := freshBytes(ss.rng, ss.rng.Intn(int(2*bs)))
					if err := ss.s.Put(k, v); err != nil {
						t.Fatal(err)
					}
					ss.model[k] = v
				}
				for i := range 8 {
					ss.writePieces(fmt.Sprintf("new%d", i), 12*bs)
				}
				ss.verify("after put over and rewrite")
			})
			t.Run("truncate then grow reads zeros past the cut", func(t *testing.T) {
				ss := openStale(t, bs, 160)
				keys := ss.fillWithPattern("t")
				for i, k := range keys {
					f, err := ss.s.Open(k)
					if err != nil {
						t.Fatal(err)
					}
					cut := ss.rng.Int63n(int64(len(ss.model[k])))
					var pin dax.Pin
					if i%2 == 0 && cut > 0 { // a pinned last block is copied, not zeroed in place
						if pin, err = f.Pin(cut-1, 1, dax.PinOptions{Label: "tail"}); err != nil {
							t.Fatal(err)
						}
					}
					if err := f.Truncate(cut); err != nil {
						t.Fatal(err)
					}
					ss.model[k] = ss.model[k][:cut]
					grow := cut + ss.rng.Int63n(4*bs)
					if err := f.Truncate(grow); err != nil {
						t.Fatal(err)
					}
					ss.modelGrow(k, grow)
					p := freshBytes(ss.rng, 1+ss.rng.Intn(50))
					at := grow + ss.rng.Int63n(2*bs)
					if _, err := f.WriteAt(p, at); err != nil {
						t.Fatal(err)
					}
					ss.modelWrite(k, p, at)
					if pin != (dax.Pin{}) {
						if got := bytes.Join(pin.Bytes(), nil); !bytes.Equal(got, stalePattern(int(cut))[cut-1:]) {
							t.Fatalf("seed %d: pin of the cut block lost its byte: %q", ss.seed, got)
						}
						if err := pin.Unpin(); err != nil {
							t.Fatal(err)
						}
					}
					f.Close()
				}
				ss.verify("after truncate and grow")
				for i, k := range keys { // room for the rewrite
					if i%2 == 1 {
						if err := ss.s.Remove(k); err != nil {
							t.Fatal(err)
						}
						delete(ss.model, k)
					}
				}
				for i := range 4 {
					ss.writePieces(fmt.Sprintf("new%d", i), 12*bs)
				}
				ss.verify("after truncate, grow and rewrite")
			})
		})
	}
}
