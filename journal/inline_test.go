package journal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/daxstore/daxstore/internal/memfs"
	"github.com/daxstore/daxstore/pmem"
)

func TestInlineInodeRoundTrip(t *testing.T) {
	for _, in := range []Inode{
		{Ino: 1, Key: "empty", Inline: true, Data: []byte{}},
		{Ino: 2, Key: "small", Size: 5, ModTime: 7, Inline: true, Data: []byte("hello")},
		{Ino: 3, Key: "max", Size: MaxInlineData, Inline: true, Data: bytes.Repeat([]byte{0xa5}, MaxInlineData)},
	} {
		k, v := EncodeInode(in)
		if v[0] != nameVersionInline {
			t.Fatalf("%q: version %d, want %d", in.Key, v[0], nameVersionInline)
		}
		got, err := DecodeInode(k, v)
		if err != nil {
			t.Fatalf("%q: %v", in.Key, err)
		}
		if !reflect.DeepEqual(got, in) {
			t.Fatalf("%q: got %+v", in.Key, got)
		}
	}
	// A file that is not inline is still written as version 2, which a
	// store of the previous release reads.
	if _, v := EncodeInode(Inode{Ino: 4, Key: "blocks", Size: 1, Blocks: 1, Extents: inlineExtents(4, 1)}); v[0] != nameVersion {
		t.Fatalf("block file written as version %d", v[0])
	}
}

// inlineBody builds a version 3 inode value by hand from its fields, so
// that the decoder can be shown forms EncodeInode never writes.
func inlineBody(key []byte, ino []byte, mtime []byte, length uint64, data []byte) []byte {
	v := []byte{nameVersionInline}
	v = append(v, ino...)
	v = append(v, mtime...)
	v = binary.AppendUvarint(v, length)
	v = append(v, data...)
	return seal(key, v)
}

func TestDecodeInodeRefusesBadInlineRecords(t *testing.T) {
	key := nameKey("k")
	mtime := make([]byte, 8)
	cases := map[string][]byte{
		"inode number 0":                inlineBody(key, []byte{0}, mtime, 3, []byte("abc")),
		"non-canonical inode number":    inlineBody(key, []byte{0x89, 0x00}, mtime, 3, []byte("abc")),
		"truncated mtime":               seal(key, append([]byte{nameVersionInline, 9}, mtime[:5]...)),
		"length past the end":           inlineBody(key, []byte{9}, mtime, 4, []byte("abc")),
		"bytes after the data":          inlineBody(key, []byte{9}, mtime, 2, []byte("abc")),
		"more bytes than MaxInlineData": inlineBody(key, []byte{9}, mtime, MaxInlineData+1, make([]byte, MaxInlineData+1)),
		"a key longer than MaxKeyLen":   inlineBody(nameKey(strings.Repeat("k", MaxKeyLen+1)), []byte{9}, mtime, 0, nil),
	}
	for name, v := range cases {
		k := key
		if strings.HasPrefix(name, "a key") {
			k = nameKey(strings.Repeat("k", MaxKeyLen+1))
		}
		if in, err := DecodeInode(k, v); !errors.Is(err, pmem.ErrCorrupt) {
			t.Errorf("%s: DecodeInode = %+v, %v; want ErrCorrupt", name, in, err)
		}
	}
	// The builder makes a valid record when nothing is wrong.
	in, err := DecodeInode(key, inlineBody(key, []byte{9}, mtime, 3, []byte("abc")))
	if err != nil || !in.Inline || in.Ino != 9 || in.Size != 3 || string(in.Data) != "abc" || in.Blocks != 0 || in.Extents != nil {
		t.Fatalf("valid hand-built record: %+v, %v", in, err)
	}
}

func TestLoadRefusesExtentRecordsUnderAnInlineInode(t *testing.T) {
	j := openMem(t, memfs.New(), Options{})
	defer closeJournal(t, j)
	b := j.NewBatch()
	b.SetInode(Inode{Ino: 5, Key: "k", Size: 1, Inline: true, Data: []byte("x")})
	b.SetExtent(ExtentRecord{Ino: 5, FileBlock: 0, Start: 10, Len: 1})
	commit(t, b, true)
	if _, err := j.Load(); !errors.Is(err, pmem.ErrCorrupt) {
		t.Fatalf("Load = %v, want ErrCorrupt: an inline file claims blocks", err)
	}
}

func TestSetInodeRefusesBadInlineInodes(t *testing.T) {
	j := openMem(t, memfs.New(), Options{})
	defer closeJournal(t, j)
	for name, in := range map[string]Inode{
		"too many bytes":       {Ino: 1, Key: "a", Size: MaxInlineData + 1, Inline: true, Data: make([]byte, MaxInlineData+1)},
		"size not the bytes":   {Ino: 1, Key: "a", Size: 2, Inline: true, Data: []byte("x")},
		"blocks too":           {Ino: 1, Key: "a", Size: 1, Blocks: 1, Inline: true, Data: []byte("x"), Extents: inlineExtents(1, 1)},
		"external":             {Ino: 1, Key: "a", Size: 1, Inline: true, Data: []byte("x"), External: true},
		"data but not inline":  {Ino: 1, Key: "a", Size: 1, Data: []byte("x")},
		"key too long, inline": {Ino: 1, Key: strings.Repeat("k", MaxKeyLen+1), Size: 1, Inline: true, Data: []byte("x")},
	} {
		b := j.NewBatch()
		b.SetInode(in)
		if err := b.Commit(true); !errors.Is(err, ErrInvalidRecord) {
			t.Errorf("%s: Commit = %v, want ErrInvalidRecord", name, err)
		}
	}
	b := j.NewBatch()
	b.SetInode(Inode{Ino: 2, Key: "ok", Size: 2, Inline: true, Data: []byte("hi")})
	commit(t, b, true)
	got, ok, err := j.LookupInode("ok")
	if err != nil || !ok || !got.Inline || string(got.Data) != "hi" {
		t.Fatalf("LookupInode = %+v, %v, %v", got, ok, err)
	}
	st := load(t, j)
	if in := st.Inodes[2]; !in.Inline || string(in.Data) != "hi" || len(st.Extents[2]) != 0 {
		t.Fatalf("Load: %+v, extents %v", in, st.Extents[2])
	}
}
