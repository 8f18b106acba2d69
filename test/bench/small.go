package bench

// Small values (goal 4 of the scale issue): durable Put of 64 B to 1 KiB
// values against Pebble, and the space each value takes once written,
// counting the journal's files and the region blocks in use for daxstore
// and the database directory for Pebble.

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/cockroachdb/pebble/v2"

	"github.com/daxstore/daxstore/dax"
)

// DefaultSmallSizes are the value sizes of the small-value figures.
var DefaultSmallSizes = []int{64, 256, 1 << 10}

// Subjects of the space figures.
const (
	subjSpaceDax    = "daxstore"
	subjSpacePebble = "pebble"
	groupSpace      = "space"
)

// smallAll measures Put and space at every small size.
func (r *runner) smallAll() error {
	for _, size := range r.cfg.SmallSizes {
		if err := r.smallPut(size); err != nil {
			return fmt.Errorf("small put %s: %w", sizeName(int64(size)), err)
		}
		if err := r.smallSpace(size); err != nil {
			return fmt.Errorf("space %s: %w", sizeName(int64(size)), err)
		}
	}
	return nil
}

// smallPut measures durable Put of size-byte values on daxstore and Pebble,
// as kvOne does: the values cycle over a fixed set of keys, so every timed
// Put replaces a value.
func (r *runner) smallPut(size int) error {
	slots := slotsFor(size)
	k := newKeys(slots)
	vals := make([][]byte, nvals)
	for i := range vals {
		vals[i] = make([]byte, size)
		fill(vals[i], uint64(size)<<8|uint64(i))
	}
	systems := []struct {
		name, subject, role string
		open                func(dir string) (kv, error)
	}{
		{"daxstore", "daxstore Put", roleDax, func(dir string) (kv, error) { return openDax(dir, 64<<20, k) }},
		{"pebble", "pebble", rolePeer, func(dir string) (kv, error) {
			db, err := openPebble(dir)
			if err != nil {
				return nil, err
			}
			return &pebbleKV{db: db, keys: k}, nil
		}},
	}
	for _, sys := range systems {
		dir, err := r.sub(fmt.Sprintf("small-%s-%s", sys.name, sizeName(int64(size))))
		if err != nil {
			return err
		}
		db, err := sys.open(dir)
		if err != nil {
			os.RemoveAll(dir)
			return err
		}
		r.progress(fmt.Sprintf("put %s: %s", sizeName(int64(size)), sys.name))
		runtime.GC()
		res, err := timed(r.ctx, r.cfg.Duration, 2*slots, 2*slots, func(i int) error {
			return db.put(i%slots, vals[(i/slots)%nvals])
		})
		cerr := db.close()
		os.RemoveAll(dir)
		if err != nil {
			return fmt.Errorf("%s: %w", sys.name, err)
		}
		if cerr != nil {
			return fmt.Errorf("%s: close: %w", sys.name, cerr)
		}
		r.throughput("put", sys.subject, sys.role, size, res)
	}
	return nil
}

// smallSpace writes cfg.SpaceKeys distinct size-byte values into a fresh
// daxstore and a fresh Pebble and reports the bytes each takes per value:
// for daxstore its journal directory plus the region blocks in use (the
// region file itself is as large as configured), for Pebble its directory.
// Each is closed and opened again once before it is measured: opening
// flushes what the write-ahead log held into tables and drops the logs, so
// both are measured as tables, not as log files Pebble keeps for reuse.
// Both write without sync: space does not depend on it.
func (r *runner) smallSpace(size int) error {
	n := r.cfg.SpaceKeys
	k := newKeys(n)
	val := make([]byte, size)
	r.progress(fmt.Sprintf("space %s: daxstore", sizeName(int64(size))))
	dir, err := r.sub(fmt.Sprintf("space-daxstore-%s", sizeName(int64(size))))
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	region := int64(n)*int64(size+4096) + 64<<20 // room even if every value took a block
	s, err := dax.Open(dir, &dax.Options{Size: region, NoAdminSocket: true, NoSync: true})
	if err != nil {
		return err
	}
	for i := range n {
		fill(val, uint64(size)<<32|uint64(i))
		if err := s.Put(k.s[i], val); err != nil {
			s.Close()
			return err
		}
	}
	st, err := s.Stats()
	if err == nil {
		err = s.Close()
	} else {
		s.Close()
	}
	if err != nil {
		return err
	}
	if s, err = dax.Open(dir, &dax.Options{NoAdminSocket: true, NoSync: true, MustExist: true}); err != nil {
		return err
	}
	if err := s.Close(); err != nil {
		return err
	}
	journal, err := dirBytes(filepath.Join(dir, "journal"))
	if err != nil {
		return err
	}
	daxBytes := journal + int64(st.UsedBlocks)*st.BlockSize

	r.progress(fmt.Sprintf("space %s: pebble", sizeName(int64(size))))
	pdir, err := r.sub(fmt.Sprintf("space-pebble-%s", sizeName(int64(size))))
	if err != nil {
		return err
	}
	defer os.RemoveAll(pdir)
	db, err := openPebble(pdir)
	if err != nil {
		return err
	}
	for i := range n {
		fill(val, uint64(size)<<32|uint64(i))
		if err := db.Set(k.b[i], val, pebble.NoSync); err != nil {
			db.Close()
			return err
		}
	}
	if err := db.Flush(); err != nil {
		db.Close()
		return err
	}
	if err := db.Close(); err != nil {
		return err
	}
	if db, err = openPebble(pdir); err != nil {
		return err
	}
	if err := db.Close(); err != nil {
		return err
	}
	pebbleBytes, err := dirBytes(pdir)
	if err != nil {
		return err
	}
	note := fmt.Sprintf("%d values; journal %s + %d region blocks", n, formatBytes(float64(journal)), st.UsedBlocks)
	r.add(Figure{Group: groupSpace, Subject: subjSpaceDax, Role: roleDax, Size: int64(size), Count: int64(n),
		Value: float64(daxBytes) / float64(n), Unit: unitBytes, Note: note})
	r.add(Figure{Group: groupSpace, Subject: subjSpacePebble, Role: rolePeer, Size: int64(size), Count: int64(n),
		Value: float64(pebbleBytes) / float64(n), Unit: unitBytes, Note: fmt.Sprintf("%d values", n)})
	return nil
}

// dirBytes returns the bytes of the regular files under dir.
func dirBytes(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		total += info.Size()
		return nil
	})
	return total, err
}
