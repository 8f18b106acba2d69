package journal

import (
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/daxstore/daxstore/internal/memfs"
	"github.com/daxstore/daxstore/pmem"
)

func attrInodes() []Inode {
	ext := inlineInode(7, "blocks", 3)
	ext.HasAttr, ext.Mode, ext.UID, ext.GID, ext.ATime, ext.CTime = true, 0o644, 1000, 100, 11, 12
	return []Inode{
		ext,
		{Ino: 8, Key: "external", Size: 1 << 30, ModTime: 5, Blocks: 9, External: true,
			HasAttr: true, Mode: 0o7777, UID: 1<<32 - 1, GID: 0, ATime: -1, CTime: 1 << 62},
		{Ino: 9, Key: "inline", Size: 5, ModTime: 7, Inline: true, Data: []byte("hello"),
			HasAttr: true, Mode: 0o600, UID: 1, GID: 2, ATime: 3, CTime: 4},
		{Ino: 10, Key: "empty/inline", Inline: true, Data: []byte{}, HasAttr: true},
	}
}

func TestInodeAttrRoundTrip(t *testing.T) {
	for _, in := range attrInodes() {
		k, v := EncodeInode(in)
		want := nameVersionAttr
		if in.Inline {
			want = nameVersionInlineAttr
		}
		if v[0] != want {
			t.Fatalf("%q: version %d, want %d", in.Key, v[0], want)
		}
		got, err := DecodeInode(k, v)
		if err != nil {
			t.Fatalf("%q: %v", in.Key, err)
		}
		if !reflect.DeepEqual(got, in) {
			t.Fatalf("%q: got %+v, want %+v", in.Key, got, in)
		}
		// Without attributes the record is the version 2 or 3 one, byte
		// for byte: the attribute block is only appended.
		plain := in
		plain.HasAttr, plain.Mode, plain.UID, plain.GID, plain.ATime, plain.CTime = false, 0, 0, 0, 0, 0
		_, pv := EncodeInode(plain)
		if pv[0] != want-2 {
			t.Fatalf("%q without attributes: version %d", in.Key, pv[0])
		}
		if string(pv[1:len(pv)-crcLen]) != string(v[1:len(v)-crcLen-attrLen]) {
			t.Fatalf("%q: the body before the attribute block differs from the plain record", in.Key)
		}
	}
}

// TestDamagedAttrRecordsAreCorrupt flips every bit and cuts every length of
// attribute-carrying inode records and of directory records: each defect
// decodes as ErrCorrupt, never panics.
func TestDamagedAttrRecordsAreCorrupt(t *testing.T) {
	type rec struct {
		k, v   []byte
		decode func(k, v []byte) error
	}
	var recs []rec
	for _, in := range attrInodes() {
		k, v := EncodeInode(in)
		recs = append(recs, rec{k, v, func(k, v []byte) error { _, err := DecodeInode(k, v); return err }})
	}
	k, v := EncodeDir(Dir{Path: "a/b", Mode: 0o755, UID: 3, GID: 4, MTime: 5, ATime: 6, CTime: 7})
	recs = append(recs, rec{k, v, func(k, v []byte) error { _, err := DecodeDir(k, v); return err }})
	for _, r := range recs {
		if err := r.decode(r.k, r.v); err != nil {
			t.Fatalf("%q: intact record: %v", r.k, err)
		}
		for i := 0; i < len(r.v)*8; i++ {
			bad := append([]byte(nil), r.v...)
			bad[i/8] ^= 1 << (i % 8)
			if err := r.decode(r.k, bad); !errors.Is(err, pmem.ErrCorrupt) {
				t.Fatalf("%q with bit %d flipped: %v", r.k, i, err)
			}
		}
		for n := 0; n < len(r.v); n++ {
			if err := r.decode(r.k, r.v[:n]); !errors.Is(err, pmem.ErrCorrupt) {
				t.Fatalf("%q cut to %d bytes: %v", r.k, n, err)
			}
		}
		// Bytes added before the checksum, resealed: trailing bytes.
		body := append(append([]byte(nil), r.v[:len(r.v)-crcLen]...), 0)
		if err := r.decode(r.k, seal(r.k, body)); !errors.Is(err, pmem.ErrCorrupt) {
			t.Fatalf("%q with a trailing byte: %v", r.k, err)
		}
	}
}

// TestDecodeRefusesModesBeyondPermissionBits: a sealed record whose mode
// has bits beyond 07777 is corrupt, and Batch refuses to write one.
func TestDecodeRefusesModesBeyondPermissionBits(t *testing.T) {
	in := Inode{Ino: 1, Key: "k", Inline: true, Data: []byte{}, HasAttr: true, Mode: 0o10000}
	k, v := EncodeInode(in)
	if _, err := DecodeInode(k, v); !errors.Is(err, pmem.ErrCorrupt) {
		t.Fatalf("inode mode 010000: %v", err)
	}
	dk, dv := EncodeDir(Dir{Path: "d", Mode: 0o10000})
	if _, err := DecodeDir(dk, dv); !errors.Is(err, pmem.ErrCorrupt) {
		t.Fatalf("directory mode 010000: %v", err)
	}
	fs := memfs.New()
	j := openMem(t, fs, Options{})
	defer closeJournal(t, j)
	for name, queue := range map[string]func(b *Batch){
		"inode mode":          func(b *Batch) { b.SetInode(in) },
		"attrs without flag":  func(b *Batch) { b.SetInode(Inode{Ino: 1, Key: "k", Inline: true, Data: []byte{}, UID: 5}) },
		"directory mode":      func(b *Batch) { b.SetDir(Dir{Path: "d", Mode: 0o10000}) },
		"directory path long": func(b *Batch) { b.SetDir(Dir{Path: strings.Repeat("d", MaxKeyLen+1)}) },
		"delete path long":    func(b *Batch) { b.DeleteDir(strings.Repeat("d", MaxKeyLen+1)) },
	} {
		b := j.NewBatch()
		b.SetDir(Dir{Path: "good"})
		queue(b)
		if err := b.Commit(true); !errors.Is(err, ErrInvalidRecord) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if st := load(t, j); len(st.Dirs) != 0 || len(st.Inodes) != 0 {
		t.Fatalf("refused batches left records: %+v", st)
	}
}

func TestDirRecordsRoundTripThroughTheJournal(t *testing.T) {
	fs := memfs.New()
	j := openMem(t, fs, Options{})
	want := []Dir{
		{Path: "", Mode: 0o755},
		{Path: "a", Mode: 0o700, UID: 1, GID: 2, MTime: 3, ATime: 4, CTime: 5},
		{Path: "a/b", Mode: 0o755},
		{Path: "a/b/c", Mode: 0o1777},
		{Path: "b", Mode: 0o555},
	}
	b := j.NewBatch()
	for _, d := range want {
		b.SetDir(d)
	}
	b.SetDir(Dir{Path: "gone"})
	b.SetInode(Inode{Ino: 1, Key: "a/file", Inline: true, Data: []byte{}})
	commit(t, b, true)
	b = j.NewBatch()
	b.DeleteDir("gone")
	commit(t, b, true)

	if d, ok, err := j.LookupDir("a"); err != nil || !ok || d != want[1] {
		t.Fatalf("LookupDir(a) = %+v %v %v", d, ok, err)
	}
	if _, ok, err := j.LookupDir("gone"); err != nil || ok {
		t.Fatalf("LookupDir(gone) = %v %v", ok, err)
	}
	got, err := j.ScanDirs("a/", "", 10)
	if err != nil || !reflect.DeepEqual(got, want[2:4]) {
		t.Fatalf("ScanDirs(a/) = %+v %v", got, err)
	}
	got, err = j.ScanDirs("", "a/b", 2)
	if err != nil || !reflect.DeepEqual(got, want[3:5]) {
		t.Fatalf("ScanDirs after a/b = %+v %v", got, err)
	}
	closeJournal(t, j)
	j = openMem(t, fs, Options{})
	defer closeJournal(t, j)
	st := load(t, j)
	if !reflect.DeepEqual(st.Dirs, want) {
		t.Fatalf("Load dirs = %+v", st.Dirs)
	}
	snap, err := j.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	if all, err := snap.Dirs(); err != nil || !reflect.DeepEqual(all, want) {
		t.Fatalf("Snapshot.Dirs = %+v %v", all, err)
	}
}

// TestAttrRecordsSurviveRandomRoundTrips encodes random inodes and
// directories and decodes them back; decode then encode is byte-identical.
func TestAttrRecordsSurviveRandomRoundTrips(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	for i := 0; i < 2000; i++ {
		in := Inode{Ino: r.Uint64() | 1, Key: strings.Repeat("k", 1+r.IntN(40)), ModTime: int64(r.Uint64())}
		switch r.IntN(3) {
		case 0:
			in.Inline, in.Data = true, make([]byte, r.IntN(100))
			in.Size = int64(len(in.Data))
		case 1:
			in.External, in.Blocks, in.Size = true, r.Uint64N(1<<40), r.Int64N(1<<46)
		default:
			in = inlineInode(in.Ino, in.Key, r.IntN(MaxInlineExtents+1))
		}
		if r.IntN(2) == 0 {
			in.HasAttr, in.Mode, in.UID, in.GID = true, r.Uint32N(MaxMode+1), r.Uint32(), r.Uint32()
			in.ATime, in.CTime = int64(r.Uint64()), int64(r.Uint64())
		}
		k, v := EncodeInode(in)
		got, err := DecodeInode(k, v)
		if err != nil {
			t.Fatalf("seed %d: %+v: %v", seed, in, err)
		}
		if _, v2 := EncodeInode(got); string(v2) != string(v) {
			t.Fatalf("seed %d: %+v does not re-encode identically", seed, in)
		}
		d := Dir{Path: in.Key, Mode: r.Uint32N(MaxMode + 1), UID: r.Uint32(), GID: r.Uint32(),
			MTime: int64(r.Uint64()), ATime: int64(r.Uint64()), CTime: int64(r.Uint64())}
		dk, dv := EncodeDir(d)
		if gd, err := DecodeDir(dk, dv); err != nil || gd != d {
			t.Fatalf("seed %d: dir %+v -> %+v %v", seed, d, gd, err)
		}
	}
}
