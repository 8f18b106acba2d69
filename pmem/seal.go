// This file holds the seal: a record in block 0, after the superblock, in
// which the store notes how far its journal is known to be durable, so that
// a journal that later comes back shorter is recognised as damaged.

package pmem

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
)

// The seal record: a uint64 and the CRC32C of the record's tag and that
// uint64, all little-endian, in the second cache line of block 0, apart from
// the superblock's line. A region written before the seal existed holds
// zeros there, which read as seal 0. The record lies within one cache line
// and is flushed as one, so a power cut leaves the old record or the new one;
// a record whose checksum does not match (a tear, or damage) reads as 0 too,
// which only means nothing is checked.
const (
	sealOff    = 64 // byte offset in block 0; the superblock ends at 44
	sealLen    = 12 // uint64 seal + uint32 CRC32C
	sealCRCOff = sealOff + 8
)

// sealTag starts the checksummed bytes, so that a region whose reserved
// bytes hold stray non-zero data is unlikely to read as a seal.
const sealTag = "daxseal"

func sealSum(v []byte) uint32 {
	return crc32.Update(crc32.Checksum([]byte(sealTag), castagnoli), castagnoli, v)
}

// Seal returns the seal last stored with SetSeal and flushed, or 0 for a
// region that never had one, one whose record is torn or damaged, or a
// closed region.
func (r *Region) Seal() uint64 {
	m := r.m.Load()
	if m == nil || len(m.data) < sealOff+sealLen {
		return 0
	}
	rec := m.data[sealOff : sealOff+sealLen]
	v := binary.LittleEndian.Uint64(rec)
	if v == 0 || binary.LittleEndian.Uint32(rec[8:]) != sealSum(rec[:8]) {
		return 0
	}
	return v
}

// SetSeal stores v as the region's seal and flushes it, as Flush does:
// once it returns nil, v survives a crash or a power cut (on emulated media,
// unless the power is off). The region gives v no meaning; the store keeps
// there the journal position it knows to be durable. It fails on a closed
// region and on one opened read-only. SetSeal is not safe for concurrent use
// with itself.
func (r *Region) SetSeal(v uint64) error {
	m := r.m.Load()
	if m == nil {
		return fmt.Errorf("pmem: set seal of %s: %w", r.path, os.ErrClosed)
	}
	if r.ro {
		return fmt.Errorf("pmem: set seal of %s: the region is open read-only", r.path)
	}
	var rec [sealLen]byte
	binary.LittleEndian.PutUint64(rec[:], v)
	binary.LittleEndian.PutUint32(rec[8:], sealSum(rec[:8]))
	copy(m.data[sealOff:], rec[:])
	if err := r.flush(m, sealOff, sealLen); err != nil {
		return fmt.Errorf("pmem: set seal of %s: %w", r.path, err)
	}
	return nil
}
