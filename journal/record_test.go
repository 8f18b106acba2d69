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

func TestNameRoundTrip(t *testing.T) {
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
			k, v := EncodeName(c.key, c.ino)
			name, ino, err := DecodeName(k, v)
			if err != nil {
				t.Fatal(err)
			}
			if name != c.key || ino != c.ino {
				t.Fatalf("got (%q, %d), want (%q, %d)", name, ino, c.key, c.ino)
			}
		})
	}
}

func TestInodeRoundTrip(t *testing.T) {
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
			k, v := EncodeInode(c.in)
			got, err := DecodeInode(k, v)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.in {
				t.Fatalf("got %+v, want %+v", got, c.in)
			}
		})
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

func decodeMeta(k, v []byte) error   { _, err := DecodeMeta(k, v); return err }
func decodeName(k, v []byte) error   { _, _, err := DecodeName(k, v); return err }
func decodeInode(k, v []byte) error  { _, err := DecodeInode(k, v); return err }
func decodeExtent(k, v []byte) error { _, err := DecodeExtent(k, v); return err }
func decodeFree(k, v []byte) error   { _, err := DecodeFree(k, v); return err }
func decodeBusy(k, v []byte) error   { _, err := DecodeBusy(k, v); return err }

func samples() []sample {
	var out []sample
	add := func(name string, dec func(k, v []byte) error, k, v []byte) {
		out = append(out, sample{name, k, v, dec})
	}
	k, v := EncodeMeta(Meta{UUID: [16]byte{7}, BlockSize: 4096, BlockCount: 1000, NextInode: 2})
	add("meta", decodeMeta, k, v)
	k, v = EncodeName("dir/file", 77)
	add("name", decodeName, k, v)
	k, v = EncodeInode(Inode{Ino: 77, Key: "dir/file", Size: 8192, ModTime: 12345})
	add("inode", decodeInode, k, v)
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
	_, inoVal := EncodeInode(Inode{Ino: 5, Key: "x", Size: 1})
	_, extVal := EncodeExtent(ExtentRecord{Ino: 5, FileBlock: 0, Start: 10, Len: 1})
	_, freeVal := EncodeFree(pmem.Extent{Start: 10, Len: 4})
	_, nameVal := EncodeName("a", 5)
	cases := []struct {
		name   string
		key    []byte
		value  []byte
		decode func(k, v []byte) error
	}{
		{"an inode value under the next inode's key", inodeKey(6), inoVal, decodeInode},
		{"an extent value under another file block", extentKey(5, 1), extVal, decodeExtent},
		{"an extent value under another inode", extentKey(4, 0), extVal, decodeExtent},
		{"a free value under another start", freeKey(11), freeVal, decodeFree},
		{"a free value under the busy key of the same start", busyKey(10), freeVal, decodeBusy},
		{"a name value under another name", nameKey("b"), nameVal, decodeName},
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
		{"a name longer than MaxKeyLen", nameKey(strings.Repeat("n", MaxKeyLen+1)),
			binary.BigEndian.AppendUint64([]byte{1}, 1), decodeName, "exceeds"},
		{"an inode key longer than MaxKeyLen", inodeKey(1),
			append(append(uv([]byte{1}, MaxKeyLen+1), strings.Repeat("n", MaxKeyLen+1)...), make([]byte, 16)...), decodeInode, "exceeds"},
		{"an inode with a negative size", inodeKey(1),
			append(uv([]byte{1}, 0), 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), decodeInode, "negative size"},
		{"an inode key length in non-canonical uvarint form", inodeKey(1),
			append([]byte{1, 0x80, 0x00}, make([]byte, 16)...), decodeInode, "non-canonical"},
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
	if !strings.Contains(err.Error(), "490102030405060708") {
		t.Fatalf("error %q does not name key 490102030405060708", err)
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
