package test

// The fsx log format exists so that a failing fsx run can be replayed
// exactly: every operation is one line of text, written on failure and read
// back by -fsx.replay.

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/daxstore/daxstore/dax"
)

// fsxConfig is one store configuration: its block size and default break
// policy.
type fsxConfig struct {
	blockSize int64
	policy    dax.BreakPolicy
}

func (c fsxConfig) String() string {
	return fmt.Sprintf("config bs=%d policy=%v", c.blockSize, c.policy)
}

// parseFsxConfig parses a log's config line, as fsxConfig.String writes it.
func parseFsxConfig(line string) (fsxConfig, error) {
	var c fsxConfig
	var policy string
	if _, err := fmt.Sscanf(line, "config bs=%d policy=%s", &c.blockSize, &policy); err != nil {
		return c, fmt.Errorf("config line %q: %w", line, err)
	}
	p, err := dax.ParseBreakPolicy(policy)
	if err != nil {
		return c, fmt.Errorf("config line %q: %w", line, err)
	}
	c.policy = p
	return c, nil
}

// fsxOp is one operation of the log. Its line format, one op per line:
//
//	write OFF LEN seed=S            WriteAt of LEN bytes made from seed S
//	read OFF LEN                    ReadAt into a LEN-byte buffer
//	truncate SIZE [policy=P]        TruncateWith
//	punch OFF LEN [policy=P]        PunchHoleWith
//	zero OFF LEN [policy=P]         ZeroRangeWith
//	allocate OFF LEN                Allocate
//	put LEN seed=S [policy=P]       PutWith: the whole value replaced
//	pin OFF LEN w|r id=N            Pin, writable or not, called pin N
//	pwrite id=N OFF LEN seed=S      store bytes into pin N's slices at OFF of the pin
//	pflush id=N                     Flush of pin N
//	unpin id=N                      Unpin of pin N
//	mapread OFF LEN                 read-only follow window of [OFF, OFF+LEN) mapped,
//	                                compared with the model and ReadAt, closed
//	mapwrite OFF LEN seed=S         the file extended to OFF+LEN if shorter (Truncate),
//	                                LEN bytes made from seed S stored through a
//	                                writable follow window of the range, flushed, closed
//	mapopen OFF LEN id=N            read-only follow window of [OFF, OFF+LEN) mapped and
//	                                kept, called window N, compared with the model after
//	                                every op until closed (or the store closes under it)
//	mapclose id=N                   Close of window N
//	reopen                          close and open the store (refused while pins are out)
//
// P is detach, wait or fail; without it the store's default applies.
// Lines starting with # are comments; a log starts with a config line.
type fsxOp struct {
	kind     string
	off, n   int64 // truncate: off is the size; put: n is the length
	seed     int64
	id       int
	writable bool
	policy   dax.BreakPolicy
}

func (o fsxOp) String() string {
	pol := ""
	if o.policy != dax.PolicyDefault {
		pol = " policy=" + o.policy.String()
	}
	switch o.kind {
	case "write", "mapwrite":
		return fmt.Sprintf("%s %d %d seed=%d", o.kind, o.off, o.n, o.seed)
	case "read", "allocate", "mapread":
		return fmt.Sprintf("%s %d %d", o.kind, o.off, o.n)
	case "truncate":
		return fmt.Sprintf("truncate %d%s", o.off, pol)
	case "punch", "zero":
		return fmt.Sprintf("%s %d %d%s", o.kind, o.off, o.n, pol)
	case "put":
		return fmt.Sprintf("put %d seed=%d%s", o.n, o.seed, pol)
	case "pin":
		rw := "r"
		if o.writable {
			rw = "w"
		}
		return fmt.Sprintf("pin %d %d %s id=%d", o.off, o.n, rw, o.id)
	case "pwrite":
		return fmt.Sprintf("pwrite id=%d %d %d seed=%d", o.id, o.off, o.n, o.seed)
	case "pflush", "unpin", "mapclose":
		return fmt.Sprintf("%s id=%d", o.kind, o.id)
	case "mapopen":
		return fmt.Sprintf("mapopen %d %d id=%d", o.off, o.n, o.id)
	}
	return o.kind
}

// fsxShapes lists, per kind, how many positional numbers it takes and which
// key=value words it requires or allows.
var fsxShapes = map[string]struct {
	nums     int
	required []string
	policy   bool // policy= allowed
	rw       bool // w or r required
}{
	"write": {2, []string{"seed"}, false, false}, "read": {2, nil, false, false},
	"truncate": {1, nil, true, false}, "punch": {2, nil, true, false}, "zero": {2, nil, true, false},
	"allocate": {2, nil, false, false}, "put": {1, []string{"seed"}, true, false},
	"pin": {2, []string{"id"}, false, true}, "pwrite": {2, []string{"id", "seed"}, false, false},
	"pflush": {0, []string{"id"}, false, false}, "unpin": {0, []string{"id"}, false, false},
	"reopen":  {0, nil, false, false},
	"mapread": {2, nil, false, false}, "mapwrite": {2, []string{"seed"}, false, false},
	"mapopen": {2, []string{"id"}, false, false}, "mapclose": {0, []string{"id"}, false, false},
}

// parseFsxOp parses one line of the log format; it is the inverse of
// fsxOp.String.
func parseFsxOp(line string) (fsxOp, error) {
	words := strings.Fields(line)
	if len(words) == 0 {
		return fsxOp{}, errors.New("empty line")
	}
	op := fsxOp{kind: words[0]}
	shape, ok := fsxShapes[op.kind]
	if !ok {
		return op, fmt.Errorf("unknown operation %q", op.kind)
	}
	var nums []int64
	kv := map[string]string{}
	rw := ""
	for _, w := range words[1:] {
		if k, v, ok := strings.Cut(w, "="); ok {
			if _, dup := kv[k]; dup {
				return op, fmt.Errorf("%s given twice", k)
			}
			kv[k] = v
			continue
		}
		if w == "w" || w == "r" {
			rw = w
			continue
		}
		v, err := strconv.ParseInt(w, 10, 64)
		if err != nil {
			return op, fmt.Errorf("bad number %q", w)
		}
		nums = append(nums, v)
	}
	if len(nums) != shape.nums {
		return op, fmt.Errorf("%s takes %d numbers, got %d", op.kind, shape.nums, len(nums))
	}
	if shape.rw != (rw != "") {
		return op, fmt.Errorf("%s: w or r misplaced", op.kind)
	}
	op.writable = rw == "w"
	for _, k := range shape.required {
		if _, ok := kv[k]; !ok {
			return op, fmt.Errorf("%s needs %s=", op.kind, k)
		}
	}
	for k, v := range kv {
		var err error
		switch {
		case k == "seed":
			op.seed, err = strconv.ParseInt(v, 10, 64)
		case k == "id":
			op.id, err = strconv.Atoi(v)
		case k == "policy" && shape.policy:
			op.policy, err = dax.ParseBreakPolicy(v)
		default:
			err = errors.New("not allowed here")
		}
		if err != nil {
			return op, fmt.Errorf("%s=%s: %w", k, v, err)
		}
	}
	switch op.kind {
	case "truncate":
		op.off = nums[0]
	case "put":
		op.n = nums[0]
	case "write", "read", "punch", "zero", "allocate", "pin", "pwrite", "mapread", "mapwrite", "mapopen":
		op.off, op.n = nums[0], nums[1]
	}
	return op, nil
}

// fsxBytes returns the n bytes an op with this seed writes. They are never
// zero, so a byte that should have been zeroed (or should not) shows.
func fsxBytes(seed, n int64) []byte {
	p := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(p)
	for i, b := range p {
		if b == 0 {
			p[i] = byte(i%255) + 1
		}
	}
	return p
}

// readFsxLog reads a log file: its config line and its operations.
func readFsxLog(path string) (fsxConfig, []fsxOp, error) {
	cfg := fsxConfig{4096, dax.PolicyDetach}
	fh, err := os.Open(path)
	if err != nil {
		return cfg, nil, err
	}
	defer fh.Close()
	var ops []fsxOp
	sc := bufio.NewScanner(fh)
	for ln := 1; sc.Scan(); ln++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "config "):
			if cfg, err = parseFsxConfig(line); err != nil {
				return cfg, nil, fmt.Errorf("%s:%d: %w", path, ln, err)
			}
		default:
			op, err := parseFsxOp(line)
			if err != nil {
				return cfg, nil, fmt.Errorf("%s:%d: %q: %w", path, ln, line, err)
			}
			ops = append(ops, op)
		}
	}
	return cfg, ops, sc.Err()
}

// TestFsxLogFormat proves that every operation survives the trip through
// its log line, and that lines a replay cannot run exactly are rejected.
func TestFsxLogFormat(t *testing.T) {
	good := []fsxOp{
		{kind: "write", off: 4096, n: 100, seed: 7},
		{kind: "read", off: 0, n: 8192},
		{kind: "truncate", off: 10, policy: dax.PolicyFail},
		{kind: "punch", off: 10, n: 5000},
		{kind: "zero", off: 3, n: dax.MaxFileSize - 3, policy: dax.PolicyWait},
		{kind: "allocate", off: 512, n: 0},
		{kind: "put", n: 0, seed: 1, policy: dax.PolicyDetach},
		{kind: "pin", off: 0, n: 8192, writable: true, id: 3},
		{kind: "pin", off: 1, n: 1, id: 4},
		{kind: "pwrite", id: 3, off: 5, n: 6, seed: 9},
		{kind: "pflush", id: 3},
		{kind: "unpin", id: 3},
		{kind: "reopen"},
		{kind: "mapread", off: 4095, n: 3},
		{kind: "mapwrite", off: 8192, n: 100, seed: 11},
		{kind: "mapopen", off: 1, n: 70000, id: 2},
		{kind: "mapclose", id: 2},
	}
	for _, op := range good {
		t.Run("the line "+op.String()+" parses back to its operation", func(t *testing.T) {
			back, err := parseFsxOp(op.String())
			if err != nil || back != op {
				t.Fatalf("parse(%q) = %+v, %v; want %+v", op.String(), back, err, op)
			}
		})
	}
	bad := []struct{ name, line string }{
		{"an unknown operation", "scribble 1 2"},
		{"a missing number", "write 4096 seed=7"},
		{"a missing seed", "write 4096 100"},
		{"a mapwrite without its seed", "mapwrite 0 10"},
		{"a mapread with a policy", "mapread 0 10 policy=fail"},
		{"a mapopen without its id", "mapopen 0 10"},
		{"a number that is not one", "read 0x10 5"},
		{"a policy where none applies", "write 0 1 seed=1 policy=fail"},
		{"an unknown policy", "punch 0 1 policy=sometimes"},
		{"a pin without w or r", "pin 0 1 id=1"},
		{"a key given twice", "unpin id=1 id=2"},
		{"an empty line", "   "},
	}
	for _, c := range bad {
		t.Run("a line with "+c.name+" is rejected", func(t *testing.T) {
			if op, err := parseFsxOp(c.line); err == nil {
				t.Fatalf("parse(%q) = %+v, want an error", c.line, op)
			}
		})
	}
	cfg := fsxConfig{512, dax.PolicyFail}
	if back, err := parseFsxConfig(cfg.String()); err != nil || back != cfg {
		t.Fatalf("config %q parses to %+v, %v", cfg.String(), back, err)
	}
}
