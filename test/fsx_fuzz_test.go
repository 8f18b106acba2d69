package test

// FuzzFsx exists to let the fuzzer search for operation sequences the
// seeded TestFsx runs do not reach: it decodes fuzz input into operations
// and runs them through the same exerciser and model.

import (
	"fmt"
	"hash/fnv"
	"testing"

	"github.com/daxstore/daxstore/dax"
)

// fsxMaxFuzzOps bounds the operations one fuzz input runs.
const fsxMaxFuzzOps = 128

// decodeOp turns the next four bytes of fuzz input into an operation aimed
// at the model's state: byte 0 picks the kind (low nibble) and the policy
// override (high nibble; for a read, 8 to 11 make it a mapread and 12 to 15
// a mapwrite; for an allocate, 8 to 11 a mapopen and 12 to 15 a mapclose),
// bytes 1 to 3 the arguments. It returns false for
// a byte group that means nothing in this state (a pin op with no pins),
// which the caller skips.
func (x *fsx) decodeOp(in [4]byte, nextID *int) (fsxOp, bool) {
	bs := x.bs
	code, a, b, c := in[0], int64(in[1]), int64(in[2]), int64(in[3])
	var policy dax.BreakPolicy
	switch code >> 4 {
	case 12, 13:
		policy = dax.PolicyFail
	case 14:
		policy = dax.PolicyDetach
	case 15:
		policy = dax.PolicyWait
	}
	// An offset at a block (a) and an interesting place in it (b).
	off := func(a, b int64) int64 {
		var in int64
		switch b % 8 {
		case 2:
			in = 1
		case 3:
			in = bs - 1
		case 4:
			in = bs / 2
		case 5, 6, 7:
			in = (b >> 3) * bs / 32
		}
		return (a%fsxMaxBlocks)*bs + in
	}
	// A length: none, a block or two, a byte, a block less one, a few blocks.
	length := func(c int64) int64 {
		switch c % 8 {
		case 0:
			return 0
		case 1:
			return bs
		case 2:
			return 2 * bs
		case 3:
			return 1
		case 4:
			return bs - 1
		}
		return (c>>3)*bs/8 + 1
	}
	seed := a<<16 | b<<8 | c
	pick := func(ps []*fsxPin) *fsxPin {
		if len(ps) == 0 {
			return nil
		}
		return ps[a%int64(len(ps))]
	}
	switch code % 16 {
	case 0, 1:
		return fsxOp{kind: "write", off: off(a, b), n: length(c), seed: seed}, true
	case 2:
		// The high nibble of a read was unused, and the saved inputs all
		// have it zero: its upper values map windows, leaving their
		// meaning unchanged.
		switch {
		case code>>4 >= 12:
			return fsxOp{kind: "mapwrite", off: off(a, b), n: max(1, length(c)), seed: seed}, true
		case code>>4 >= 8:
			return fsxOp{kind: "mapread", off: off(a, b), n: max(1, length(c))}, true
		}
		return fsxOp{kind: "read", off: off(a, b), n: length(c)}, true
	case 3:
		size := off(a, b)
		if c&1 == 1 { // shrink relative to the size
			size = x.size * (c >> 1) / 128
		}
		return fsxOp{kind: "truncate", off: size, policy: policy}, true
	case 4, 5:
		kind := "punch"
		if code%16 == 5 {
			kind = "zero"
		}
		n := length(c)
		if c == 255 {
			n = dax.MaxFileSize - off(a, b)
		}
		return fsxOp{kind: kind, off: off(a, b), n: n, policy: policy}, true
	case 6:
		// As with a read, an allocate's high nibble was unused and is zero
		// in the saved inputs: its upper values open and close long-lived
		// windows.
		switch {
		case code>>4 >= 12:
			if len(x.wins) == 0 {
				return fsxOp{}, false
			}
			return fsxOp{kind: "mapclose", id: x.wins[a%int64(len(x.wins))].id}, true
		case code>>4 >= 8:
			*nextID++
			return fsxOp{kind: "mapopen", off: off(a, b), n: max(1, length(c)), id: *nextID}, true
		}
		return fsxOp{kind: "allocate", off: off(a, b), n: length(c)}, true
	case 7:
		return fsxOp{kind: "put", n: (a%fsxMaxBlocks)*bs + length(c), seed: seed, policy: policy}, true
	case 8, 9:
		if len(x.pins) >= fsxMaxPins {
			return fsxOp{kind: "unpin", id: pick(x.pins).id}, true
		}
		*nextID++
		o := fsxOp{kind: "pin", id: *nextID, writable: code%16 == 8, off: off(a, b), n: length(c)}
		if x.size > 0 { // keep most pins inside the file
			o.off %= x.size
			if o.n == 0 && c != 0 {
				o.n = 1
			}
			o.n = min(o.n, x.size-o.off)
		}
		return o, true
	case 10, 11:
		var ws []*fsxPin
		for _, p := range x.pins {
			if p.writable {
				ws = append(ws, p)
			}
		}
		p := pick(ws)
		if p == nil {
			return fsxOp{}, false
		}
		lo := b * p.n / 256
		return fsxOp{kind: "pwrite", id: p.id, off: lo, n: 1 + c*(p.n-lo-1)/255, seed: seed}, true
	case 12:
		if p := pick(x.pins); p != nil {
			return fsxOp{kind: "pflush", id: p.id}, true
		}
		return fsxOp{}, false
	case 13, 14:
		if p := pick(x.pins); p != nil {
			return fsxOp{kind: "unpin", id: p.id}, true
		}
		return fsxOp{}, false
	}
	return fsxOp{kind: "reopen"}, true
}

// FuzzFsx runs the exerciser on operations decoded from the fuzz input: its
// first byte picks the configuration (bit 0: 4k blocks instead of 512, bit
// 1: the Fail policy instead of Detach), then every four bytes make one
// operation (see decodeOp).
func FuzzFsx(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		cfg := fsxConfig{512, dax.PolicyDetach}
		if data[0]&1 == 1 {
			cfg.blockSize = 4096
		}
		if data[0]&2 == 2 {
			cfg.policy = dax.PolicyFail
		}
		h := fnv.New64a()
		h.Write(data)
		x := newFsx(t, cfg, fmt.Sprintf("fuzz-%016x", h.Sum64()))
		defer x.close()
		x.rerun = "go test ./test -run 'FuzzFsx/<the input file>' (the fuzz engine saved it under testdata/fuzz/FuzzFsx)"
		data = data[1:]
		nextID, done := 0, 0
		x.run(func() (fsxOp, bool) {
			for len(data) >= 4 && done < fsxMaxFuzzOps {
				var in [4]byte
				copy(in[:], data)
				data = data[4:]
				if op, ok := x.decodeOp(in, &nextID); ok {
					done++
					return op, true
				}
			}
			return fsxOp{}, false
		})
	})
}
