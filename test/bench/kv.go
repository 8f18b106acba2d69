package bench

// The systems a Put and a Get are measured on: daxstore, the three peers
// (bbolt, Pebble, plain files) and the ideal path, each behind the same
// small interface and each set up durable.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/daxstore/daxstore/dax"
)

// kv is one system under test, fresh for one value size. put stores value
// in slot durably (it returns once the value survives a power cut); get
// copies slot's value into buf, which is large enough, and returns it: one
// buffer, reused by every get, for every system (getBufferPolicy).
type kv interface {
	put(slot int, value []byte) error
	get(slot int, buf []byte) ([]byte, error)
	close() error
}

// slotKey is the key of slot i, the same in every system.
func slotKey(i int) []byte { return fmt.Appendf(nil, "value-%05d", i) }

// keys are the slots' keys, built once so no system pays for formatting.
type keys struct {
	b [][]byte
	s []string
}

func newKeys(n int) keys {
	k := keys{b: make([][]byte, n), s: make([]string, n)}
	for i := range n {
		k.b[i] = slotKey(i)
		k.s[i] = string(k.b[i])
	}
	return k
}

// daxKV is daxstore with its default, durable settings.
type daxKV struct {
	s     *dax.Store
	keys  keys
	files []*dax.File // slot's file, open once every slot holds a value
}

func openDax(dir string, regionBytes int64, k keys) (*daxKV, error) {
	s, err := dax.Open(dir, &dax.Options{Size: regionBytes, NoAdminSocket: true})
	if err != nil {
		return nil, err
	}
	return &daxKV{s: s, keys: k}, nil
}

func (d *daxKV) put(slot int, value []byte) error { return d.s.Put(d.keys.s[slot], value) }

// get is Store.AppendGet into buf: the buffer policy of every system.
func (d *daxKV) get(slot int, buf []byte) ([]byte, error) {
	return d.s.AppendGet(buf[:0], d.keys.s[slot])
}

// view is Store.View with consume reading every byte in place.
func (d *daxKV) view(slot int, consume func([]byte) uint64) (sum uint64, err error) {
	err = d.s.View(d.keys.s[slot], func(v []byte) error {
		sum = consume(v)
		return nil
	})
	return sum, err
}

// openFiles opens every slot's file for readAt and pinRead.
func (d *daxKV) openFiles() error {
	d.files = make([]*dax.File, len(d.keys.s))
	for i, k := range d.keys.s {
		f, err := d.s.Open(k)
		if err != nil {
			return err
		}
		d.files[i] = f
	}
	return nil
}

// readAt is File.ReadAt of the whole value into buf.
func (d *daxKV) readAt(slot int, buf []byte) ([]byte, error) {
	n, err := d.files[slot].ReadAt(buf, 0)
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}

// pinRead pins the whole value, reads every byte in place with consume,
// and unpins.
func (d *daxKV) pinRead(slot int, size int64, consume func([]byte) uint64) (uint64, error) {
	p, err := d.files[slot].Pin(0, size, dax.PinOptions{})
	if err != nil {
		return 0, err
	}
	var sum uint64
	for _, b := range p.Bytes() {
		sum += consume(b)
	}
	return sum, p.Unpin()
}

// countLines is the zero-copy reader of the Get figures: it counts the
// newlines of a value, as a parser scanning for delimiters would, reading
// every byte with the vector instructions bytes.Count uses, the same class
// of instructions a copy uses.
func countLines(b []byte) uint64 { return uint64(bytes.Count(b, newline)) }

var newline = []byte{'\n'}

func (d *daxKV) close() error {
	for _, f := range d.files {
		f.Close()
	}
	return d.s.Close()
}

// boltKV is bbolt with its default settings (NoSync false): one Update,
// so one fdatasync, per put.
type boltKV struct {
	db   *bolt.DB
	keys keys
}

var boltBucket = []byte("values")

func openBolt(dir string, k keys) (*boltKV, error) {
	db, err := bolt.Open(filepath.Join(dir, "bolt.db"), 0o600, &bolt.Options{Timeout: 0})
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(boltBucket)
		return err
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &boltKV{db: db, keys: k}, nil
}

func (b *boltKV) put(slot int, value []byte) error {
	return b.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(boltBucket).Put(b.keys.b[slot], value) })
}

// get copies the value out inside a read transaction: bbolt's slice is
// valid only until the transaction ends.
func (b *boltKV) get(slot int, buf []byte) (out []byte, err error) {
	err = b.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(boltBucket).Get(b.keys.b[slot])
		if v == nil {
			return fmt.Errorf("bolt: key %s missing", b.keys.b[slot])
		}
		out = append(buf[:0], v...)
		return nil
	})
	return out, err
}

func (b *boltKV) close() error { return b.db.Close() }

// pebbleLogger keeps Pebble quiet unless something goes wrong.
type pebbleLogger struct{}

func (pebbleLogger) Infof(string, ...any)              {}
func (pebbleLogger) Errorf(format string, args ...any) { log.Printf("bench: pebble: "+format, args...) }
func (pebbleLogger) Fatalf(format string, args ...any) { log.Fatalf("bench: pebble: "+format, args...) }

func openPebble(dir string) (*pebble.DB, error) {
	return pebble.Open(dir, &pebble.Options{Logger: pebbleLogger{}})
}

// pebbleKV is Pebble with its default options, each put one Set with Sync
// and the value inline.
type pebbleKV struct {
	db   *pebble.DB
	keys keys
}

func (p *pebbleKV) put(slot int, value []byte) error {
	return p.db.Set(p.keys.b[slot], value, pebble.Sync)
}

func (p *pebbleKV) get(slot int, buf []byte) ([]byte, error) {
	v, closer, err := p.db.Get(p.keys.b[slot])
	if err != nil {
		return nil, err
	}
	out := append(buf[:0], v...)
	return out, closer.Close()
}

func (p *pebbleKV) close() error { return p.db.Close() }

// filesKV keeps each slot in a plain file, replaced atomically: write a
// temporary file, fsync it, rename it over the slot's file.
type filesKV struct {
	dir        string
	paths, tmp []string
}

func openFiles(dir string, slots int) *filesKV {
	f := &filesKV{dir: dir, paths: make([]string, slots), tmp: make([]string, slots)}
	for i := range slots {
		f.paths[i] = filepath.Join(dir, string(slotKey(i)))
		f.tmp[i] = f.paths[i] + ".tmp"
	}
	return f
}

func (f *filesKV) put(slot int, value []byte) error {
	fd, err := os.OpenFile(f.tmp[slot], os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := fd.Write(value); err != nil {
		fd.Close()
		return err
	}
	if err := fd.Sync(); err != nil {
		fd.Close()
		return err
	}
	if err := fd.Close(); err != nil {
		return err
	}
	return os.Rename(f.tmp[slot], f.paths[slot])
}

func (f *filesKV) get(slot int, buf []byte) ([]byte, error) {
	fd, err := os.Open(f.paths[slot])
	if err != nil {
		return nil, err
	}
	defer fd.Close()
	n, err := fd.ReadAt(buf, 0)
	if err != nil && n < len(buf) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return buf[:n], nil
}

func (f *filesKV) close() error { return nil }

// idealKV is the limit: slot i lives at a fixed offset of a region file
// mapped shared and prefaulted; a put copies the value there, msyncs the
// covering pages and commits one 24-byte record (slot, length, sequence)
// to Pebble with Sync; a get is a Go map lookup of the key, as any store
// must find a key, then one copy out of the mapping.
type idealKV struct {
	f      *os.File
	m      []byte
	stride int
	db     *pebble.DB
	keys   keys
	index  map[string]int // key → slot, for the lookup of a get
	rec    [24]byte
	seq    uint64
}

func openIdeal(dir string, slots, size int, k keys) (*idealKV, error) {
	stride := (size + pageSize - 1) &^ (pageSize - 1)
	f, err := os.OpenFile(filepath.Join(dir, "region"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*idealKV, error) {
		f.Close()
		return nil, err
	}
	total := int64(slots) * int64(stride)
	if err := unix.Fallocate(int(f.Fd()), 0, 0, total); err != nil {
		if err := f.Truncate(total); err != nil {
			return fail(err)
		}
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(total), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fail(err)
	}
	prefault(m)
	db, err := openPebble(filepath.Join(dir, "pebble"))
	if err != nil {
		unix.Munmap(m)
		return fail(err)
	}
	index := make(map[string]int, len(k.s))
	for i, key := range k.s {
		index[key] = i
	}
	return &idealKV{f: f, m: m, stride: stride, db: db, keys: k, index: index}, nil
}

// prefault populates m's page tables writable, so that no timed store
// takes a page fault.
func prefault(m []byte) {
	if err := unix.Madvise(m, unix.MADV_POPULATE_WRITE); err == nil {
		return
	}
	for i := 0; i < len(m); i += pageSize {
		m[i] = 0 // a write fault per page; the file is new, so all zeros
	}
}

const pageSize = 4096

func (x *idealKV) put(slot int, value []byte) error {
	off := slot * x.stride
	copy(x.m[off:], value)
	if err := unix.Msync(x.m[off:off+len(value)], unix.MS_SYNC); err != nil {
		return err
	}
	x.seq++
	putUint64(x.rec[0:], uint64(slot))
	putUint64(x.rec[8:], uint64(len(value)))
	putUint64(x.rec[16:], x.seq)
	return x.db.Set(x.keys.b[slot], x.rec[:], pebble.Sync)
}

func (x *idealKV) get(slot int, buf []byte) ([]byte, error) {
	i, ok := x.index[x.keys.s[slot]]
	if !ok {
		return nil, fmt.Errorf("ideal: key %s missing", x.keys.s[slot])
	}
	off := i * x.stride
	n := copy(buf, x.m[off:off+len(buf)])
	return buf[:n], nil
}

func (x *idealKV) close() error {
	return errors.Join(x.db.Close(), unix.Munmap(x.m), x.f.Close())
}

func putUint64(b []byte, v uint64) {
	for i := range 8 {
		b[i] = byte(v >> (8 * i))
	}
}
