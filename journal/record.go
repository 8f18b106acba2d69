// This file holds the journal's key schema and the versioned, checksummed
// record codecs, so that every byte the journal persists has exactly one
// encoder and one strict decoder.

package journal

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"slices"

	"github.com/daxstore/daxstore/pmem"
)

// Key prefixes, one byte per record kind. Integers in keys are big-endian so
// that Pebble's bytewise order is numeric order.
const (
	prefixMeta    byte = 'M' // "M"
	prefixName    byte = 'N' // 'N' + name bytes: the file's inode (format 2)
	prefixInode   byte = 'I' // 'I' + ino(8): format 1 only, upgraded by Upgrade
	prefixExtent  byte = 'E' // 'E' + ino(8) + fileBlock(8): extents of a file with too many to inline
	prefixFree    byte = 'F' // 'F' + start(8): free space as of the last checkpoint
	prefixFreeLog byte = 'L' // 'L' + seq(8): one commit's change to free space since then
	prefixBusy    byte = 'B' // 'B' + start(8)
	prefixMark    byte = 'C' // "C": the commit mark (see Batch.SetMark)
	prefixFiles   byte = 'K' // "K": the number of files as of the last checkpoint
	prefixDir     byte = 'D' // 'D' + path: an explicit directory ("" is the root's attributes)
)

// Name records have two versions. In format 1 a name record held only its
// inode number, and the inode ('I') and every extent ('E') were records of
// their own, so Open had to read every record to find anything and a Put
// wrote five or six records. In format 2 the name record is the inode: its
// number, size, time, block count and, for files of at most
// MaxInlineExtents extents, the extents themselves, so that looking a key up
// is one point read and a Put of a small file writes this record and one
// free-space log record. Upgrade rewrites a format 1 journal.
//
// Version 3 holds a file whose bytes are stored in the record itself
// (Inode.Inline), with no region blocks, so that storing a small value is
// this one record. It is short, since such records are most of a store of
// small values: the inode number as a uvarint, the modification time, the
// length of the bytes as a uvarint (so a truncated or extended body is
// caught even under a matching checksum) and the bytes. The size is their
// length; there are no blocks or extents. Only inline files are written as version 3; both
// versions decode.
//
// Versions 4 and 5 are versions 2 and 3 followed by the file's attributes
// (Inode.HasAttr): mode, uid, gid, atime and ctime. A file without
// attributes is written as version 2 or 3, byte for byte as before, so
// that stores which never use attributes pay nothing for them.
const (
	nameVersionLegacy     byte = 1 // format 1: the inode number only
	nameVersion           byte = 2 // format 2: the whole inode
	nameVersionInline     byte = 3 // format 2: the whole inode and its bytes
	nameVersionAttr       byte = 4 // version 2 and the attributes
	nameVersionInlineAttr byte = 5 // version 3 and the attributes
)

// MaxMode is the largest permission mode an attribute block holds: the
// permission, set-id and sticky bits.
const MaxMode = 0o7777

// attrLen is the size of an inode record's attribute block.
const attrLen = 4 + 4 + 4 + 8 + 8

// MaxInlineData is the most bytes an inline inode record holds. It keeps
// inline records far below what the journal handles well; a store's
// inline limit (dax.Options.InlineLimit) may not exceed it.
const MaxInlineData = 64 << 10

// MaxInlineExtents is the most extents an inode record holds itself; a file
// with more keeps them in extent records, so that a write into a file of a
// million extents rewrites a few records, not the whole map.
const MaxInlineExtents = 32

// recordVersion is the value format of every record kind but busy. The
// framing - a leading version byte and a trailing CRC32C over the key and the
// value body - is the same for every version, so a future version can be
// told apart from a corrupt value.
const recordVersion byte = 1

// Busy records have three versions. Version 1 held every label of the pins
// on one extent, at most MaxLabels of them, so more pins than that made a
// record the journal refused. Version 2 holds one extent with the number of
// its pins and at most MaxLabels distinct labels, so any number of pins
// fits. Version 3, the one a break writes now, holds a run list: the owner,
// reason and time once, a table of at most MaxLabels labels once, then each
// run with its file block, pin count and indexes into that table, so a break
// that detaches scattered pinned blocks costs one record, not one per block.
// All three decode.
const (
	busyVersionLabels byte = 1 // one extent, labels only; decodes with Pins = len(Labels)
	busyVersion       byte = 2 // one extent, pin count, then the labels
	busyVersionRuns   byte = 3 // a run list sharing owner, reason, time and a label table
)

// Limits on variable-length fields, checked by the Batch methods before
// anything is queued and again by the decoders.
const (
	MaxKeyLen   = 4096 // bytes in a name (a store key)
	MaxLabels   = 64   // distinct labels on one busy record; the pin count has no limit
	MaxLabelLen = 256  // bytes in one label
	// MaxBusyRuns is the most runs one run-list busy record holds. It
	// bounds a record's value (and the rewrite when some of its runs are
	// released) to a few tens of kilobytes in the usual case.
	MaxBusyRuns = 4096
)

// crcLen is the size of the CRC32C trailer of every value.
const crcLen = 4

// ErrInvalidRecord reports a record that the journal refuses to write because
// it could not be read back: an over-long key or label, too many labels, a
// negative size, or an empty or wrapping extent. Nothing is queued.
var ErrInvalidRecord = errors.New("journal: invalid record")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Meta is the store-wide record: the identity of the region the journal
// belongs to and the next inode number to hand out.
type Meta struct {
	// UUID identifies the region the journal belongs to.
	UUID [16]byte
	// BlockSize is the region block size in bytes.
	BlockSize uint32
	// BlockCount is the number of region blocks.
	BlockCount uint64
	// NextInode is the next inode number to hand out.
	NextInode uint64
}

// Inode is one file, stored under its key: its number, size in bytes,
// modification time, the region blocks it maps, and its extents. A file of
// at most MaxInlineExtents extents holds them in Extents; a larger one has
// External set and keeps them in extent records (Batch.SetExtent), which
// LookupInode and Load read back into Extents.
type Inode struct {
	// Ino is the inode number, never reused.
	Ino uint64
	// Key is the file's current name.
	Key string
	// Size is the file size in bytes.
	Size     int64
	ModTime  int64  // unix nanoseconds
	Blocks   uint64 // region blocks mapped: the sum of the extents' lengths
	External bool
	Extents  []ExtentRecord // sorted by FileBlock; Ino of each equals the inode's
	// Inline marks a file whose bytes are Data, held in the record itself:
	// it maps no region blocks (Blocks 0, no extents, not External), and
	// Size equals len(Data), at most MaxInlineData.
	Inline bool
	Data   []byte
	// HasAttr marks a file given attributes (a file-system face of the
	// store sets them); without it Mode, UID, GID, ATime and CTime are 0.
	HasAttr  bool
	Mode     uint32 // permission bits, at most MaxMode
	UID, GID uint32
	ATime    int64 // unix nanoseconds
	CTime    int64 // unix nanoseconds
}

// FreeLog is one commit's change to free space and to the number of files,
// kept from the commit until the next checkpoint (Batch.CheckpointFree):
// the blocks it took from free space and those it gave back, in that order,
// and the files it created (positive) or removed (negative).
type FreeLog struct {
	// Seq orders the records: the commit's sequence number.
	Seq uint64
	// Claimed are the extents the commit took from free space.
	Claimed []pmem.Extent
	// Freed are the extents it gave back, after Claimed.
	Freed []pmem.Extent
	// Files is the change in the number of files.
	Files int64
}

// ExtentRecord maps Len file blocks starting at FileBlock of inode Ino to the
// region blocks starting at Start. Unwritten extents read as zeros.
type ExtentRecord struct {
	// Ino is the inode the extent belongs to.
	Ino uint64
	// FileBlock is the first file block mapped.
	FileBlock uint64
	// Start is the first region block.
	Start pmem.Block
	// Len is the number of blocks.
	Len uint64
	// Unwritten extents are allocated but read as zeros.
	Unwritten bool
}

// BusyRecord is an extent detached from its file while still referenced:
// who owned it (Ino, Key, FileBlock), why (Reason), since when (DetachedAt,
// unix nanoseconds), how many pins held it (Pins) and some of their labels.
type BusyRecord struct {
	// Extent is the detached region blocks.
	Extent pmem.Extent
	// Ino, Key and FileBlock say which file owned the extent, and where.
	Ino       uint64
	Key       string
	FileBlock uint64
	// Reason is why it was detached (the dax break reason code).
	Reason     uint8
	DetachedAt int64 // unix ns
	// Pins counts the pins that held the extent; any number is storable.
	Pins uint64
	// Labels holds labels of those pins: at most MaxLabels, each at most
	// MaxLabelLen bytes, and no more than Pins. Pins beyond len(Labels)
	// are the "N more" a reader shows.
	Labels []string
}

// ---- keys ----

func metaKey() []byte { return []byte{prefixMeta} }

func nameKey(name string) []byte {
	k := make([]byte, 1+len(name))
	k[0] = prefixName
	copy(k[1:], name)
	return k
}

func u64Key(prefix byte, v uint64) []byte {
	k := make([]byte, 9)
	k[0] = prefix
	binary.BigEndian.PutUint64(k[1:], v)
	return k
}

func inodeKey(ino uint64) []byte      { return u64Key(prefixInode, ino) }
func freeKey(start pmem.Block) []byte { return u64Key(prefixFree, uint64(start)) }
func freeLogKey(seq uint64) []byte    { return u64Key(prefixFreeLog, seq) }
func busyKey(start pmem.Block) []byte { return u64Key(prefixBusy, uint64(start)) }
func extentPrefix(ino uint64) []byte  { return u64Key(prefixExtent, ino) }
func extentKey(ino, fb uint64) []byte {
	k := make([]byte, 17)
	k[0] = prefixExtent
	binary.BigEndian.PutUint64(k[1:], ino)
	binary.BigEndian.PutUint64(k[9:], fb)
	return k
}

// prefixEnd returns the smallest key greater than every key that starts with
// prefix. prefix must hold at least one byte below 0xff, which every key of
// this schema does (the kind byte).
func prefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil // unreachable for this schema; nil means "no upper bound"
}

// shortHex renders a key for an error message, eliding the middle of very
// long keys so that messages stay readable.
func shortHex(key []byte) string {
	const limit = 48
	if len(key) <= limit {
		return hex.EncodeToString(key)
	}
	return hex.EncodeToString(key[:limit/2]) + "..." + hex.EncodeToString(key[len(key)-limit/2:])
}

// ---- validation shared by Batch and the decoders ----

// checkRun reports why a run of n blocks starting at start is not storable:
// it must be non-empty and must not wrap around the uint64 block space.
func checkRun(start, n uint64) string {
	if n == 0 {
		return "zero length"
	}
	if start > math.MaxUint64-n {
		return fmt.Sprintf("run %d+%d wraps", start, n)
	}
	return ""
}

func checkName(name string) string {
	if len(name) > MaxKeyLen {
		return fmt.Sprintf("key of %d bytes exceeds %d", len(name), MaxKeyLen)
	}
	return ""
}

func checkLabels(labels []string, pins uint64) string {
	if len(labels) > MaxLabels {
		return fmt.Sprintf("%d labels exceed %d", len(labels), MaxLabels)
	}
	if uint64(len(labels)) > pins {
		return fmt.Sprintf("%d labels for %d pins", len(labels), pins)
	}
	for i, l := range labels {
		if len(l) > MaxLabelLen {
			return fmt.Sprintf("label %d of %d bytes exceeds %d", i, len(l), MaxLabelLen)
		}
	}
	return ""
}

func checkInode(in Inode) string {
	if r := checkName(in.Key); r != "" {
		return r
	}
	if s := checkAttr(in); s != "" {
		return s
	}
	if in.Size < 0 {
		return fmt.Sprintf("negative size %d", in.Size)
	}
	if in.Inline {
		switch {
		case len(in.Data) > MaxInlineData:
			return fmt.Sprintf("%d inline bytes exceed %d", len(in.Data), MaxInlineData)
		case in.Size != int64(len(in.Data)):
			return fmt.Sprintf("size %d but %d inline bytes", in.Size, len(in.Data))
		case in.External || len(in.Extents) > 0 || in.Blocks > 0:
			return fmt.Sprintf("inline file maps %d blocks in %d extents (external %v)", in.Blocks, len(in.Extents), in.External)
		}
		return ""
	}
	if len(in.Data) > 0 {
		return fmt.Sprintf("%d bytes of data in a file that is not inline", len(in.Data))
	}
	if in.External {
		return ""
	}
	if len(in.Extents) > MaxInlineExtents {
		return fmt.Sprintf("%d inline extents exceed %d", len(in.Extents), MaxInlineExtents)
	}
	var blocks uint64
	for i, r := range in.Extents {
		if s := checkExtent(r); s != "" {
			return fmt.Sprintf("extent %d: %s", i, s)
		}
		if r.Ino != in.Ino {
			return fmt.Sprintf("extent %d belongs to inode %d", i, r.Ino)
		}
		if i > 0 && r.FileBlock < in.Extents[i-1].FileBlock+in.Extents[i-1].Len {
			return fmt.Sprintf("extent %d at file block %d overlaps or precedes the one before", i, r.FileBlock)
		}
		blocks += r.Len
	}
	if blocks != in.Blocks {
		return fmt.Sprintf("%d blocks recorded but the extents map %d", in.Blocks, blocks)
	}
	return ""
}

func checkFreeLog(l FreeLog) string {
	for _, list := range [][]pmem.Extent{l.Claimed, l.Freed} {
		for _, e := range list {
			if s := checkRun(uint64(e.Start), e.Len); s != "" {
				return e.String() + ": " + s
			}
		}
	}
	return ""
}

func checkExtent(r ExtentRecord) string {
	if s := checkRun(uint64(r.Start), r.Len); s != "" {
		return "region " + s
	}
	if s := checkRun(r.FileBlock, r.Len); s != "" {
		return "file " + s
	}
	return ""
}

func checkBusy(r BusyRecord) string {
	if s := checkRun(uint64(r.Extent.Start), r.Extent.Len); s != "" {
		return s
	}
	if s := checkName(r.Key); s != "" {
		return s
	}
	return checkLabels(r.Labels, r.Pins)
}

// checkBusyRuns reports why runs cannot be one run-list busy record: there
// must be 1 to MaxBusyRuns runs, each storable as a busy record, in start
// order without overlap, all with the owner, reason and time of the first,
// and with at most MaxLabels distinct labels among them.
func checkBusyRuns(runs []BusyRecord) string {
	if len(runs) == 0 || len(runs) > MaxBusyRuns {
		return fmt.Sprintf("%d runs, want 1 to %d", len(runs), MaxBusyRuns)
	}
	first := &runs[0]
	var distinct []string // at most MaxLabels before the check fails
	for i := range runs {
		r := &runs[i]
		if s := checkBusy(*r); s != "" {
			return fmt.Sprintf("run %d: %s", i, s)
		}
		if i > 0 && r.Extent.Start < runs[i-1].Extent.End() {
			return fmt.Sprintf("run %d %v is not after %v", i, r.Extent, runs[i-1].Extent)
		}
		if r.Ino != first.Ino || r.Key != first.Key || r.Reason != first.Reason || r.DetachedAt != first.DetachedAt {
			return fmt.Sprintf("run %d has another owner, reason or time than run 0", i)
		}
		for _, l := range r.Labels {
			if !slices.Contains(distinct, l) {
				if len(distinct) == MaxLabels {
					return fmt.Sprintf("more than %d distinct labels", MaxLabels)
				}
				distinct = append(distinct, l)
			}
		}
	}
	return ""
}

// ---- value encoding ----

// newValue starts a value body with the version byte.
func newValue(sizeHint int) []byte {
	return newValueVersion(recordVersion, sizeHint)
}

func newValueVersion(version byte, sizeHint int) []byte {
	v := make([]byte, 0, 1+sizeHint+crcLen)
	return append(v, version)
}

func appendString(v []byte, s string) []byte {
	v = binary.AppendUvarint(v, uint64(len(s)))
	return append(v, s...)
}

func appendBool(v []byte, b bool) []byte {
	if b {
		return append(v, 1)
	}
	return append(v, 0)
}

// seal appends the CRC32C of key and body to body. Covering the key means a
// value copied under another key fails its checksum.
func seal(key, body []byte) []byte {
	crc := crc32.Update(crc32.Checksum(key, castagnoli), castagnoli, body)
	return binary.BigEndian.AppendUint32(body, crc)
}

// EncodeMeta returns the key and value of the store's meta record.
func EncodeMeta(m Meta) (key, value []byte) {
	key = metaKey()
	v := newValue(16 + 4 + 8 + 8)
	v = append(v, m.UUID[:]...)
	v = binary.BigEndian.AppendUint32(v, m.BlockSize)
	v = binary.BigEndian.AppendUint64(v, m.BlockCount)
	v = binary.BigEndian.AppendUint64(v, m.NextInode)
	return key, seal(key, v)
}

// encodeLegacyName returns a format 1 name record binding name to inode
// ino. Only tests of Upgrade write one.
func encodeLegacyName(name string, ino uint64) (key, value []byte) {
	key = nameKey(name)
	v := newValueVersion(nameVersionLegacy, 8)
	v = binary.BigEndian.AppendUint64(v, ino)
	return key, seal(key, v)
}

// encodeLegacyInode returns a format 1 inode record. Only tests of Upgrade
// write one.
func encodeLegacyInode(in Inode) (key, value []byte) {
	key = inodeKey(in.Ino)
	v := newValue(binary.MaxVarintLen64 + len(in.Key) + 16)
	v = appendString(v, in.Key)
	v = binary.BigEndian.AppendUint64(v, uint64(in.Size))
	v = binary.BigEndian.AppendUint64(v, uint64(in.ModTime))
	return key, seal(key, v)
}

// EncodeInode returns the key and value of an inode record, stored under
// the file's key. Extents are stored inline unless in.External; an Inline
// file's bytes follow them (version 3). It does not check limits;
// Batch.SetInode does.
func EncodeInode(in Inode) (key, value []byte) {
	key = nameKey(in.Key)
	if in.Inline {
		version := nameVersionInline
		if in.HasAttr {
			version = nameVersionInlineAttr
		}
		v := newValueVersion(version, 2*binary.MaxVarintLen64+8+len(in.Data)+attrLen)
		v = binary.AppendUvarint(v, in.Ino)
		v = binary.BigEndian.AppendUint64(v, uint64(in.ModTime))
		v = binary.AppendUvarint(v, uint64(len(in.Data)))
		v = append(v, in.Data...)
		return key, seal(key, appendAttr(v, in))
	}
	version := nameVersion
	if in.HasAttr {
		version = nameVersionAttr
	}
	v := newValueVersion(version, 8+8+8+2*binary.MaxVarintLen64+1+len(in.Extents)*(3*binary.MaxVarintLen64+1)+attrLen)
	v = binary.BigEndian.AppendUint64(v, in.Ino)
	v = binary.BigEndian.AppendUint64(v, uint64(in.Size))
	v = binary.BigEndian.AppendUint64(v, uint64(in.ModTime))
	v = binary.AppendUvarint(v, in.Blocks)
	v = appendBool(v, in.External)
	if in.External {
		v = binary.AppendUvarint(v, 0)
		return key, seal(key, appendAttr(v, in))
	}
	v = binary.AppendUvarint(v, uint64(len(in.Extents)))
	for _, r := range in.Extents {
		v = binary.AppendUvarint(v, r.FileBlock)
		v = binary.AppendUvarint(v, uint64(r.Start))
		v = binary.AppendUvarint(v, r.Len)
		v = appendBool(v, r.Unwritten)
	}
	return key, seal(key, appendAttr(v, in))
}

// appendAttr appends in's attribute block, if it has one.
func appendAttr(v []byte, in Inode) []byte {
	if !in.HasAttr {
		return v
	}
	v = binary.BigEndian.AppendUint32(v, in.Mode)
	v = binary.BigEndian.AppendUint32(v, in.UID)
	v = binary.BigEndian.AppendUint32(v, in.GID)
	v = binary.BigEndian.AppendUint64(v, uint64(in.ATime))
	return binary.BigEndian.AppendUint64(v, uint64(in.CTime))
}

// checkAttr reports why in's attributes cannot be stored: a mode beyond
// MaxMode, or attribute fields set on a file without HasAttr (which would
// not survive a round trip).
func checkAttr(in Inode) string {
	if in.HasAttr {
		if in.Mode > MaxMode {
			return fmt.Sprintf("mode %#o has bits beyond %#o", in.Mode, MaxMode)
		}
		return ""
	}
	if in.Mode != 0 || in.UID != 0 || in.GID != 0 || in.ATime != 0 || in.CTime != 0 {
		return "attribute fields set on a file without attributes"
	}
	return ""
}

// EncodeFreeLog returns the key and value of a free-space log record. It
// does not check limits; Batch.LogFree does.
func EncodeFreeLog(l FreeLog) (key, value []byte) {
	key = freeLogKey(l.Seq)
	v := newValue(2*binary.MaxVarintLen64 + (len(l.Claimed)+len(l.Freed))*2*binary.MaxVarintLen64)
	for _, list := range [][]pmem.Extent{l.Claimed, l.Freed} {
		v = binary.AppendUvarint(v, uint64(len(list)))
		for _, e := range list {
			v = binary.AppendUvarint(v, uint64(e.Start))
			v = binary.AppendUvarint(v, e.Len)
		}
	}
	v = binary.AppendVarint(v, l.Files)
	return key, seal(key, v)
}

// EncodeFiles returns the key and value of the file count record.
func EncodeFiles(n uint64) (key, value []byte) {
	key = []byte{prefixFiles}
	v := newValue(8)
	v = binary.BigEndian.AppendUint64(v, n)
	return key, seal(key, v)
}

// DecodeFiles decodes the file count record. Any defect wraps
// pmem.ErrCorrupt.
func DecodeFiles(key, value []byte) (uint64, error) {
	const kind = "file count"
	if len(key) != 1 || key[0] != prefixFiles {
		return 0, corruptError(kind, key, "malformed key")
	}
	d := openValue(kind, key, value)
	n := d.u64("count")
	if err := d.done(); err != nil {
		return 0, err
	}
	return n, nil
}

// EncodeExtent returns the key and value of a file extent record. It does not
// check limits; Batch.SetExtent does.
func EncodeExtent(r ExtentRecord) (key, value []byte) {
	key = extentKey(r.Ino, r.FileBlock)
	v := newValue(17)
	v = binary.BigEndian.AppendUint64(v, uint64(r.Start))
	v = binary.BigEndian.AppendUint64(v, r.Len)
	v = appendBool(v, r.Unwritten)
	return key, seal(key, v)
}

// EncodeFree returns the key and value of a free-space extent record. It does
// not check limits; Batch.SetFree does.
func EncodeFree(e pmem.Extent) (key, value []byte) {
	key = freeKey(e.Start)
	v := newValue(8)
	v = binary.BigEndian.AppendUint64(v, e.Len)
	return key, seal(key, v)
}

// EncodeMark returns the key and value of the commit mark record.
func EncodeMark(mark uint64) (key, value []byte) {
	key = []byte{prefixMark}
	v := newValue(8)
	v = binary.BigEndian.AppendUint64(v, mark)
	return key, seal(key, v)
}

// EncodeBusy returns the key and value of a busy extent record, in the
// current version. It does not check limits; Batch.SetBusy does.
func EncodeBusy(r BusyRecord) (key, value []byte) {
	key = busyKey(r.Extent.Start)
	n := 8 + 8 + binary.MaxVarintLen64 + len(r.Key) + 8 + 1 + 8 + 2*binary.MaxVarintLen64
	for _, l := range r.Labels {
		n += binary.MaxVarintLen64 + len(l)
	}
	v := newValueVersion(busyVersion, n)
	v = appendBusyHead(v, r)
	v = binary.AppendUvarint(v, r.Pins)
	v = binary.AppendUvarint(v, uint64(len(r.Labels)))
	for _, l := range r.Labels {
		v = appendString(v, l)
	}
	return key, seal(key, v)
}

// appendBusyHead appends the fields that every busy record version begins
// with.
func appendBusyHead(v []byte, r BusyRecord) []byte {
	v = binary.BigEndian.AppendUint64(v, r.Extent.Len)
	v = binary.BigEndian.AppendUint64(v, r.Ino)
	v = appendString(v, r.Key)
	v = binary.BigEndian.AppendUint64(v, r.FileBlock)
	v = append(v, r.Reason)
	return binary.BigEndian.AppendUint64(v, uint64(r.DetachedAt))
}

// EncodeBusyRuns returns the key and value of a run-list busy record
// (version 3) holding runs, keyed by the start of the first. runs must be
// what Batch.SetBusyRuns accepts; EncodeBusyRuns does not check.
func EncodeBusyRuns(runs []BusyRecord) (key, value []byte) {
	first := runs[0]
	key = busyKey(first.Extent.Start)
	// The label table, in order of first use. At most MaxLabels entries,
	// so a linear search beats hashing every label of every run.
	var table []string
	n := 8 + binary.MaxVarintLen64 + len(first.Key) + 1 + 8 + 2*binary.MaxVarintLen64 + 8*len(runs)
	for i := range runs {
		for _, l := range runs[i].Labels {
			if !slices.Contains(table, l) {
				table = append(table, l)
				n += binary.MaxVarintLen64 + len(l)
			}
		}
	}
	v := newValueVersion(busyVersionRuns, n)
	v = binary.BigEndian.AppendUint64(v, first.Ino)
	v = appendString(v, first.Key)
	v = append(v, first.Reason)
	v = binary.BigEndian.AppendUint64(v, uint64(first.DetachedAt))
	v = binary.AppendUvarint(v, uint64(len(table)))
	for _, l := range table {
		v = appendString(v, l)
	}
	v = binary.AppendUvarint(v, uint64(len(runs)))
	for i := range runs {
		r := &runs[i]
		if i == 0 {
			v = binary.AppendUvarint(v, r.FileBlock)
		} else {
			// The gap since the previous run's end, and the file block
			// as an offset from where the previous run would put it: 0
			// for runs cut from one extent of one file.
			prev := &runs[i-1]
			v = binary.AppendUvarint(v, uint64(r.Extent.Start-prev.Extent.End()))
			v = binary.AppendVarint(v, int64(r.FileBlock-predictFileBlock(prev, r.Extent.Start)))
		}
		v = binary.AppendUvarint(v, r.Extent.Len)
		v = binary.AppendUvarint(v, r.Pins)
		v = binary.AppendUvarint(v, uint64(len(r.Labels)))
		for _, l := range r.Labels {
			v = binary.AppendUvarint(v, uint64(slices.Index(table, l)))
		}
	}
	return key, seal(key, v)
}

// predictFileBlock is the file block that start would have if it lay in
// the same file extent as prev: what a run-list record stores offsets from.
func predictFileBlock(prev *BusyRecord, start pmem.Block) uint64 {
	return prev.FileBlock + uint64(start-prev.Extent.Start)
}

// ---- value decoding ----

// corruptError builds the error every decoder returns: it names the record
// kind and the key in hex, and wraps pmem.ErrCorrupt.
func corruptError(kind string, key []byte, format string, args ...any) error {
	return fmt.Errorf("journal: %s record at key %s: %s: %w",
		kind, shortHex(key), fmt.Sprintf(format, args...), pmem.ErrCorrupt)
}

// decoder reads the fields of one value body. The first failure sticks in
// err and every later read returns zero values, so a decode function reads
// all its fields and checks err once at the end.
type decoder struct {
	kind    string
	key     []byte
	version byte // the value's version byte
	b       []byte
	err     error
}

// openValue checks the framing of value (length, checksum, version) and
// returns a decoder positioned after the version byte.
func openValue(kind string, key, value []byte) *decoder {
	return openVersions(kind, key, value, recordVersion, recordVersion)
}

// openVersions is openValue for a kind whose versions oldest..newest all
// decode; the decoder's version field says which one value holds.
func openVersions(kind string, key, value []byte, oldest, newest byte) *decoder {
	d := &decoder{kind: kind, key: key}
	if len(value) < 1+crcLen {
		d.fail("value of %d bytes is too short", len(value))
		return d
	}
	body := value[:len(value)-crcLen]
	want := binary.BigEndian.Uint32(value[len(value)-crcLen:])
	got := crc32.Update(crc32.Checksum(key, castagnoli), castagnoli, body)
	if got != want {
		d.fail("checksum mismatch (stored %08x, computed %08x)", want, got)
		return d
	}
	if body[0] < oldest || body[0] > newest {
		d.fail("unsupported version %d", body[0])
		return d
	}
	d.version = body[0]
	d.b = body[1:]
	return d
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = corruptError(d.kind, d.key, format, args...)
	}
	d.b = nil
}

func (d *decoder) take(n int, what string) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.b) < n {
		d.fail("truncated %s", what)
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) u64(what string) uint64 {
	if p := d.take(8, what); p != nil {
		return binary.BigEndian.Uint64(p)
	}
	return 0
}

func (d *decoder) u32(what string) uint32 {
	if p := d.take(4, what); p != nil {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}

func (d *decoder) u8(what string) uint8 {
	if p := d.take(1, what); p != nil {
		return p[0]
	}
	return 0
}

func (d *decoder) boolean(what string) bool {
	switch d.u8(what) {
	case 0:
		return false
	case 1:
		return true
	default:
		d.fail("%s is not 0 or 1", what)
		return false
	}
}

// uvarint reads a canonical (shortest-form) uvarint no larger than limit.
// Rejecting over-long forms keeps decode-then-encode byte-identical.
func (d *decoder) uvarint(what string, limit uint64) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad %s", what)
		return 0
	}
	if n != uvarintLen(v) {
		d.fail("non-canonical %s", what)
		return 0
	}
	if v > limit {
		d.fail("%s %d exceeds %d", what, v, limit)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// varint reads a canonical (shortest-form) signed varint.
func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad %s", what)
		return 0
	}
	if n != len(binary.AppendVarint(nil, v)) {
		d.fail("non-canonical %s", what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) str(what string, limit int) string {
	n := d.uvarint(what+" length", uint64(limit))
	return string(d.take(int(n), what))
}

// done fails on trailing bytes and returns the sticky error.
func (d *decoder) done() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	return d.err
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// decodeU64Key parses a prefix+uint64 key.
func decodeU64Key(kind string, prefix byte, key []byte) (uint64, error) {
	if len(key) != 9 || key[0] != prefix {
		return 0, corruptError(kind, key, "malformed key")
	}
	return binary.BigEndian.Uint64(key[1:]), nil
}

// DecodeMeta decodes a meta record. Any defect wraps pmem.ErrCorrupt.
func DecodeMeta(key, value []byte) (Meta, error) {
	const kind = "meta"
	if len(key) != 1 || key[0] != prefixMeta {
		return Meta{}, corruptError(kind, key, "malformed key")
	}
	d := openValue(kind, key, value)
	var m Meta
	copy(m.UUID[:], d.take(16, "uuid"))
	m.BlockSize = d.u32("block size")
	m.BlockCount = d.u64("block count")
	m.NextInode = d.u64("next inode")
	if err := d.done(); err != nil {
		return Meta{}, err
	}
	return m, nil
}

// decodeLegacyName decodes a format 1 name record. Any defect wraps
// pmem.ErrCorrupt.
func decodeLegacyName(key, value []byte) (name string, ino uint64, err error) {
	const kind = "name"
	if len(key) < 1 || key[0] != prefixName {
		return "", 0, corruptError(kind, key, "malformed key")
	}
	d := openVersions(kind, key, value, nameVersionLegacy, nameVersionLegacy)
	ino = d.u64("inode")
	if err := d.done(); err != nil {
		return "", 0, err
	}
	return string(key[1:]), ino, nil
}

// isLegacyName reports whether value is a format 1 name record, by its
// version byte alone; its decoder checks the rest.
func isLegacyName(value []byte) bool { return len(value) > 0 && value[0] == nameVersionLegacy }

// decodeLegacyInode decodes a format 1 inode record. Any defect wraps
// pmem.ErrCorrupt.
func decodeLegacyInode(key, value []byte) (Inode, error) {
	const kind = "inode"
	ino, err := decodeU64Key(kind, prefixInode, key)
	if err != nil {
		return Inode{}, err
	}
	d := openValue(kind, key, value)
	in := Inode{Ino: ino}
	in.Key = d.str("key", MaxKeyLen)
	in.Size = int64(d.u64("size"))
	in.ModTime = int64(d.u64("mtime"))
	if err := d.done(); err != nil {
		return Inode{}, err
	}
	if in.Size < 0 || len(in.Key) > MaxKeyLen {
		return Inode{}, corruptError(kind, key, "size %d, key of %d bytes", in.Size, len(in.Key))
	}
	return in, nil
}

// DecodeInode decodes an inode record (a format 2 name record). Any defect
// wraps pmem.ErrCorrupt; so does a format 1 record, which only Upgrade
// reads. An External inode decodes with no extents.
func DecodeInode(key, value []byte) (Inode, error) {
	const kind = "inode"
	if len(key) < 1 || key[0] != prefixName {
		return Inode{}, corruptError(kind, key, "malformed key")
	}
	if len(key)-1 > MaxKeyLen {
		return Inode{}, corruptError(kind, key, "name of %d bytes exceeds %d", len(key)-1, MaxKeyLen)
	}
	d := openVersions(kind, key, value, nameVersion, nameVersionInlineAttr)
	in := Inode{Key: string(key[1:])}
	if (d.version == nameVersionInline || d.version == nameVersionInlineAttr) && d.err == nil {
		in.Inline = true
		in.Ino = d.uvarint("inode", math.MaxUint64)
		in.ModTime = int64(d.u64("mtime"))
		n := d.uvarint("inline length", MaxInlineData)
		in.Data = bytes.Clone(d.take(int(n), "inline data"))
		if in.Data == nil {
			in.Data = []byte{}
		}
		in.Size = int64(len(in.Data))
	} else {
		in = decodeInodeV2(d, in)
	}
	if d.version == nameVersionAttr || d.version == nameVersionInlineAttr {
		in.HasAttr = true
		in.Mode = d.u32("mode")
		in.UID = d.u32("uid")
		in.GID = d.u32("gid")
		in.ATime = int64(d.u64("atime"))
		in.CTime = int64(d.u64("ctime"))
	}
	if err := d.done(); err != nil {
		return Inode{}, err
	}
	if in.External && len(in.Extents) > 0 {
		return Inode{}, corruptError(kind, key, "external inode with inline extents")
	}
	if in.Ino == 0 {
		return Inode{}, corruptError(kind, key, "inode number 0")
	}
	if s := checkInode(in); s != "" {
		return Inode{}, corruptError(kind, key, "%s", s)
	}
	return in, nil
}

// decodeInodeV2 decodes the fields of a version 2 inode record.
func decodeInodeV2(d *decoder, in Inode) Inode {
	in.Ino = d.u64("inode")
	in.Size = int64(d.u64("size"))
	in.ModTime = int64(d.u64("mtime"))
	in.Blocks = d.uvarint("blocks", math.MaxUint64)
	in.External = d.boolean("external flag")
	n := d.uvarint("extent count", MaxInlineExtents)
	if n > 0 && d.err == nil {
		in.Extents = make([]ExtentRecord, 0, n)
		for i := uint64(0); i < n && d.err == nil; i++ {
			r := ExtentRecord{Ino: in.Ino}
			r.FileBlock = d.uvarint("file block", math.MaxUint64)
			r.Start = pmem.Block(d.uvarint("start", math.MaxUint64))
			r.Len = d.uvarint("length", math.MaxUint64)
			r.Unwritten = d.boolean("unwritten flag")
			in.Extents = append(in.Extents, r)
		}
	}
	return in
}

// DecodeFreeLog decodes a free-space log record. Any defect wraps
// pmem.ErrCorrupt.
func DecodeFreeLog(key, value []byte) (FreeLog, error) {
	const kind = "free log"
	seq, err := decodeU64Key(kind, prefixFreeLog, key)
	if err != nil {
		return FreeLog{}, err
	}
	d := openValue(kind, key, value)
	l := FreeLog{Seq: seq}
	for _, list := range []*[]pmem.Extent{&l.Claimed, &l.Freed} {
		n := d.uvarint("extent count", uint64(len(value)))
		for i := uint64(0); i < n && d.err == nil; i++ {
			e := pmem.Extent{Start: pmem.Block(d.uvarint("start", math.MaxUint64))}
			e.Len = d.uvarint("length", math.MaxUint64)
			*list = append(*list, e)
		}
	}
	l.Files = d.varint("file count change")
	if err := d.done(); err != nil {
		return FreeLog{}, err
	}
	if s := checkFreeLog(l); s != "" {
		return FreeLog{}, corruptError(kind, key, "%s", s)
	}
	return l, nil
}

// DecodeExtent decodes a file extent record. Any defect wraps pmem.ErrCorrupt.
func DecodeExtent(key, value []byte) (ExtentRecord, error) {
	const kind = "extent"
	if len(key) != 17 || key[0] != prefixExtent {
		return ExtentRecord{}, corruptError(kind, key, "malformed key")
	}
	r := ExtentRecord{
		Ino:       binary.BigEndian.Uint64(key[1:9]),
		FileBlock: binary.BigEndian.Uint64(key[9:17]),
	}
	d := openValue(kind, key, value)
	r.Start = pmem.Block(d.u64("start"))
	r.Len = d.u64("length")
	r.Unwritten = d.boolean("unwritten flag")
	if err := d.done(); err != nil {
		return ExtentRecord{}, err
	}
	if s := checkExtent(r); s != "" {
		return ExtentRecord{}, corruptError(kind, key, "%s", s)
	}
	return r, nil
}

// DecodeFree decodes a free-space extent record. Any defect wraps
// pmem.ErrCorrupt.
func DecodeFree(key, value []byte) (pmem.Extent, error) {
	const kind = "free"
	start, err := decodeU64Key(kind, prefixFree, key)
	if err != nil {
		return pmem.Extent{}, err
	}
	d := openValue(kind, key, value)
	e := pmem.Extent{Start: pmem.Block(start), Len: d.u64("length")}
	if err := d.done(); err != nil {
		return pmem.Extent{}, err
	}
	if s := checkRun(start, e.Len); s != "" {
		return pmem.Extent{}, corruptError(kind, key, "%s", s)
	}
	return e, nil
}

// DecodeMark decodes the commit mark record. Any defect wraps
// pmem.ErrCorrupt.
func DecodeMark(key, value []byte) (uint64, error) {
	const kind = "commit mark"
	if len(key) != 1 || key[0] != prefixMark {
		return 0, corruptError(kind, key, "malformed key")
	}
	d := openValue(kind, key, value)
	mark := d.u64("mark")
	if err := d.done(); err != nil {
		return 0, err
	}
	return mark, nil
}

// DecodeBusy decodes a busy extent record of either version. Any defect
// wraps pmem.ErrCorrupt. A record with no labels decodes with a nil Labels
// slice; a version 1 record, which kept no count, decodes with Pins equal to
// its number of labels.
func DecodeBusy(key, value []byte) (BusyRecord, error) {
	const kind = "busy"
	start, err := decodeU64Key(kind, prefixBusy, key)
	if err != nil {
		return BusyRecord{}, err
	}
	d := openVersions(kind, key, value, busyVersionLabels, busyVersion)
	r := BusyRecord{Extent: pmem.Extent{Start: pmem.Block(start)}}
	r.Extent.Len = d.u64("length")
	r.Ino = d.u64("inode")
	r.Key = d.str("key", MaxKeyLen)
	r.FileBlock = d.u64("file block")
	r.Reason = d.u8("reason")
	r.DetachedAt = int64(d.u64("detach time"))
	if d.version == busyVersion {
		r.Pins = d.uvarint("pin count", math.MaxUint64)
	}
	n := d.uvarint("label count", MaxLabels)
	if d.version == busyVersionLabels {
		r.Pins = n
	}
	if n > 0 {
		r.Labels = make([]string, 0, n)
		for i := uint64(0); i < n && d.err == nil; i++ {
			r.Labels = append(r.Labels, d.str("label", MaxLabelLen))
		}
	}
	if err := d.done(); err != nil {
		return BusyRecord{}, err
	}
	if s := checkRun(start, r.Extent.Len); s != "" {
		return BusyRecord{}, corruptError(kind, key, "%s", s)
	}
	if s := checkLabels(r.Labels, r.Pins); s != "" {
		return BusyRecord{}, corruptError(kind, key, "%s", s)
	}
	return r, nil
}

// DecodeBusyRuns decodes a busy record of any version into its runs, in
// start order: one run for versions 1 and 2 (as DecodeBusy), every run of
// the list for version 3, each with the record's owner, reason and time and
// its own pin count and labels. Any defect wraps pmem.ErrCorrupt.
func DecodeBusyRuns(key, value []byte) ([]BusyRecord, error) {
	const kind = "busy"
	start, err := decodeU64Key(kind, prefixBusy, key)
	if err != nil {
		return nil, err
	}
	if len(value) == 0 || value[0] != busyVersionRuns {
		r, err := DecodeBusy(key, value)
		if err != nil {
			return nil, err
		}
		return []BusyRecord{r}, nil
	}
	d := openVersions(kind, key, value, busyVersionRuns, busyVersionRuns)
	var head BusyRecord
	head.Ino = d.u64("inode")
	head.Key = d.str("key", MaxKeyLen)
	head.Reason = d.u8("reason")
	head.DetachedAt = int64(d.u64("detach time"))
	nl := d.uvarint("label table size", MaxLabels)
	table := make([]string, 0, nl)
	for i := uint64(0); i < nl && d.err == nil; i++ {
		table = append(table, d.str("label", MaxLabelLen))
	}
	nr := d.uvarint("run count", MaxBusyRuns)
	if d.err == nil && nr == 0 {
		d.fail("no runs")
	}
	runs := make([]BusyRecord, 0, min(nr, uint64(len(d.b))))
	seen := 0 // table labels used so far: the encoder numbers them in order of first use
	next := pmem.Block(start)
	var prev BusyRecord
	for i := uint64(0); i < nr && d.err == nil; i++ {
		r := head
		r.Extent.Start = next
		if i == 0 {
			r.FileBlock = d.uvarint("file block", math.MaxUint64)
		} else {
			gap := d.uvarint("gap", math.MaxUint64-uint64(next))
			r.Extent.Start = next + pmem.Block(gap)
			r.FileBlock = predictFileBlock(&prev, r.Extent.Start) + uint64(d.varint("file block offset"))
		}
		r.Extent.Len = d.uvarint("length", math.MaxUint64)
		if d.err == nil {
			if s := checkRun(uint64(r.Extent.Start), r.Extent.Len); s != "" {
				d.fail("run %d: %s", i, s)
			}
		}
		r.Pins = d.uvarint("pin count", math.MaxUint64)
		n := d.uvarint("label count", uint64(min(MaxLabels, len(table))))
		if n > 0 && d.err == nil {
			r.Labels = make([]string, 0, n)
			for k := uint64(0); k < n && d.err == nil; k++ {
				x := d.uvarint("label index", uint64(len(table)-1))
				if d.err == nil && x > uint64(seen) {
					d.fail("run %d: label index %d before %d is used", i, x, seen)
				}
				if d.err == nil {
					if x == uint64(seen) {
						seen++
					}
					r.Labels = append(r.Labels, table[x])
				}
			}
		}
		if d.err == nil {
			if s := checkLabels(r.Labels, r.Pins); s != "" {
				d.fail("run %d: %s", i, s)
			}
		}
		next, prev = r.Extent.End(), r
		runs = append(runs, r)
	}
	if err := d.done(); err != nil {
		return nil, err
	}
	// The encoder writes each label once, in order of first use, so that
	// decode-then-encode is byte-identical.
	if seen != len(table) {
		return nil, corruptError(kind, key, "%d of %d table labels are unused", len(table)-seen, len(table))
	}
	for i := range table {
		for _, l := range table[:i] {
			if l == table[i] {
				return nil, corruptError(kind, key, "label %d repeats an earlier one", i)
			}
		}
	}
	return runs, nil
}
