// This file tests the record codecs: round trips of every kind with edge
// values, and rejection of every kind of damage as pmem.ErrCorrupt.

package journal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/daxstore/daxstore/pmem"
)

func labels(n, size int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = strings.Repeat(string(rune('a'+i%26)), size)
	}
	return out
}

func TestMetaRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		m    Meta
	}{
		{"zero meta", Meta{}},
		{"typical meta", Meta{UUID: [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, BlockSize: 4096, BlockCount: 1 << 20, NextInode: 7}},
		{"maximal meta", Meta{UUID: [16]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, BlockSize: math.MaxUint32, BlockCount: math.MaxUint64, NextInode: math.MaxUint64}},
	}
	for _, c := range cases {
		t.Run(c.name+" decodes to itself", func(t *testing.T) {
			k, v := EncodeMeta(c.m)
			got, err := DecodeMeta(k, v)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.m {
				t.Fatalf("got %+v, want %+v", got, c.m)
			}
		})
	}
}

func TestLegacyNameRoundTrip(t *testing.T) {
	cases := []struct {
		name, key string
		ino       uint64
	}{
		{"empty name", "", 1},
		{"short name", "photos/cat.jpg", 42},
		{"name with NUL and high bytes", "a\x00b\xff", math.MaxUint64},
		{"name of the maximum length", strings.Repeat("k", MaxKeyLen), 3},
	}
	for _, c := range cases {
		t.Run(c.name+" decodes to itself", func(t *testing.T) {
			k, v := encodeLegacyName(c.key, c.ino)
			if !isLegacyName(v) {
				t.Fatal("a format 1 name record is not recognised as one")
			}
			name, ino, err := decodeLegacyName(k, v)
			if err != nil {
				t.Fatal(err)
			}
			if name != c.key || ino != c.ino {
				t.Fatalf("got (%q, %d), want (%q, %d)", name, ino, c.key, c.ino)
			}
		})
	}
}

func TestLegacyInodeRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		in   Inode
	}{
		{"zero inode", Inode{}},
		{"typical inode", Inode{Ino: 9, Key: "a/b", Size: 12345, ModTime: 1_700_000_000_123_456_789}},
		{"inode with maximum key and size", Inode{Ino: math.MaxUint64, Key: strings.Repeat("z", MaxKeyLen), Size: math.MaxInt64, ModTime: math.MaxInt64}},
		{"inode with a negative mtime", Inode{Ino: 1, Key: "old", ModTime: math.MinInt64}},
	}
	for _, c := range cases {
		t.Run(c.name+" decodes to itself", func(t *testing.T) {
			k, v := encodeLegacyInode(c.in)
			got, err := decodeLegacyInode(k, v)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.in) {
				t.Fatalf("got %+v, want %+v", got, c.in)
			}
		})
	}
}

// inlineExtents returns n extents of inode ino, one block each, at every
// other file block, so that they neither touch nor overlap.
func inlineExtents(ino uint64, n int) []ExtentRecord {
	if n == 0 {
		return nil
	}
	out := make([]ExtentRecord, n)
	for i := range out {
		out[i] = ExtentRecord{Ino: ino, FileBlock: uint64(2 * i), Start: pmem.Block(1000*ino + uint64(i)), Len: 1, Unwritten: i%3 == 1}
	}
	return out
}

// inlineInode returns a valid inode of n inline extents.
func inlineInode(ino uint64, key string, n int) Inode {
	return Inode{Ino: ino, Key: key, Size: int64(2*n) * 4096, ModTime: int64(ino), Blocks: uint64(n), Extents: inlineExtents(ino, n)}
}

func TestInodeRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		in   Inode
	}{
		{"inode with an empty key and no extents", Inode{Ino: 1}},
		{"typical inode", Inode{Ino: 9, Key: "a/b", Size: 12345, ModTime: 1_700_000_000_123_456_789}},
		{"inode with maximum key and size", Inode{Ino: math.MaxUint64, Key: strings.Repeat("z", MaxKeyLen), Size: math.MaxInt64, ModTime: math.MaxInt64}},
		{"inode with a negative mtime", Inode{Ino: 1, Key: "old", ModTime: math.MinInt64}},
		{"inode with one inline extent", inlineInode(5, "one", 1)},
		{"inode with MaxInlineExtents inline extents", inlineInode(6, "full", MaxInlineExtents)},
		{"inode with extents at the top of both block spaces", Inode{Ino: 7, Key: "top", Blocks: math.MaxUint64 - 1, Extents: []ExtentRecord{
			{Ino: 7, FileBlock: 0, Start: 0, Len: math.MaxUint64 / 2},
			{Ino: 7, FileBlock: math.MaxUint64 / 2, Start: math.MaxUint64 / 2, Len: math.MaxUint64 / 2},
		}}},
		{"inode with touching inline extents", Inode{Ino: 8, Key: "touch", Blocks: 5, Extents: []ExtentRecord{
			{Ino: 8, FileBlock: 0, Start: 50, Len: 2}, {Ino: 8, FileBlock: 2, Start: 10, Len: 3, Unwritten: true},
		}}},
		{"External inode", Inode{Ino: 10, Key: "big", Size: 1 << 40, ModTime: -5, Blocks: 1 << 28, External: true}},
		{"External inode with no blocks", Inode{Ino: 11, Key: "", External: true}},
	}
	for _, c := range cases {
		t.Run(c.name+" decodes to itself", func(t *testing.T) {
			if s := checkInode(c.in); s != "" {
				t.Fatalf("the case itself is invalid: %s", s)
			}
			k, v := EncodeInode(c.in)
			if !bytes.Equal(k, nameKey(c.in.Key)) {
				t.Fatalf("key %x, want the name key %x", k, nameKey(c.in.Key))
			}
			if isLegacyName(v) {
				t.Fatal("a format 2 record reads as format 1")
			}
			got, err := DecodeInode(k, v)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.in) {
				t.Fatalf("got  %+v\nwant %+v", got, c.in)
			}
		})
	}
	t.Run("an External inode's Extents field is not stored", func(t *testing.T) {
		in := Inode{Ino: 3, Key: "x", Blocks: 1, External: true}
		_, plain := EncodeInode(in)
		in.Extents = inlineExtents(3, 1)
		k, v := EncodeInode(in)
		if !bytes.Equal(v, plain) {
			t.Fatal("an External inode's extents were encoded")
		}
		got, err := DecodeInode(k, v)
		if err != nil || got.Extents != nil || !got.External {
			t.Fatalf("got %+v, %v", got, err)
		}
	})
	t.Run("an inode of no extents decodes with nil Extents", func(t *testing.T) {
		k, v := EncodeInode(Inode{Ino: 3, Key: "x", Extents: []ExtentRecord{}})
		got, err := DecodeInode(k, v)
		if err != nil || got.Extents != nil {
			t.Fatalf("got %+v, %v", got, err)
		}
	})
}

func TestFreeLogRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		l    FreeLog
	}{
		{"empty log record", FreeLog{}},
		{"log record of a claim", FreeLog{Seq: 1, Claimed: []pmem.Extent{{Start: 5, Len: 1}}, Files: 1}},
		{"log record of a free", FreeLog{Seq: 2, Freed: []pmem.Extent{{Start: 5, Len: 1}, {Start: 9, Len: 100}}, Files: -1}},
		{"log record of both, unsorted and overlapping", FreeLog{Seq: 1 << 40,
			Claimed: []pmem.Extent{{Start: 90, Len: 3}, {Start: 10, Len: 5}, {Start: 11, Len: 1}},
			Freed:   []pmem.Extent{{Start: 10, Len: 5}}}},
		{"log record at the limits", FreeLog{Seq: math.MaxUint64, Claimed: []pmem.Extent{{Start: 0, Len: math.MaxUint64}},
			Freed: []pmem.Extent{{Start: math.MaxUint64 - 1, Len: 1}}, Files: math.MinInt64}},
		{"log record of the most files", FreeLog{Seq: 3, Files: math.MaxInt64}},
	}
	for _, c := range cases {
		t.Run(c.name+" decodes to itself", func(t *testing.T) {
			k, v := EncodeFreeLog(c.l)
			got, err := DecodeFreeLog(k, v)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.l) {
				t.Fatalf("got %+v, want %+v", got, c.l)
			}
		})
	}
}

func TestFilesRoundTrip(t *testing.T) {
	for _, n := range []uint64{0, 1, 1 << 40, math.MaxUint64} {
		k, v := EncodeFiles(n)
		got, err := DecodeFiles(k, v)
		if err != nil || got != n {
			t.Fatalf("%d decodes as %d, %v", n, got, err)
		}
	}
}

func TestExtentRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		r    ExtentRecord
	}{
		{"written extent", ExtentRecord{Ino: 5, FileBlock: 0, Start: 100, Len: 8}},
		{"unwritten extent", ExtentRecord{Ino: 5, FileBlock: 8, Start: 200, Len: 1, Unwritten: true}},
		{"extent ending at the top of the block space", ExtentRecord{Ino: math.MaxUint64, FileBlock: math.MaxUint64 - 1, Start: math.MaxUint64 - 1, Len: 1}},
		{"extent as long as the block space allows", ExtentRecord{Ino: 0, FileBlock: 0, Start: 0, Len: math.MaxUint64}},
	}
	for _, c := range cases {
		t.Run(c.name+" decodes to itself", func(t *testing.T) {
			k, v := EncodeExtent(c.r)
			got, err := DecodeExtent(k, v)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.r {
				t.Fatalf("got %+v, want %+v", got, c.r)
			}
		})
	}
}

func TestFreeRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		e    pmem.Extent
	}{
		{"one block", pmem.Extent{Start: 1, Len: 1}},
		{"large run", pmem.Extent{Start: 1 << 40, Len: 1 << 30}},
		{"run ending at the top of the block space", pmem.Extent{Start: math.MaxUint64 - 10, Len: 10}},
	}
	for _, c := range cases {
		t.Run(c.name+" decodes to itself", func(t *testing.T) {
			k, v := EncodeFree(c.e)
			got, err := DecodeFree(k, v)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.e {
				t.Fatalf("got %v, want %v", got, c.e)
			}
		})
	}
}

func TestBusyRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		r    BusyRecord
	}{
		{"busy record without labels", BusyRecord{Extent: pmem.Extent{Start: 10, Len: 2}, Ino: 3, Key: "k", FileBlock: 4, Reason: 1, DetachedAt: 99}},
		{"busy record with one empty label", BusyRecord{Extent: pmem.Extent{Start: 10, Len: 2}, Pins: 1, Labels: []string{""}}},
		{"busy record with the maximum labels", BusyRecord{Extent: pmem.Extent{Start: 1, Len: 1}, Key: strings.Repeat("q", MaxKeyLen), Reason: 255, DetachedAt: math.MinInt64, Pins: MaxLabels, Labels: labels(MaxLabels, MaxLabelLen)}},
		{"busy record of a removed file", BusyRecord{Extent: pmem.Extent{Start: math.MaxUint64 - 1, Len: 1}, Ino: math.MaxUint64, FileBlock: math.MaxUint64, DetachedAt: math.MaxInt64, Pins: 2, Labels: []string{"dma", "rdma qp 7"}}},
		{"busy record of 100,000 pins without labels", BusyRecord{Extent: pmem.Extent{Start: 1, Len: 1}, Pins: 100_000}},
		{"busy record of more pins than labels", BusyRecord{Extent: pmem.Extent{Start: 1, Len: 1}, Pins: math.MaxUint64, Labels: labels(MaxLabels, MaxLabelLen)}},
	}
	for _, c := range cases {
		t.Run(c.name+" decodes to itself", func(t *testing.T) {
			k, v := EncodeBusy(c.r)
			got, err := DecodeBusy(k, v)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.r) {
				t.Fatalf("got %+v, want %+v", got, c.r)
			}
		})
	}
	t.Run("a version 1 record decodes with one pin per label", func(t *testing.T) {
		want := BusyRecord{Extent: pmem.Extent{Start: 7, Len: 3}, Ino: 2, Key: "old", FileBlock: 5, Reason: 3, DetachedAt: 42,
			Pins: 2, Labels: []string{"dma", "dma"}}
		k, v := encodeBusyV1(want)
		got, err := DecodeBusy(k, v)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v, want %+v", got, want)
		}
	})
	t.Run("an empty label list decodes as nil", func(t *testing.T) {
		k, v := EncodeBusy(BusyRecord{Extent: pmem.Extent{Start: 1, Len: 1}, Labels: []string{}})
		got, err := DecodeBusy(k, v)
		if err != nil {
			t.Fatal(err)
		}
		if got.Labels != nil {
			t.Fatalf("labels = %#v, want nil", got.Labels)
		}
	})
}

// sample is one valid encoded record with its decoder.
type sample struct {
	name       string
	key, value []byte
	decode     func(key, value []byte) error
}

func decodeMeta(k, v []byte) error     { _, err := DecodeMeta(k, v); return err }
func decodeName(k, v []byte) error     { _, _, err := decodeLegacyName(k, v); return err }
func decodeOldInode(k, v []byte) error { _, err := decodeLegacyInode(k, v); return err }
func decodeInode(k, v []byte) error    { _, err := DecodeInode(k, v); return err }
func decodeFreeLog(k, v []byte) error  { _, err := DecodeFreeLog(k, v); return err }
func decodeFiles(k, v []byte) error    { _, err := DecodeFiles(k, v); return err }
func decodeExtent(k, v []byte) error   { _, err := DecodeExtent(k, v); return err }
func decodeFree(k, v []byte) error     { _, err := DecodeFree(k, v); return err }
func decodeBusy(k, v []byte) error     { _, err := DecodeBusy(k, v); return err }

func samples() []sample {
	var out []sample
	add := func(name string, dec func(k, v []byte) error, k, v []byte) {
		out = append(out, sample{name, k, v, dec})
	}
	k, v := EncodeMeta(Meta{UUID: [16]byte{7}, BlockSize: 4096, BlockCount: 1000, NextInode: 2})
	add("meta", decodeMeta, k, v)
	k, v = encodeLegacyName("dir/file", 77)
	add("format 1 name", decodeName, k, v)
	k, v = encodeLegacyInode(Inode{Ino: 77, Key: "dir/file", Size: 8192, ModTime: 12345})
	add("format 1 inode", decodeOldInode, k, v)
	k, v = EncodeInode(Inode{Ino: 77, Key: "dir/file", Size: 8192, ModTime: 12345})
	add("inode", decodeInode, k, v)
	k, v = EncodeInode(inlineInode(77, "dir/file", 3))
	add("inode with inline extents", decodeInode, k, v)
	k, v = EncodeInode(Inode{Ino: 77, Key: "dir/file", Size: 8192, Blocks: 90, External: true})
	add("External inode", decodeInode, k, v)
	k, v = EncodeFreeLog(FreeLog{Seq: 12, Claimed: []pmem.Extent{{Start: 5, Len: 2}}, Freed: []pmem.Extent{{Start: 300, Len: 1}}, Files: -1})
	add("free log", decodeFreeLog, k, v)
	k, v = EncodeFiles(1234)
	add("file count", decodeFiles, k, v)
	k, v = EncodeExtent(ExtentRecord{Ino: 77, FileBlock: 2, Start: 300, Len: 4, Unwritten: true})
	add("extent", decodeExtent, k, v)
	k, v = EncodeFree(pmem.Extent{Start: 500, Len: 20})
	add("free", decodeFree, k, v)
	k, v = EncodeBusy(BusyRecord{Extent: pmem.Extent{Start: 600, Len: 3}, Ino: 77, Key: "dir/file", FileBlock: 9, Reason: 2, DetachedAt: 5, Pins: 3, Labels: []string{"dma", "video"}})
	add("busy", decodeBusy, k, v)
	k, v = encodeBusyV1(BusyRecord{Extent: pmem.Extent{Start: 600, Len: 3}, Ino: 77, Key: "dir/file", FileBlock: 9, Reason: 2, DetachedAt: 5, Labels: []string{"dma", "video"}})
	add("version 1 busy", decodeBusy, k, v)
	return out
}

func wantCorrupt(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("decode succeeded, want an error wrapping pmem.ErrCorrupt")
	}
	if !errors.Is(err, pmem.ErrCorrupt) {
		t.Fatalf("error %v does not wrap pmem.ErrCorrupt", err)
	}
}

// reseal replaces the body of a value and recomputes its checksum, to build
// values that pass the CRC but are wrong in some other way.
func reseal(key, body []byte) []byte {
	return seal(key, append([]byte(nil), body...))
}

func body(value []byte) []byte { return value[:len(value)-crcLen] }

func TestDecodersRejectDamage(t *testing.T) {
	for _, s := range samples() {
		t.Run("a valid "+s.name+" record decodes", func(t *testing.T) {
			if err := s.decode(s.key, s.value); err != nil {
				t.Fatal(err)
			}
		})
		t.Run("a "+s.name+" value with any bit flipped is corrupt", func(t *testing.T) {
			for i := range s.value {
				for bit := 0; bit < 8; bit++ {
					v := bytes.Clone(s.value)
					v[i] ^= 1 << bit
					if err := s.decode(s.key, v); err == nil || !errors.Is(err, pmem.ErrCorrupt) {
						t.Fatalf("flip byte %d bit %d: err = %v", i, bit, err)
					}
				}
			}
		})
		t.Run("a "+s.name+" key with any byte changed is rejected", func(t *testing.T) {
			for i := range s.key {
				k := bytes.Clone(s.key)
				k[i] ^= 0x21
				wantCorrupt(t, s.decode(k, s.value))
			}
		})
		t.Run("a truncated "+s.name+" value is corrupt", func(t *testing.T) {
			for n := 0; n < len(s.value); n++ {
				wantCorrupt(t, s.decode(s.key, s.value[:n]))
			}
		})
		t.Run("a "+s.name+" value of an unknown version is corrupt", func(t *testing.T) {
			b := bytes.Clone(body(s.value))
			b[0] = 0x7f // no kind has reached this version
			err := s.decode(s.key, reseal(s.key, b))
			wantCorrupt(t, err)
			if !strings.Contains(err.Error(), "unsupported version") {
				t.Fatalf("error %q does not name the version", err)
			}
		})
		t.Run("a "+s.name+" value with trailing bytes is corrupt", func(t *testing.T) {
			b := append(bytes.Clone(body(s.value)), 0)
			wantCorrupt(t, s.decode(s.key, reseal(s.key, b)))
		})
		t.Run("a "+s.name+" value with a missing field is corrupt", func(t *testing.T) {
			b := body(s.value)
			wantCorrupt(t, s.decode(s.key, reseal(s.key, b[:len(b)-1])))
		})
	}
}

func TestValueMovedToAnotherKeyIsCorrupt(t *testing.T) {
	_, oldInoVal := encodeLegacyInode(Inode{Ino: 5, Key: "x", Size: 1})
	_, inoVal := EncodeInode(inlineInode(5, "a", 2))
	_, extVal := EncodeExtent(ExtentRecord{Ino: 5, FileBlock: 0, Start: 10, Len: 1})
	_, freeVal := EncodeFree(pmem.Extent{Start: 10, Len: 4})
	_, nameVal := encodeLegacyName("a", 5)
	_, logVal := EncodeFreeLog(FreeLog{Seq: 5, Claimed: []pmem.Extent{{Start: 10, Len: 4}}})
	cases := []struct {
		name   string
		key    []byte
		value  []byte
		decode func(k, v []byte) error
	}{
		{"a format 1 inode value under the next inode's key", inodeKey(6), oldInoVal, decodeOldInode},
		{"an inode value under another name", nameKey("b"), inoVal, decodeInode},
		{"an inode value under a longer name", nameKey("a\x00"), inoVal, decodeInode},
		{"a free log value under another seq", freeLogKey(6), logVal, decodeFreeLog},
		{"a free log value under the free key of the same number", freeKey(5), logVal, decodeFree},
		{"an extent value under another file block", extentKey(5, 1), extVal, decodeExtent},
		{"an extent value under another inode", extentKey(4, 0), extVal, decodeExtent},
		{"a free value under another start", freeKey(11), freeVal, decodeFree},
		{"a free value under the busy key of the same start", busyKey(10), freeVal, decodeBusy},
		{"a format 1 name value under another name", nameKey("b"), nameVal, decodeName},
	}
	for _, c := range cases {
		t.Run(c.name+" is corrupt", func(t *testing.T) {
			err := c.decode(c.key, c.value)
			wantCorrupt(t, err)
		})
	}
}

func TestDecodersRejectOutOfLimitFields(t *testing.T) {
	uv := func(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }
	cases := []struct {
		name   string
		key    []byte
		body   []byte
		decode func(k, v []byte) error
		reason string
	}{
		{"a format 1 inode key longer than MaxKeyLen", inodeKey(1),
			append(append(uv([]byte{1}, MaxKeyLen+1), strings.Repeat("n", MaxKeyLen+1)...), make([]byte, 16)...), decodeOldInode, "exceeds"},
		{"a format 1 inode with a negative size", inodeKey(1),
			append(uv([]byte{1}, 0), 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), decodeOldInode, "size -"},
		{"a format 1 inode key length in non-canonical uvarint form", inodeKey(1),
			append([]byte{1, 0x80, 0x00}, make([]byte, 16)...), decodeOldInode, "non-canonical"},
		{"a free log with a claimed extent of zero length", freeLogKey(1),
			append(uv(uv(uv(uv([]byte{1}, 1), 5), 0), 0), 0), decodeFreeLog, "zero length"},
		{"a free log with a freed extent that wraps", freeLogKey(1),
			append(uv(uv(uv(uv([]byte{1}, 0), 1), math.MaxUint64), 1), 0), decodeFreeLog, "wraps"},
		{"a free log whose extent count exceeds the value", freeLogKey(1),
			append(uv(uv([]byte{1}, 1000), 5), 1, 0, 0), decodeFreeLog, "exceeds"},
		{"a free log with a huge extent count", freeLogKey(1),
			uv([]byte{1}, math.MaxUint64), decodeFreeLog, "exceeds"},
		{"a free log with a non-canonical file count", freeLogKey(1),
			[]byte{1, 0, 0, 0x80, 0x00}, decodeFreeLog, "non-canonical"},
		{"a file count under a longer key", []byte("KK"), make([]byte, 9), decodeFiles, "malformed key"},
		{"an extent of zero length", extentKey(1, 0),
			append(make([]byte, 1+16), 0), decodeExtent, "zero length"},
		{"an extent whose region blocks wrap", extentKey(1, 0),
			append(binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64([]byte{1}, math.MaxUint64), 2), 0), decodeExtent, "wraps"},
		{"an extent whose file blocks wrap", extentKey(1, math.MaxUint64),
			append(binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64([]byte{1}, 5), 2), 0), decodeExtent, "wraps"},
		{"an extent with an unwritten flag of 2", extentKey(1, 0),
			append(binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64([]byte{1}, 5), 2), 2), decodeExtent, "not 0 or 1"},
		{"a free extent of zero length", freeKey(3), make([]byte, 9), decodeFree, "zero length"},
		{"a meta record under a longer key", []byte("MM"), make([]byte, 1+36), decodeMeta, "malformed key"},
	}
	for _, c := range cases {
		c.body[0] = recordVersion
		t.Run(c.name+" is corrupt", func(t *testing.T) {
			err := c.decode(c.key, reseal(c.key, c.body))
			wantCorrupt(t, err)
			if !strings.Contains(err.Error(), c.reason) {
				t.Fatalf("error %q does not say %q", err, c.reason)
			}
		})
	}

	busyCases := []struct {
		name   string
		r      BusyRecord
		reason string
	}{
		{"a busy record with more than MaxLabels labels", BusyRecord{Extent: pmem.Extent{Start: 1, Len: 1}, Pins: MaxLabels + 1, Labels: labels(MaxLabels+1, 1)}, "label count"},
		{"a busy record with a label longer than MaxLabelLen", BusyRecord{Extent: pmem.Extent{Start: 1, Len: 1}, Pins: 1, Labels: []string{strings.Repeat("l", MaxLabelLen+1)}}, "label length"},
		{"a busy record with more labels than pins", BusyRecord{Extent: pmem.Extent{Start: 1, Len: 1}, Pins: 1, Labels: []string{"a", "b"}}, "2 labels for 1 pins"},
		{"a busy record with a key longer than MaxKeyLen", BusyRecord{Extent: pmem.Extent{Start: 1, Len: 1}, Key: strings.Repeat("k", MaxKeyLen+1)}, "key length"},
		{"a busy record of zero length", BusyRecord{Extent: pmem.Extent{Start: 1}}, "zero length"},
	}
	for _, c := range busyCases {
		t.Run(c.name+" is corrupt", func(t *testing.T) {
			k, v := EncodeBusy(c.r)
			_, err := DecodeBusy(k, v)
			wantCorrupt(t, err)
			if !strings.Contains(err.Error(), c.reason) {
				t.Fatalf("error %q does not say %q", err, c.reason)
			}
		})
	}
}

func TestCorruptErrorNamesTheKey(t *testing.T) {
	k, v := EncodeInode(Inode{Ino: 0x0102030405060708, Key: "x"})
	v[3] ^= 0xff
	_, err := DecodeInode(k, v)
	wantCorrupt(t, err)
	if !strings.Contains(err.Error(), "4e78") {
		t.Fatalf("error %q does not name key 4e78", err)
	}
	k, v = EncodeFreeLog(FreeLog{Seq: 0x0102030405060708})
	v[1] ^= 0xff
	_, err = DecodeFreeLog(k, v)
	wantCorrupt(t, err)
	if !strings.Contains(err.Error(), "4c0102030405060708") {
		t.Fatalf("error %q does not name key 4c0102030405060708", err)
	}
}

func TestKeysSortNumerically(t *testing.T) {
	pairs := []struct {
		name string
		a, b []byte
	}{
		{"inode 255 sorts before inode 256", inodeKey(255), inodeKey(256)},
		{"extent at file block 255 sorts before file block 256", extentKey(1, 255), extentKey(1, 256)},
		{"every extent of inode 1 sorts before inode 2's", extentKey(1, math.MaxUint64), extentKey(2, 0)},
		{"free block 1<<32 sorts after free block 1<<31", freeKey(1 << 31), freeKey(1 << 32)},
		{"free log 255 sorts before free log 256", freeLogKey(255), freeLogKey(256)},
		{"a key sorts before the keys it prefixes", nameKey("a"), nameKey("a\x00")},
	}
	for _, p := range pairs {
		t.Run(p.name, func(t *testing.T) {
			if bytes.Compare(p.a, p.b) >= 0 {
				t.Fatalf("%x !< %x", p.a, p.b)
			}
		})
	}
	t.Run("the extent range of the last inode ends at the next prefix", func(t *testing.T) {
		end := prefixEnd(extentPrefix(math.MaxUint64))
		if !bytes.Equal(end, []byte{prefixExtent + 1}) {
			t.Fatalf("end = %x", end)
		}
	})
}

// inodeBody builds a format 2 inode value body field by field, so that a
// test can store what EncodeInode would not: each extent is {file block,
// start, length, unwritten flag}.
func inodeBody(ino uint64, size int64, blocks uint64, external byte, exts ...[4]uint64) []byte {
	b := []byte{nameVersion}
	b = binary.BigEndian.AppendUint64(b, ino)
	b = binary.BigEndian.AppendUint64(b, uint64(size))
	b = binary.BigEndian.AppendUint64(b, 7) // mtime
	b = binary.AppendUvarint(b, blocks)
	b = append(b, external)
	b = binary.AppendUvarint(b, uint64(len(exts)))
	for _, e := range exts {
		b = binary.AppendUvarint(b, e[0])
		b = binary.AppendUvarint(b, e[1])
		b = binary.AppendUvarint(b, e[2])
		b = append(b, byte(e[3]))
	}
	return b
}

// TestDecodeInodeIsStrict feeds DecodeInode values with a valid checksum
// but a defect in one field: each must fail with ErrCorrupt saying why.
func TestDecodeInodeIsStrict(t *testing.T) {
	key := nameKey("f")
	many := make([][4]uint64, MaxInlineExtents+1)
	for i := range many {
		many[i] = [4]uint64{uint64(2 * i), uint64(100 + i), 1, 0}
	}
	_, legacy := encodeLegacyName("f", 1)
	cases := []struct {
		name   string
		key    []byte
		body   []byte
		reason string
	}{
		{"inode number 0", key, inodeBody(0, 0, 0, 0), "inode number 0"},
		{"a negative size", key, inodeBody(1, -1, 0, 0), "negative size"},
		{"more blocks than the extents map", key, inodeBody(1, 0, 3, 0, [4]uint64{0, 10, 2, 0}), "blocks recorded"},
		{"fewer blocks than the extents map", key, inodeBody(1, 0, 1, 0, [4]uint64{0, 10, 2, 0}), "blocks recorded"},
		{"blocks but no extents", key, inodeBody(1, 0, 1, 0), "blocks recorded"},
		{"more than MaxInlineExtents extents", key, inodeBody(1, 0, uint64(len(many)), 0, many...), "exceeds"},
		{"unsorted extents", key, inodeBody(1, 0, 2, 0, [4]uint64{5, 10, 1, 0}, [4]uint64{0, 11, 1, 0}), "overlaps or precedes"},
		{"overlapping extents", key, inodeBody(1, 0, 4, 0, [4]uint64{0, 10, 2, 0}, [4]uint64{1, 20, 2, 0}), "overlaps or precedes"},
		{"two extents at one file block", key, inodeBody(1, 0, 2, 0, [4]uint64{3, 10, 1, 0}, [4]uint64{3, 20, 1, 0}), "overlaps or precedes"},
		{"an extent of zero length", key, inodeBody(1, 0, 0, 0, [4]uint64{0, 10, 0, 0}), "zero length"},
		{"an extent wrapping the region", key, inodeBody(1, 0, 2, 0, [4]uint64{0, math.MaxUint64, 2, 0}), "wraps"},
		{"an extent wrapping the file", key, inodeBody(1, 0, 2, 0, [4]uint64{math.MaxUint64, 1, 2, 0}), "wraps"},
		{"an unwritten flag of 2", key, inodeBody(1, 0, 1, 0, [4]uint64{0, 10, 1, 2}), "not 0 or 1"},
		{"an External flag of 2", key, inodeBody(1, 0, 0, 2), "not 0 or 1"},
		{"an External inode with inline extents", key, inodeBody(1, 0, 1, 1, [4]uint64{0, 10, 1, 0}), "external inode with inline extents"},
		{"a block count in non-canonical form", key, append(inodeBody(1, 0, 0, 0)[:25], 0x80, 0x00, 0, 0), "non-canonical"},
		{"a key longer than MaxKeyLen", nameKey(strings.Repeat("k", MaxKeyLen+1)), inodeBody(1, 0, 0, 0), "exceeds"},
		{"a format 1 name record", key, body(legacy), "unsupported version"},
		{"a format 1 version byte on a format 2 body", key, append([]byte{nameVersionLegacy}, inodeBody(1, 0, 0, 0)[1:]...), "unsupported version"},
		{"a key of another kind", inodeKey(1), inodeBody(1, 0, 0, 0), "malformed key"},
		{"an empty key", []byte{}, inodeBody(1, 0, 0, 0), "malformed key"},
		{"a trailing byte", key, append(inodeBody(1, 0, 0, 0), 0), "trailing"},
	}
	for _, c := range cases {
		t.Run("an inode record with "+c.name+" is corrupt", func(t *testing.T) {
			_, err := DecodeInode(c.key, reseal(c.key, c.body))
			wantCorrupt(t, err)
			if !strings.Contains(err.Error(), c.reason) {
				t.Fatalf("error %q does not say %q", err, c.reason)
			}
		})
	}
	t.Run("the valid bodies the cases start from decode", func(t *testing.T) {
		for _, b := range [][]byte{
			inodeBody(1, 0, 0, 0),
			inodeBody(1, 0, 2, 0, [4]uint64{0, 10, 1, 0}, [4]uint64{1, 11, 1, 1}),
			inodeBody(1, 0, uint64(MaxInlineExtents), 0, many[:MaxInlineExtents]...),
			inodeBody(1, 0, 99, 1),
		} {
			if _, err := DecodeInode(key, reseal(key, b)); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestEncodeInodeWritesNoLimitChecks pins down that EncodeInode encodes
// whatever it is given and only the decoder and SetInode judge it: an
// invalid inode encoded directly must not decode.
func TestEncodeInodeWritesNoLimitChecks(t *testing.T) {
	for _, in := range []Inode{
		{Key: "zero"},
		{Ino: 1, Key: "mismatch", Blocks: 5, Extents: inlineExtents(1, 2)},
		{Ino: 1, Key: "too many", Blocks: MaxInlineExtents + 1, Extents: inlineExtents(1, MaxInlineExtents+1)},
		{Ino: 1, Key: "unsorted", Blocks: 2, Extents: []ExtentRecord{{Ino: 1, FileBlock: 9, Start: 1, Len: 1}, {Ino: 1, FileBlock: 0, Start: 2, Len: 1}}},
	} {
		k, v := EncodeInode(in)
		if _, err := DecodeInode(k, v); !errors.Is(err, pmem.ErrCorrupt) {
			t.Fatalf("%q: decode = %v, want ErrCorrupt", in.Key, err)
		}
	}
}
