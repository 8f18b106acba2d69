package dax

import (
	"errors"
	"fmt"
	"io"
	"testing"
	"time"
)

// wantAttr fails unless fi carries the attributes mode, uid, gid and atime.
func wantAttr(t *testing.T, step string, fi FileInfo, mode, uid, gid uint32, atime time.Time) {
	t.Helper()
	if !fi.HasAttr || fi.Mode != mode || fi.UID != uid || fi.GID != gid || !fi.ATime.Equal(atime) {
		t.Fatalf("%s: got attrs %v mode %#o uid %d gid %d atime %v, want %#o %d %d %v",
			step, fi.HasAttr, fi.Mode, fi.UID, fi.GID, fi.ATime, mode, uid, gid, atime)
	}
	if fi.CTime.Before(fi.ModTime) {
		t.Fatalf("%s: ctime %v before mtime %v", step, fi.CTime, fi.ModTime)
	}
}

// TestAttrsSurviveEveryCommitPath sets attributes on a file and then takes
// it through every commit that rewrites its record - writes, truncates,
// inline <-> blocks, Put, Rename, eviction from the inode cache, reopen -
// checking after each that they are still there, in memory, in listings
// and in the journal (Check compares the two).
func TestAttrsSurviveEveryCommitPath(t *testing.T) {
	opts := &Options{Size: 256 * testBS, NoSync: true, NoAdminSocket: true, InodeCache: 1, InlineLimit: 64}
	s := newStore(t, 0, func(o *Options) { *o = *opts })
	dir := s.Dir()
	mustPut(t, s, "k", pattern(1, 3*testBS))
	fi, err := s.Stat("k")
	if err != nil || fi.HasAttr || fi.Mode != 0 || !fi.ATime.Equal(fi.ModTime) || !fi.CTime.Equal(fi.ModTime) {
		t.Fatalf("fresh file: %+v %v", fi, err)
	}
	atime := time.Unix(1_000_000, 7)
	mtime := time.Unix(2_000_000, 9)
	before := time.Now()
	fi, err = s.SetAttr("k", AttrChange{Mask: AttrMode | AttrUID | AttrGID | AttrATime | AttrMTime,
		Mode: 0o4750, UID: 1000, GID: 100, ATime: atime, MTime: mtime})
	if err != nil {
		t.Fatal(err)
	}
	wantAttr(t, "setattr", fi, 0o4750, 1000, 100, atime)
	if !fi.ModTime.Equal(mtime) || fi.CTime.Before(before) {
		t.Fatalf("setattr: mtime %v (want %v), ctime %v (want >= %v)", fi.ModTime, mtime, fi.CTime, before)
	}
	mustCheck(t, s)

	key := "k"
	steps := []struct {
		name string
		do   func() error
	}{
		{"write", func() error {
			f, err := s.Open(key)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteAt(pattern(2, 100), 5*testBS)
			return err
		}},
		{"truncate", func() error {
			f, err := s.Open(key)
			if err != nil {
				return err
			}
			defer f.Close()
			return f.Truncate(testBS + 10)
		}},
		{"punch", func() error {
			f, err := s.Open(key)
			if err != nil {
				return err
			}
			defer f.Close()
			return f.PunchHole(0, testBS)
		}},
		{"put inline", func() error { return s.Put(key, []byte("small")) }},
		{"write spills inline to blocks", func() error {
			f, err := s.Open(key)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteAt([]byte("x"), 2*testBS)
			return err
		}},
		{"put blocks", func() error { return s.Put(key, pattern(3, 2*testBS)) }},
		{"put inline over blocks", func() error { return s.Put(key, []byte("tiny")) }},
		{"put reader", func() error {
			v := pattern(4, 3*testBS)
			return s.PutReader(t0(), key, bytesReader(v), int64(len(v)), BreakOptions{})
		}},
		{"rename", func() error { key = "renamed"; return s.Rename("k", key) }},
		{"evict", func() error {
			for i := range 8 {
				if err := s.Put(fmt.Sprintf("other%d", i), []byte("o")); err != nil {
					return err
				}
			}
			return nil
		}},
		{"allocate", func() error {
			f, err := s.Open(key)
			if err != nil {
				return err
			}
			defer f.Close()
			return f.Allocate(0, 8*testBS)
		}},
		{"reopen", func() error {
			if err := s.Close(); err != nil {
				return err
			}
			var err error
			s, err = Open(dir, opts)
			return err
		}},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		fi, err := s.Stat(key)
		if err != nil {
			t.Fatalf("%s: stat: %v", st.name, err)
		}
		wantAttr(t, st.name+" (stat)", fi, 0o4750, 1000, 100, atime)
		list, err := s.List(key)
		if err != nil || len(list) != 1 {
			t.Fatalf("%s: list: %v %v", st.name, list, err)
		}
		wantAttr(t, st.name+" (list)", list[0], 0o4750, 1000, 100, atime)
		f, err := s.Open(key)
		if err != nil {
			t.Fatal(err)
		}
		ffi, err := f.Stat()
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		wantAttr(t, st.name+" (File.Stat)", ffi, 0o4750, 1000, 100, atime)
		mustCheck(t, s)
	}
	t.Cleanup(func() { closeForce(s) })
}

type sliceReader struct{ b []byte }

func (r *sliceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

func bytesReader(b []byte) *sliceReader { return &sliceReader{b} }

// TestCTimeIsTheLaterOfChangeAndModification: a write after SetAttr moves
// the reported ctime to the new mtime without rewriting the stored one; a
// SetAttr that sets mtime into the past leaves ctime at the change.
func TestCTimeIsTheLaterOfChangeAndModification(t *testing.T) {
	s := newStore(t, 64*testBS, nil)
	f, err := s.CreateWith("f", AttrChange{Mask: AttrMode, Mode: 0o600})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	if !fi.HasAttr || fi.Mode != 0o600 || !fi.ATime.Equal(fi.ModTime) || !fi.CTime.Equal(fi.ModTime) {
		t.Fatalf("created: %+v", fi)
	}
	past := time.Unix(10, 0)
	fi, err = s.SetAttr("f", AttrChange{Mask: AttrMTime, MTime: past})
	if err != nil {
		t.Fatal(err)
	}
	changed := fi.CTime
	if !fi.ModTime.Equal(past) || !changed.After(past) || fi.Mode != 0o600 {
		t.Fatalf("mtime set to the past: %+v", fi)
	}
	if _, err := f.WriteAt([]byte("data"), 0); err != nil {
		t.Fatal(err)
	}
	fi, _ = f.Stat()
	if !fi.CTime.Equal(fi.ModTime) || fi.CTime.Before(changed) {
		t.Fatalf("after a write ctime %v, mtime %v, changed at %v", fi.CTime, fi.ModTime, changed)
	}
	// Reads never touch atime (noatime).
	at := fi.ATime
	if _, err := f.ReadAt(make([]byte, 4), 0); err != nil {
		t.Fatal(err)
	}
	if fi, _ = f.Stat(); !fi.ATime.Equal(at) {
		t.Fatalf("a read moved atime from %v to %v", at, fi.ATime)
	}
}

func TestCreateWithSetsAttrsInItsCommit(t *testing.T) {
	s := newStore(t, 64*testBS, nil)
	mt := time.Unix(123, 456)
	f, err := s.CreateWith("a/b", AttrChange{Mask: AttrMode | AttrUID | AttrGID | AttrMTime, Mode: 0o755, UID: 5, GID: 6, MTime: mt})
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	s = reopen(t, s, &Options{NoSync: true, NoAdminSocket: true})
	fi, err := s.Stat("a/b")
	if err != nil {
		t.Fatal(err)
	}
	if !fi.HasAttr || fi.Mode != 0o755 || fi.UID != 5 || fi.GID != 6 || !fi.ModTime.Equal(mt) || fi.CTime.Before(time.Unix(124, 0)) {
		t.Fatalf("after reopen: %+v", fi)
	}
	mustCheck(t, s)
}

// TestBadAttrInputChangesNothing: bad modes, masks, times and keys are
// refused with their sentinels and leave the store as it was.
func TestBadAttrInputChangesNothing(t *testing.T) {
	s := newStore(t, 64*testBS, nil)
	mustPut(t, s, "k", []byte("v"))
	before := snapshot(t, s)
	cases := []struct {
		name string
		err  error
		want error
	}{}
	add := func(name string, err, want error) {
		cases = append(cases, struct {
			name string
			err  error
			want error
		}{name, err, want})
	}
	_, err := s.SetAttr("k", AttrChange{Mask: AttrMode, Mode: 0o10000})
	add("setattr mode", err, ErrInvalidRange)
	_, err = s.SetAttr("k", AttrChange{Mask: 1 << 7})
	add("setattr mask", err, ErrInvalidRange)
	_, err = s.SetAttr("k", AttrChange{Mask: AttrATime, ATime: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)})
	add("setattr far time", err, ErrInvalidRange)
	_, err = s.SetAttr("missing", AttrChange{Mask: AttrMode, Mode: 0o600})
	add("setattr missing", err, ErrNotFound)
	_, err = s.SetAttr("", AttrChange{})
	add("setattr empty key", err, ErrInvalidKey)
	_, err = s.CreateWith("new", AttrChange{Mask: AttrMode, Mode: 0o170000})
	add("createwith mode", err, ErrInvalidRange)
	_, err = s.CreateWith("k", AttrChange{Mask: AttrMode, Mode: 0o600})
	add("createwith existing", err, ErrExist)
	_, err = s.CreateWith("bad\x00key", AttrChange{})
	add("createwith bad key", err, ErrInvalidKey)
	for _, c := range cases {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, c.err, c.want)
		}
	}
	sameState(t, s, before)
}

func TestAttrCallsOnClosedAndReadOnlyStores(t *testing.T) {
	s := newStore(t, 64*testBS, nil)
	mustPut(t, s, "k", []byte("v"))
	f := mustOpen(t, s, "k")
	dir := s.Dir()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Stat(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Stat of a closed File: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := s.SetAttr("k", AttrChange{})
	wantErr(t, err, ErrClosed)
	_, err = s.CreateWith("n", AttrChange{})
	wantErr(t, err, ErrClosed)
	ro, err := Open(dir, &Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	_, err = ro.SetAttr("k", AttrChange{Mask: AttrMode, Mode: 0o600})
	wantErr(t, err, ErrReadOnly)
	_, err = ro.CreateWith("n", AttrChange{})
	wantErr(t, err, ErrReadOnly)
	if fi, err := ro.Stat("k"); err != nil || fi.HasAttr {
		t.Fatalf("read-only stat: %+v %v", fi, err)
	}
}

// TestRemovedFileStatIsNotFound: File.Stat of a removed key.
func TestRemovedFileStatIsNotFound(t *testing.T) {
	s := newStore(t, 64*testBS, nil)
	mustPut(t, s, "k", []byte("v"))
	f := mustOpen(t, s, "k")
	defer f.Close()
	if err := s.Remove("k"); err != nil {
		t.Fatal(err)
	}
	_, err := f.Stat()
	wantErr(t, err, ErrNotFound)
	_, err = s.SetAttr("k", AttrChange{})
	wantErr(t, err, ErrNotFound)
}
