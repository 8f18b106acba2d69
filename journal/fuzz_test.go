// This file holds one fuzz target per decoder and the generator of their
// committed seed corpus under testdata/fuzz.

package journal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/daxstore/daxstore/pmem"
)

// reencoder decodes a record and, on success, encodes the result again.
type reencoder func(key, value []byte) (k, v []byte, err error)

// fuzzDecoder checks that a decoder never panics, fails only with
// pmem.ErrCorrupt, and that whatever it accepts re-encodes to the very same
// bytes. Random bytes almost never carry a valid CRC, so when fixCRC is set
// the value is sealed with a correct checksum first; that lets the fuzzer
// reach the field parsing behind the checksum.
func fuzzDecoder(f *testing.F, re reencoder) {
	f.Fuzz(func(t *testing.T, key, value []byte, fixCRC bool) {
		if fixCRC {
			value = seal(key, bytes.Clone(value))
		}
		k, v, err := re(key, value)
		if err != nil {
			if !errors.Is(err, pmem.ErrCorrupt) {
				t.Fatalf("error %v does not wrap pmem.ErrCorrupt", err)
			}
			return
		}
		if !bytes.Equal(k, key) || !bytes.Equal(v, value) {
			t.Fatalf("decode then encode changed the record:\nkey   %x -> %x\nvalue %x -> %x", key, k, value, v)
		}
	})
}

func reMeta(key, value []byte) ([]byte, []byte, error) {
	m, err := DecodeMeta(key, value)
	if err != nil {
		return nil, nil, err
	}
	k, v := EncodeMeta(m)
	return k, v, nil
}

// reName re-encodes a format 1 name record, which Upgrade still reads.
func reName(key, value []byte) ([]byte, []byte, error) {
	name, ino, err := decodeLegacyName(key, value)
	if err != nil {
		return nil, nil, err
	}
	k, v := encodeLegacyName(name, ino)
	return k, v, nil
}

// reLegacyInode re-encodes a format 1 inode record, which Upgrade reads.
func reLegacyInode(key, value []byte) ([]byte, []byte, error) {
	in, err := decodeLegacyInode(key, value)
	if err != nil {
		return nil, nil, err
	}
	k, v := encodeLegacyInode(in)
	return k, v, nil
}

func reFreeLog(key, value []byte) ([]byte, []byte, error) {
	l, err := DecodeFreeLog(key, value)
	if err != nil {
		return nil, nil, err
	}
	k, v := EncodeFreeLog(l)
	return k, v, nil
}

func reFiles(key, value []byte) ([]byte, []byte, error) {
	n, err := DecodeFiles(key, value)
	if err != nil {
		return nil, nil, err
	}
	k, v := EncodeFiles(n)
	return k, v, nil
}

// reInode also checks that what decodes is what SetInode accepts: a
// decoded inode a batch would refuse could not be written back.
func reInode(key, value []byte) ([]byte, []byte, error) {
	in, err := DecodeInode(key, value)
	if err != nil {
		return nil, nil, err
	}
	if s := checkInode(in); s != "" || in.Ino == 0 {
		return nil, nil, fmt.Errorf("decoded an inode SetInode refuses (%s): %+v", s, in)
	}
	for _, r := range in.Extents {
		if r.Ino != in.Ino {
			return nil, nil, fmt.Errorf("inline extent of inode %d decoded with Ino %d", in.Ino, r.Ino)
		}
	}
	k, v := EncodeInode(in)
	return k, v, nil
}

func reExtent(key, value []byte) ([]byte, []byte, error) {
	r, err := DecodeExtent(key, value)
	if err != nil {
		return nil, nil, err
	}
	k, v := EncodeExtent(r)
	return k, v, nil
}

func reFree(key, value []byte) ([]byte, []byte, error) {
	e, err := DecodeFree(key, value)
	if err != nil {
		return nil, nil, err
	}
	k, v := EncodeFree(e)
	return k, v, nil
}

// reBusy re-encodes in the version the value holds: the journal writes only
// the current one, but a version 1 record must decode exactly, too.
func reBusy(key, value []byte) ([]byte, []byte, error) {
	r, err := DecodeBusy(key, value)
	if err != nil {
		return nil, nil, err
	}
	if value[0] == busyVersionLabels {
		k, v := encodeBusyV1(r)
		return k, v, nil
	}
	k, v := EncodeBusy(r)
	return k, v, nil
}

// reBusyRuns re-encodes a busy record of any version in that version, after
// checking that a decoded run list is one SetBusyRuns would write.
func reBusyRuns(key, value []byte) ([]byte, []byte, error) {
	rs, err := DecodeBusyRuns(key, value)
	if err != nil {
		return nil, nil, err
	}
	if value[0] != busyVersionRuns {
		return reBusy(key, value)
	}
	if s := checkBusyRuns(rs); s != "" {
		return nil, nil, fmt.Errorf("decoded a run list SetBusyRuns refuses: %s", s)
	}
	k, v := EncodeBusyRuns(rs)
	return k, v, nil
}

// encodeBusyV1 encodes r as a version 1 busy record, as the journal wrote
// before busy records counted their pins: r.Pins is not stored.
func encodeBusyV1(r BusyRecord) (key, value []byte) {
	key = busyKey(r.Extent.Start)
	v := appendBusyHead(newValueVersion(busyVersionLabels, 0), r)
	v = binary.AppendUvarint(v, uint64(len(r.Labels)))
	for _, l := range r.Labels {
		v = appendString(v, l)
	}
	return key, seal(key, v)
}

func FuzzDecodeMeta(f *testing.F)        { fuzzDecoder(f, reMeta) }
func FuzzDecodeName(f *testing.F)        { fuzzDecoder(f, reName) }
func FuzzDecodeLegacyInode(f *testing.F) { fuzzDecoder(f, reLegacyInode) }
func FuzzDecodeInode(f *testing.F)       { fuzzDecoder(f, reInode) }
func FuzzDecodeFreeLog(f *testing.F)     { fuzzDecoder(f, reFreeLog) }
func FuzzDecodeFiles(f *testing.F)       { fuzzDecoder(f, reFiles) }
func FuzzDecodeExtent(f *testing.F)      { fuzzDecoder(f, reExtent) }
func FuzzDecodeFree(f *testing.F)        { fuzzDecoder(f, reFree) }
func FuzzDecodeBusy(f *testing.F)        { fuzzDecoder(f, reBusy) }
func FuzzDecodeDir(f *testing.F)         { fuzzDecoder(f, reDir) }

func reDir(key, value []byte) ([]byte, []byte, error) {
	d, err := DecodeDir(key, value)
	if err != nil {
		return nil, nil, err
	}
	k, v := EncodeDir(d)
	return k, v, nil
}
func FuzzDecodeBusyRuns(f *testing.F) { fuzzDecoder(f, reBusyRuns) }

// fuzzSeed is one seed input: key, value and whether the target reseals it.
type fuzzSeed struct {
	name       string
	key, value []byte
	fixCRC     bool
}

// seedsFor returns seeds built from valid records: each as it is, with its
// body only (for the target to reseal), and a few damaged variants.
func seedsFor(records ...[2][]byte) []fuzzSeed {
	var out []fuzzSeed
	for i, r := range records {
		k, v := r[0], r[1]
		b := v[:len(v)-crcLen]
		flipped := bytes.Clone(v)
		flipped[len(flipped)/2] ^= 0x10
		out = append(out,
			fuzzSeed{fmt.Sprintf("valid-%d", i), k, v, false},
			fuzzSeed{fmt.Sprintf("body-%d", i), k, b, true},
			fuzzSeed{fmt.Sprintf("flipped-%d", i), k, flipped, false},
			fuzzSeed{fmt.Sprintf("truncated-body-%d", i), k, b[:len(b)-1], true},
			fuzzSeed{fmt.Sprintf("trailing-body-%d", i), k, append(bytes.Clone(b), 0), true},
		)
	}
	return out
}

func rec(k, v []byte) [2][]byte { return [2][]byte{k, v} }

// fuzzCorpus returns the seed corpus of every fuzz target.
func fuzzCorpus() map[string][]fuzzSeed {
	return map[string][]fuzzSeed{
		"FuzzDecodeMeta": seedsFor(
			rec(EncodeMeta(Meta{})),
			rec(EncodeMeta(Meta{UUID: [16]byte{1, 2, 3}, BlockSize: 4096, BlockCount: 1 << 20, NextInode: 9})),
		),
		"FuzzDecodeName": seedsFor(
			rec(encodeLegacyName("", 1)),
			rec(encodeLegacyName("photos/cat.jpg", 42)),
		),
		"FuzzDecodeLegacyInode": seedsFor(
			rec(encodeLegacyInode(Inode{})),
			rec(encodeLegacyInode(Inode{Ino: 7, Key: "a/b", Size: 4096, ModTime: 1_700_000_000_000_000_000})),
		),
		"FuzzDecodeInode": seedsFor(
			rec(EncodeInode(Inode{Ino: 1})),
			rec(EncodeInode(Inode{Ino: 7, Key: "a/b", Size: 4096, ModTime: 1_700_000_000_000_000_000})),
			rec(EncodeInode(inlineInode(8, "one", 1))),
			rec(EncodeInode(inlineInode(9, "full", MaxInlineExtents))),
			rec(EncodeInode(Inode{Ino: 10, Key: "big", Size: 1 << 40, Blocks: 1 << 30, External: true})),
			rec(EncodeInode(Inode{Ino: 11, Key: "small", Size: 5, Inline: true, Data: []byte("hello")})),
			rec(EncodeInode(Inode{Ino: 12, Key: "empty", Inline: true, Data: []byte{}})),
			rec(EncodeInode(Inode{Ino: 13, Key: "attr", Size: 5, Inline: true, Data: []byte("hello"), HasAttr: true, Mode: 0o644, UID: 1, GID: 2, ATime: 3, CTime: 4})),
			rec(EncodeInode(Inode{Ino: 14, Key: "attr/big", Size: 1 << 40, Blocks: 1 << 30, External: true, HasAttr: true, Mode: 0o7777, ATime: -1})),
			rec(EncodeInode(func() Inode {
				in := inlineInode(15, "attr/few", 3)
				in.HasAttr, in.Mode, in.UID, in.GID, in.CTime = true, 0o600, 1000, 1000, 1_700_000_000_000_000_000
				return in
			}())),
		),
		"FuzzDecodeDir": seedsFor(
			rec(EncodeDir(Dir{})),
			rec(EncodeDir(Dir{Path: "a/b", Mode: 0o755, UID: 1000, GID: 100, MTime: 1, ATime: 2, CTime: 3})),
			rec(EncodeDir(Dir{Path: "x", Mode: 0o7777, MTime: -1})),
		),
		"FuzzDecodeFreeLog": seedsFor(
			rec(EncodeFreeLog(FreeLog{Seq: 1, Files: 1})),
			rec(EncodeFreeLog(FreeLog{Seq: 2, Claimed: []pmem.Extent{{Start: 5, Len: 2}}, Freed: []pmem.Extent{{Start: 1 << 40, Len: 1}, {Start: 9, Len: 3}}, Files: -3})),
			rec(EncodeFreeLog(FreeLog{Seq: math.MaxUint64, Claimed: []pmem.Extent{{Start: 0, Len: math.MaxUint64}}})),
		),
		"FuzzDecodeFiles": seedsFor(
			rec(EncodeFiles(0)),
			rec(EncodeFiles(1<<33)),
		),
		"FuzzDecodeExtent": seedsFor(
			rec(EncodeExtent(ExtentRecord{Ino: 1, FileBlock: 0, Start: 10, Len: 4})),
			rec(EncodeExtent(ExtentRecord{Ino: 2, FileBlock: 8, Start: 20, Len: 1, Unwritten: true})),
			rec(EncodeExtent(ExtentRecord{Ino: math.MaxUint64, FileBlock: math.MaxUint64 - 1, Start: math.MaxUint64 - 1, Len: 1})),
		),
		"FuzzDecodeFree": seedsFor(
			rec(EncodeFree(pmem.Extent{Start: 1, Len: 1})),
			rec(EncodeFree(pmem.Extent{Start: 1 << 40, Len: 1 << 20})),
		),
		"FuzzDecodeBusy": seedsFor(
			rec(EncodeBusy(BusyRecord{Extent: pmem.Extent{Start: 5, Len: 2}})),
			rec(EncodeBusy(BusyRecord{Extent: pmem.Extent{Start: 5, Len: 2}, Ino: 3, Key: "k", FileBlock: 1, Reason: 2, DetachedAt: 99, Pins: 3, Labels: []string{"dma", "", "video buffer"}})),
			rec(EncodeBusy(BusyRecord{Extent: pmem.Extent{Start: 9, Len: 1}, Pins: 1 << 40, Labels: labels(MaxLabels, 4)})),
			rec(EncodeBusy(BusyRecord{Extent: pmem.Extent{Start: 9, Len: 1}, Pins: 100_000})),
			rec(encodeBusyV1(BusyRecord{Extent: pmem.Extent{Start: 5, Len: 2}, Ino: 3, Key: "k", FileBlock: 1, Reason: 2, DetachedAt: 99, Labels: []string{"dma", "", "video buffer"}})),
			rec(encodeBusyV1(BusyRecord{Extent: pmem.Extent{Start: 9, Len: 1}})),
		),
		"FuzzDecodeBusyRuns": seedsFor(
			rec(EncodeBusyRuns([]BusyRecord{{Extent: pmem.Extent{Start: 5, Len: 2}}})),
			rec(EncodeBusyRuns([]BusyRecord{
				{Extent: pmem.Extent{Start: 5, Len: 2}, Ino: 3, Key: "k", FileBlock: 9, Reason: 2, DetachedAt: 99, Pins: 2, Labels: []string{"dma", "video"}},
				{Extent: pmem.Extent{Start: 7, Len: 1}, Ino: 3, Key: "k", FileBlock: 1, Reason: 2, DetachedAt: 99, Pins: 1, Labels: []string{"video"}},
				{Extent: pmem.Extent{Start: 90, Len: 4}, Ino: 3, Key: "k", FileBlock: 94, Reason: 2, DetachedAt: 99, Pins: 1 << 40},
			})),
			rec(EncodeBusy(BusyRecord{Extent: pmem.Extent{Start: 5, Len: 2}, Pins: 1, Labels: []string{"dma"}})),
			rec(encodeBusyV1(BusyRecord{Extent: pmem.Extent{Start: 9, Len: 1}, Labels: []string{"dma"}})),
		),
	}
}

// corpusFile renders a seed in the "go test fuzz v1" format.
func corpusFile(s fuzzSeed) []byte {
	return fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n[]byte(%q)\nbool(%v)\n", s.key, s.value, s.fixCRC)
}

var updateCorpus = flag.Bool("update-fuzz-corpus", false, "rewrite the seed corpus under testdata/fuzz")

// TestFuzzSeedCorpusIsCurrent checks that the committed seed files match the
// codecs; run with -update-fuzz-corpus to regenerate them after a format
// change. Files the fuzzer adds (failing inputs) are left alone.
func TestFuzzSeedCorpusIsCurrent(t *testing.T) {
	for target, seeds := range fuzzCorpus() {
		dir := filepath.Join("testdata", "fuzz", target)
		if *updateCorpus {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for _, s := range seeds {
			path := filepath.Join(dir, "seed-"+s.name)
			want := corpusFile(s)
			if *updateCorpus {
				if err := os.WriteFile(path, want, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			t.Run(target+" seed "+s.name+" is committed and current", func(t *testing.T) {
				got, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run go test -run TestFuzzSeedCorpusIsCurrent -update-fuzz-corpus)", err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("%s is stale (run go test -run TestFuzzSeedCorpusIsCurrent -update-fuzz-corpus)", path)
				}
			})
		}
	}
}

// TestFuzzSeedsBehave runs each decoder's property on its seeds and checks
// that the valid ones really decode, so the corpus starts from good inputs.
func TestFuzzSeedsBehave(t *testing.T) {
	decoders := map[string]reencoder{
		"FuzzDecodeMeta": reMeta, "FuzzDecodeName": reName, "FuzzDecodeLegacyInode": reLegacyInode,
		"FuzzDecodeInode": reInode, "FuzzDecodeFreeLog": reFreeLog, "FuzzDecodeFiles": reFiles,
		"FuzzDecodeExtent": reExtent, "FuzzDecodeFree": reFree, "FuzzDecodeBusy": reBusy,
		"FuzzDecodeBusyRuns": reBusyRuns, "FuzzDecodeDir": reDir,
	}
	for target, seeds := range fuzzCorpus() {
		re := decoders[target]
		for _, s := range seeds {
			t.Run(target+" seed "+s.name+" decodes only if valid", func(t *testing.T) {
				v := s.value
				if s.fixCRC {
					v = seal(s.key, bytes.Clone(v))
				}
				k2, v2, err := re(s.key, v)
				valid := strings.HasPrefix(s.name, "valid-") || strings.HasPrefix(s.name, "body-")
				if valid != (err == nil) {
					t.Fatalf("valid=%v err=%v", valid, err)
				}
				if err == nil && (!bytes.Equal(k2, s.key) || !bytes.Equal(v2, v)) {
					t.Fatal("re-encoding differs")
				}
			})
		}
	}
}
