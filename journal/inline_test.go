package journal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"

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

// inlineBody builds a version 3 inode value by hand, so that the decoder
// can be shown fields EncodeInode would never write.
func inlineBody(key []byte, size int64, blocks uint64, extents int, data []byte, declared uint64) []byte {
	v := []byte{nameVersionInline}
	v = binary.BigEndian.AppendUint64(v, 9)
	v = binary.BigEndian.AppendUint64(v, uint64(size))
	v = binary.BigEndian.AppendUint64(v, 0)
	v = binary.AppendUvarint(v, blocks)
	v = append(v, 0) // not external
	v = binary.AppendUvarint(v, uint64(extents))
	for i := 0; i < extents; i++ {
		v = binary.AppendUvarint(v, uint64(i))
		v = binary.AppendUvarint(v, uint64(10+i))
		v = binary.AppendUvarint(v, 1)
		v = append(v, 0)
	}
	v = binary.AppendUvarint(v, declared)
	v = append(v, data...)
	return seal(key, v)
}

func TestDecodeInodeRefusesBadInlineRecords(t *testing.T) {
	key := nameKey("k")
	cases := map[string][]byte{
		"inline file claiming blocks":         inlineBody(key, 3, 1, 1, []byte("abc"), 3),
		"inline file with a block count only": inlineBody(key, 3, 1, 0, []byte("abc"), 3),
		"size differs from the bytes":         inlineBody(key, 4, 0, 0, []byte("abc"), 3),
		"length past the end of the value":    inlineBody(key, 3, 0, 0, []byte("abc"), 4),
		"bytes after the data":                inlineBody(key, 3, 0, 0, []byte("abcd"), 3),
		"length beyond MaxInlineData":         inlineBody(key, MaxInlineData+1, 0, 0, make([]byte, MaxInlineData+1), MaxInlineData+1),
	}
	for name, v := range cases {
		if in, err := DecodeInode(key, v); !errors.Is(err, pmem.ErrCorrupt) {
			t.Errorf("%s: DecodeInode = %+v, %v; want ErrCorrupt", name, in, err)
		}
	}
	// Sanity: the builder makes a valid record when nothing is wrong.
	if _, err := DecodeInode(key, inlineBody(key, 3, 0, 0, []byte("abc"), 3)); err != nil {
		t.Fatalf("valid hand-built record: %v", err)
	}
}

func TestSetInodeRefusesBadInlineInodes(t *testing.T) {
	j := openMem(t, NewMemFS(), Options{})
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
