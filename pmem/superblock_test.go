// This file tests the superblock encoding: round trips, the documented byte
// layout, rejection of every kind of damage, and the decoder fuzz target.

package pmem

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"strings"
	"testing"
)

func validSuperblock() Superblock {
	return Superblock{
		Version:    FormatVersion,
		BlockSize:  DefaultBlockSize,
		BlockCount: 1 << 20,
		UUID:       [16]byte{0xf8, 0x1d, 0x4f, 0xae, 0x7d, 0xec, 0x41, 0xd0, 0xa7, 0x65, 0x00, 0xa0, 0xc9, 0x1e, 0x6b, 0xf6},
	}
}

func mustMarshal(t testing.TB, sb Superblock) []byte {
	t.Helper()
	b, err := sb.MarshalBinary()
	if err != nil {
		t.Fatalf("MarshalBinary(%+v): %v", sb, err)
	}
	return b
}

// reseal recomputes the checksum of an encoded superblock after a test has
// changed a field, so that the decoder reaches the field check.
func reseal(b []byte) []byte {
	binary.LittleEndian.PutUint32(b[sbOffCRC:], crc32.Checksum(b[:sbOffCRC], castagnoli))
	return b
}

func TestSuperblockRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		sb   Superblock
	}{
		{"the default block size round-trips", validSuperblock()},
		{"the smallest block size and two blocks round-trip", Superblock{Version: 1, BlockSize: MinBlockSize, BlockCount: 2}},
		{"the largest block size round-trips", Superblock{Version: 1, BlockSize: MaxBlockSize, BlockCount: 7, UUID: [16]byte{15: 1}}},
		{"the largest block count round-trips", Superblock{Version: 1, BlockSize: MinBlockSize, BlockCount: (1<<63 - 1) / MinBlockSize}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := mustMarshal(t, tc.sb)
			if len(b) != SuperblockSize {
				t.Fatalf("encoded length %d, want %d", len(b), SuperblockSize)
			}
			got, err := DecodeSuperblock(append(b, make([]byte, 100)...))
			if err != nil {
				t.Fatalf("DecodeSuperblock: %v", err)
			}
			if got != tc.sb {
				t.Fatalf("decoded %+v, want %+v", got, tc.sb)
			}
		})
	}
}

// TestSuperblockLayout pins the documented byte layout, so that an
// accidental format change fails here before it reaches a user's region.
func TestSuperblockLayout(t *testing.T) {
	b := mustMarshal(t, validSuperblock())
	want := "44415853544f5245" + // "DAXSTORE"
		"01000000" + // version 1, little-endian
		"00100000" + // block size 4096
		"0000100000000000" + // block count 1<<20
		"f81d4fae7dec41d0a76500a0c91e6bf6" // UUID
	if got := hex.EncodeToString(b[:sbOffCRC]); got != want {
		t.Fatalf("layout\n got %s\nwant %s", got, want)
	}
	if got, want := binary.LittleEndian.Uint32(b[sbOffCRC:]), crc32.Checksum(b[:sbOffCRC], castagnoli); got != want {
		t.Fatalf("stored checksum %#x, want CRC32C %#x", got, want)
	}
}

func TestMarshalBinaryRejectsInvalidFields(t *testing.T) {
	cases := []struct {
		name   string
		change func(*Superblock)
		detail string
	}{
		{"an unknown version is rejected", func(sb *Superblock) { sb.Version = 2 }, "unknown format version 2"},
		{"version zero is rejected", func(sb *Superblock) { sb.Version = 0 }, "unknown format version 0"},
		{"a block size that is not a power of two is rejected", func(sb *Superblock) { sb.BlockSize = 4000 }, "bad block size 4000"},
		{"a block size below the minimum is rejected", func(sb *Superblock) { sb.BlockSize = 256 }, "bad block size 256"},
		{"a block size above the maximum is rejected", func(sb *Superblock) { sb.BlockSize = 2 << 20 }, "bad block size"},
		{"a single block is rejected", func(sb *Superblock) { sb.BlockCount = 1 }, "block count 1"},
		{"zero blocks are rejected", func(sb *Superblock) { sb.BlockCount = 0 }, "block count 0"},
		{"a size beyond int64 is rejected", func(sb *Superblock) { sb.BlockCount = 1 << 60 }, "overflow"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sb := validSuperblock()
			tc.change(&sb)
			b, err := sb.MarshalBinary()
			if err == nil || b != nil {
				t.Fatalf("MarshalBinary(%+v) = %x, %v; want nil and an error", sb, b, err)
			}
			if !strings.Contains(err.Error(), tc.detail) {
				t.Fatalf("error %q does not mention %q", err, tc.detail)
			}
		})
	}
}

func TestDecodeSuperblockRejectsDamage(t *testing.T) {
	good := func() []byte { return mustMarshal(t, validSuperblock()) }
	cases := []struct {
		name   string
		input  func() []byte
		detail string
	}{
		{"a nil buffer is short", func() []byte { return nil }, "short: 0 bytes"},
		{"a truncated superblock is short", func() []byte { return good()[:SuperblockSize-1] }, "short: 43 bytes"},
		{"a zeroed block is not a region", func() []byte { return make([]byte, 4096) }, "not a daxstore region"},
		{"text is not a region", func() []byte { return []byte(strings.Repeat("hello, world! ", 10)) }, "not a daxstore region"},
		{"a lower-case magic is not a region", func() []byte { b := good(); copy(b, "daxstore"); return b }, "not a daxstore region"},
		{"a flipped checksum byte is a bad checksum", func() []byte { b := good(); b[sbOffCRC] ^= 1; return b }, "bad checksum"},
		{"a flipped field bit is a bad checksum", func() []byte { b := good(); b[sbOffBlockCount] ^= 0x80; return b }, "bad checksum"},
		{"a flipped UUID bit is a bad checksum", func() []byte { b := good(); b[sbOffUUID+15] ^= 2; return b }, "bad checksum"},
		{"a resealed unknown version is rejected", func() []byte {
			b := good()
			binary.LittleEndian.PutUint32(b[sbOffVersion:], 9)
			return reseal(b)
		}, "unknown format version 9"},
		{"a resealed odd block size is rejected", func() []byte {
			b := good()
			binary.LittleEndian.PutUint32(b[sbOffBlockSize:], 4097)
			return reseal(b)
		}, "bad block size 4097"},
		{"a resealed zero block size is rejected", func() []byte {
			b := good()
			binary.LittleEndian.PutUint32(b[sbOffBlockSize:], 0)
			return reseal(b)
		}, "bad block size 0"},
		{"a resealed single block is rejected", func() []byte {
			b := good()
			binary.LittleEndian.PutUint64(b[sbOffBlockCount:], 1)
			return reseal(b)
		}, "block count 1"},
		{"a resealed overflowing block count is rejected", func() []byte {
			b := good()
			binary.LittleEndian.PutUint64(b[sbOffBlockCount:], 1<<63)
			return reseal(b)
		}, "overflow"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.input()
			before := bytes.Clone(in)
			sb, err := DecodeSuperblock(in)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("DecodeSuperblock = %+v, %v; want an error wrapping ErrCorrupt", sb, err)
			}
			if !strings.Contains(err.Error(), tc.detail) {
				t.Fatalf("error %q does not mention %q", err, tc.detail)
			}
			if sb != (Superblock{}) {
				t.Fatalf("failed decode returned %+v, want the zero Superblock", sb)
			}
			if !bytes.Equal(in, before) {
				t.Fatal("DecodeSuperblock modified its input")
			}
		})
	}
}

// FuzzDecodeSuperblock checks that decoding never panics, that every failure
// wraps ErrCorrupt, and that whatever decodes re-encodes to the same bytes.
// Its seed corpus is in testdata/fuzz/FuzzDecodeSuperblock.
func FuzzDecodeSuperblock(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		sb, err := DecodeSuperblock(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		enc, err := sb.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded %+v but cannot re-encode it: %v", sb, err)
		}
		if !bytes.Equal(enc, b[:SuperblockSize]) {
			t.Fatalf("re-encoding differs\n got %x\nwant %x", enc, b[:SuperblockSize])
		}
	})
}
