package bench

// Durable Put and Get of one value size on every system, each on fresh
// storage: the values cycle over a fixed set of keys, so every timed Put
// replaces a value, as an update-heavy application would.

import (
	"bytes"
	"fmt"
	"os"
	"runtime"

	"github.com/daxstore/daxstore/dax"
)

// nvals distinct values of each size are written in turn.
const nvals = 4

// slotsFor returns how many keys the measurements of size cycle over: 64,
// but at most 16 MiB of values (and at least 4 keys).
func slotsFor(size int) int { return max(4, min(64, (16<<20)/size)) }

// kvSystem is one system of the Put and Get measurements.
type kvSystem struct {
	name string // subject of its figures
	role string
	open func(dir string) (kv, error)
}

func (r *runner) kvAll() error {
	r.report.GetBuffers = getBufferPolicy
	for _, size := range r.cfg.Sizes {
		if err := r.kvSize(size); err != nil {
			return err
		}
	}
	return r.smallAll()
}

func (r *runner) kvSize(size int) error {
	slots := slotsFor(size)
	k := newKeys(slots)
	vals := make([][]byte, nvals)
	for i := range vals {
		vals[i] = make([]byte, size)
		fill(vals[i], uint64(size)<<8|uint64(i))
	}
	// Room for every value twice over (a Put writes the new value before
	// it frees the old one), and slack.
	regionBytes := max(64<<20, 2*int64(slots)*int64(size)+(16<<20))
	systems := []kvSystem{
		{"daxstore", roleDax, func(dir string) (kv, error) { return openDax(dir, regionBytes, k) }},
		{"bbolt", rolePeer, func(dir string) (kv, error) { return openBolt(dir, k) }},
		{"pebble", rolePeer, func(dir string) (kv, error) {
			db, err := openPebble(dir)
			if err != nil {
				return nil, err
			}
			return &pebbleKV{db: db, keys: k}, nil
		}},
		{"files", rolePeer, func(dir string) (kv, error) { return openFiles(dir, slots), nil }},
		{"ideal", roleLimit, func(dir string) (kv, error) { return openIdeal(dir, slots, size, k) }},
	}
	for _, sys := range systems {
		if err := r.kvOne(sys, size, k, vals); err != nil {
			return fmt.Errorf("%s %s: %w", sys.name, sizeName(int64(size)), err)
		}
	}
	return nil
}

// subjRecordsPerPut is the figure of goal 3 of the scale issue: a Put of
// one extent writes at most two journal records.
const (
	groupRecords      = "records"
	subjRecordsPerPut = "daxstore journal records per Put"
)

// recordsPerPut runs n more Puts through put, outside any timing, and
// returns the journal records they wrote per Put.
func recordsPerPut(s *dax.Store, n int, put func(i int) error) (float64, error) {
	before, err := s.Stats()
	if err != nil {
		return 0, err
	}
	for i := range n {
		if err := put(i); err != nil {
			return 0, err
		}
	}
	after, err := s.Stats()
	if err != nil {
		return 0, err
	}
	commits := after.Commits - before.Commits
	if commits == 0 {
		return 0, fmt.Errorf("%d Puts committed nothing", n)
	}
	return float64(after.JournalRecords-before.JournalRecords) / float64(commits), nil
}

// kvOne measures Put, then Get, of one system on fresh storage.
func (r *runner) kvOne(sys kvSystem, size int, k keys, vals [][]byte) (err error) {
	slots := len(k.s)
	dir, err := r.sub(fmt.Sprintf("%s-%s", sys.name, sizeName(int64(size))))
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	db, err := sys.open(dir)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := db.close(); err == nil {
			err = cerr
		}
	}()
	d := r.cfg.Duration
	last := make([]int, slots) // the value each slot holds
	put := func(i int) error {
		slot, v := i%slots, (i/slots)%nvals
		last[slot] = v
		return db.put(slot, vals[v])
	}
	r.progress(fmt.Sprintf("put %s: %s", sizeName(int64(size)), sys.name))
	runtime.GC()
	// The warm-up writes every key twice, so each timed Put replaces a
	// value and finds the system past its first growth.
	res, err := timed(r.ctx, d, 2*slots, 2*slots, put)
	if err != nil {
		return fmt.Errorf("put: %w", err)
	}
	putName := sys.name
	switch sys.role {
	case roleDax:
		putName = "daxstore Put"
	case roleLimit:
		putName = "ideal path"
	}
	r.throughput("put", putName, sys.role, size, res)
	if dk, ok := db.(*daxKV); ok {
		perPut, err := recordsPerPut(dk.s, slots, put)
		if err != nil {
			return fmt.Errorf("records per put: %w", err)
		}
		r.add(Figure{Group: groupRecords, Subject: subjRecordsPerPut, Role: roleDax, Size: int64(size), Value: perPut, Unit: unitRecords,
			Note: "journal records per durable Put over an existing key, from Stats.JournalRecords over Stats.Commits, free-space checkpoints included"})
	}

	buf := make([]byte, size)
	check := func(what string, get func(slot int) ([]byte, error)) error {
		for slot := range slots {
			got, err := get(slot)
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			if !bytes.Equal(got, vals[last[slot]]) {
				return fmt.Errorf("%s of %s returned %d bytes that are not the value put last", what, k.s[slot], len(got))
			}
		}
		return nil
	}
	getOne := func(name, role string, get func(slot int) error) error {
		r.progress(fmt.Sprintf("get %s: %s", sizeName(int64(size)), name))
		runtime.GC()
		res, err := timed(r.ctx, d, slots, slots, func(i int) error { return get(i % slots) })
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		r.throughput("get", name, role, size, res)
		return nil
	}
	if err := check("get", func(slot int) ([]byte, error) { return db.get(slot, buf) }); err != nil {
		return err
	}
	switch sys.role {
	case roleLimit:
		return getOne(subjCopyLimit, roleLimit, func(slot int) error {
			_, err := db.get(slot, buf)
			return err
		})
	case rolePeer:
		return getOne(sys.name, rolePeer, func(slot int) error {
			_, err := db.get(slot, buf)
			return err
		})
	}
	dx := db.(*daxKV)
	if err := getOne(subjAppendGet, roleDax, func(slot int) error {
		_, err := dx.get(slot, buf)
		return err
	}); err != nil {
		return err
	}
	for slot := range slots {
		sum, err := dx.view(slot, readAll)
		if err != nil {
			return fmt.Errorf("view: %w", err)
		}
		if want := readAll(vals[last[slot]]); sum != want {
			return fmt.Errorf("view of %s reads bytes that are not the value put last", k.s[slot])
		}
	}
	if err := getOne(subjView, roleDax, func(slot int) error {
		sum, err := dx.view(slot, countLines)
		sink.Add(sum)
		return err
	}); err != nil {
		return err
	}
	if err := getOne(subjGet, roleDax, func(slot int) error {
		_, err := dx.s.Get(k.s[slot])
		return err
	}); err != nil {
		return err
	}
	if err := dx.openFiles(); err != nil {
		return err
	}
	if err := check("ReadAt", func(slot int) ([]byte, error) { return dx.readAt(slot, buf) }); err != nil {
		return err
	}
	if err := getOne(subjReadAt, roleDax, func(slot int) error {
		_, err := dx.readAt(slot, buf)
		return err
	}); err != nil {
		return err
	}
	for slot := range slots {
		sum, err := dx.pinRead(slot, int64(size), readAll)
		if err != nil {
			return fmt.Errorf("pin: %w", err)
		}
		if want := readAll(vals[last[slot]]); sum != want {
			return fmt.Errorf("pin of %s reads bytes that are not the value put last", k.s[slot])
		}
	}
	return getOne(subjPin, roleDax, func(slot int) error {
		sum, err := dx.pinRead(slot, int64(size), countLines)
		sink.Add(sum)
		return err
	})
}

// Subjects of the Get figures. The copying reads all copy into one buffer
// that every read reuses (getBufferPolicy); the zero-copy ones read every
// byte in place.
const (
	subjAppendGet = "daxstore AppendGet (reused buffer)"
	subjView      = "daxstore View (zero-copy)"
	subjGet       = "daxstore Get (new slice)"
	subjReadAt    = "daxstore ReadAt (reused buffer)"
	subjPin       = "daxstore Pin (zero-copy)"
	subjCopyLimit = "copy from mapping"
)

// getBufferPolicy says how every system's Get figure treats its buffer.
const getBufferPolicy = "every system's get copies the value into one caller buffer that all its gets reuse " +
	"(bbolt inside its read transaction, Pebble before closing the value, files with ReadAt, daxstore with " +
	"AppendGet); daxstore Get (new slice) allocates per call, as Store.Get does, and is shown for reference; " +
	"View and Pin (zero-copy) read every byte in place instead of copying it; the limit is a Go map lookup " +
	"of the key plus one copy out of a prefaulted mapping into the reused buffer"
