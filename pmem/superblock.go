// This file defines block 0 of a region: the superblock, its fixed binary
// encoding and its validation.

package pmem

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/bits"
)

// Region format constants.
const (
	// DefaultBlockSize is the block size Create uses when none is given.
	DefaultBlockSize = 4096
	// MinBlockSize and MaxBlockSize bound the block size; a block size must
	// also be a power of two.
	MinBlockSize = 512
	MaxBlockSize = 1 << 20
	// FormatVersion is the only superblock version this package reads and
	// writes.
	FormatVersion = 1
)

// SuperblockSize is the length in bytes of an encoded superblock. The rest of
// block 0 is zero and reserved, except the seal record (see Region.Seal).
const SuperblockSize = 44

// superblockMagic starts every region, so that a file that is not a region is
// recognised before anything else is read from it.
const superblockMagic = "DAXSTORE"

// Byte offsets of the superblock fields. All integers are little-endian.
const (
	sbOffMagic      = 0  // [8]byte "DAXSTORE"
	sbOffVersion    = 8  // uint32
	sbOffBlockSize  = 12 // uint32
	sbOffBlockCount = 16 // uint64
	sbOffUUID       = 24 // [16]byte
	sbOffCRC        = 40 // uint32 CRC32C (Castagnoli) of bytes [0, 40)
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Superblock describes a region. It is stored at the start of block 0.
type Superblock struct {
	Version    uint32   // format version; FormatVersion for regions this package writes
	BlockSize  uint32   // bytes per block: a power of two in [MinBlockSize, MaxBlockSize]
	BlockCount uint64   // total blocks in the region, including block 0 (the superblock)
	UUID       [16]byte // identity of the store; the journal records the same UUID
}

// MarshalBinary encodes the superblock into exactly SuperblockSize bytes:
//
//	offset  size  field
//	     0     8  magic "DAXSTORE"
//	     8     4  Version     (little-endian)
//	    12     4  BlockSize   (little-endian)
//	    16     8  BlockCount  (little-endian)
//	    24    16  UUID
//	    40     4  CRC32C (Castagnoli) of bytes 0..39 (little-endian)
//
// It returns an error, and no bytes, if a field is invalid: an unknown
// version, a block size that is not a power of two in [MinBlockSize,
// MaxBlockSize], fewer than 2 blocks, or a region size that overflows int64.
func (sb Superblock) MarshalBinary() ([]byte, error) {
	if err := sb.validate(); err != nil {
		return nil, fmt.Errorf("pmem: encode superblock: %w", err)
	}
	b := make([]byte, SuperblockSize)
	copy(b[sbOffMagic:], superblockMagic)
	binary.LittleEndian.PutUint32(b[sbOffVersion:], sb.Version)
	binary.LittleEndian.PutUint32(b[sbOffBlockSize:], sb.BlockSize)
	binary.LittleEndian.PutUint64(b[sbOffBlockCount:], sb.BlockCount)
	copy(b[sbOffUUID:], sb.UUID[:])
	binary.LittleEndian.PutUint32(b[sbOffCRC:], crc32.Checksum(b[:sbOffCRC], castagnoli))
	return b, nil
}

// DecodeSuperblock decodes a superblock from the first SuperblockSize bytes
// of b; later bytes are ignored. Every failure wraps ErrCorrupt and says what
// was wrong: a short buffer, a bad magic (not a daxstore region), a bad
// checksum, an unknown version, a bad block size or fewer than 2 blocks.
// A superblock it accepts re-encodes with MarshalBinary to the same bytes.
func DecodeSuperblock(b []byte) (Superblock, error) {
	sb, err := decodeSuperblock(b)
	if err != nil {
		return Superblock{}, fmt.Errorf("pmem: %w", err)
	}
	return sb, nil
}

// decodeSuperblock is DecodeSuperblock without the package prefix on errors,
// for callers that add their own context.
func decodeSuperblock(b []byte) (Superblock, error) {
	if len(b) < SuperblockSize {
		return Superblock{}, fmt.Errorf("%w superblock: short: %d bytes, need %d", ErrCorrupt, len(b), SuperblockSize)
	}
	if string(b[sbOffMagic:sbOffMagic+len(superblockMagic)]) != superblockMagic {
		return Superblock{}, fmt.Errorf("%w superblock: not a daxstore region (magic %q, want %q)",
			ErrCorrupt, b[sbOffMagic:sbOffMagic+len(superblockMagic)], superblockMagic)
	}
	stored := binary.LittleEndian.Uint32(b[sbOffCRC:])
	if sum := crc32.Checksum(b[:sbOffCRC], castagnoli); sum != stored {
		return Superblock{}, fmt.Errorf("%w superblock: bad checksum: stored %#08x, computed %#08x", ErrCorrupt, stored, sum)
	}
	var sb Superblock
	sb.Version = binary.LittleEndian.Uint32(b[sbOffVersion:])
	sb.BlockSize = binary.LittleEndian.Uint32(b[sbOffBlockSize:])
	sb.BlockCount = binary.LittleEndian.Uint64(b[sbOffBlockCount:])
	copy(sb.UUID[:], b[sbOffUUID:sbOffUUID+16])
	if err := sb.validate(); err != nil {
		return Superblock{}, fmt.Errorf("%w superblock: %w", ErrCorrupt, err)
	}
	return sb, nil
}

// validate checks the fields that MarshalBinary and DecodeSuperblock both
// require; keeping one check for both is what makes every decodable
// superblock encodable (FuzzDecodeSuperblock).
func (sb Superblock) validate() error {
	if sb.Version != FormatVersion {
		return fmt.Errorf("unknown format version %d (this build knows version %d)", sb.Version, FormatVersion)
	}
	if err := checkBlockSize(sb.BlockSize); err != nil {
		return err
	}
	if sb.BlockCount < 2 {
		return fmt.Errorf("block count %d: need at least 2 (the superblock and one data block)", sb.BlockCount)
	}
	if sb.BlockCount > math.MaxInt64/uint64(sb.BlockSize) {
		return fmt.Errorf("%d blocks of %d bytes overflow a 64-bit file size", sb.BlockCount, sb.BlockSize)
	}
	return nil
}

// errBadBlockSize is wrapped by every block size rejection.
var errBadBlockSize = errors.New("bad block size")

// checkBlockSize reports whether bs is a power of two in [MinBlockSize,
// MaxBlockSize].
func checkBlockSize(bs uint32) error {
	if bs < MinBlockSize || bs > MaxBlockSize || bits.OnesCount32(bs) != 1 {
		return fmt.Errorf("%w %d: must be a power of two from %d to %d", errBadBlockSize, bs, MinBlockSize, MaxBlockSize)
	}
	return nil
}
