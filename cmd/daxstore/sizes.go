package main

// Byte counts on the command line: sizes, offsets and lengths written as
// 4096, 64KiB, 1GiB or 1.5MiB, checked exactly rather than through floats.

import (
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"unicode"

	"github.com/dustin/go-humanize"
)

// parseSize parses a byte count: a whole number of bytes, optionally with a
// unit that humanize knows (KiB, MiB, GiB, ... and kB, MB, GB, ...), where
// the number may have a fraction ("1.5MiB"). It rejects negative values,
// counts that are not a whole number of bytes, and counts above MaxInt64.
// what names the argument in the error ("size", "offset").
func parseSize(what, s string) (int64, error) {
	t := strings.TrimSpace(s)
	bad := func(why string) error { return fmt.Errorf("invalid %s %q: %s", what, s, why) }
	if t == "" {
		return 0, bad("empty")
	}
	if strings.HasPrefix(t, "-") {
		return 0, bad("must not be negative")
	}
	if n, err := strconv.ParseInt(t, 10, 64); err == nil {
		return n, nil
	} else if errors.Is(err, strconv.ErrRange) {
		return 0, bad("larger than 8 EiB")
	}
	i := strings.IndexFunc(t, func(r rune) bool { return !unicode.IsDigit(r) && r != '.' && r != ',' })
	if i < 0 {
		i = len(t)
	}
	num, unit := strings.ReplaceAll(t[:i], ",", ""), strings.TrimSpace(t[i:])
	mult, err := humanize.ParseBytes("1" + unit)
	if err != nil {
		return 0, bad(fmt.Sprintf("unknown unit %q (write e.g. 4096, 64KiB, 1GiB or 1.5MiB)", unit))
	}
	v, ok := new(big.Rat).SetString(num)
	if !ok || num == "" {
		return 0, bad("not a number (write e.g. 4096, 64KiB, 1GiB or 1.5MiB)")
	}
	v.Mul(v, new(big.Rat).SetUint64(mult))
	if !v.IsInt() {
		return 0, bad("not a whole number of bytes")
	}
	if !v.Num().IsInt64() {
		return 0, bad("larger than 8 EiB")
	}
	return v.Num().Int64(), nil
}

// formatBytes shows a byte count for people: "1.0 MiB".
func formatBytes(n int64) string {
	if n < 0 {
		return "-" + humanize.IBytes(uint64(-n))
	}
	return humanize.IBytes(uint64(n))
}

// formatBlocks shows a block count with the bytes it covers: "256 (1.0 MiB)".
func formatBlocks(blocks uint64, blockSize int64) string {
	return fmt.Sprintf("%d (%s)", blocks, humanize.IBytes(blocks*uint64(blockSize)))
}
