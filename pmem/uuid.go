// This file generates and formats the UUID that ties a region to its journal.

package pmem

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
)

// NewUUID returns a random (version 4, RFC 4122 variant) UUID from
// crypto/rand.
func NewUUID() ([16]byte, error) {
	var u [16]byte
	if _, err := rand.Read(u[:]); err != nil {
		return u, fmt.Errorf("pmem: new uuid: %w", err)
	}
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // variant 10xx (RFC 4122)
	return u, nil
}

// FormatUUID returns u in the canonical lower-case 8-4-4-4-12 form, for
// example "f81d4fae-7dec-41d0-a765-00a0c91e6bf6".
func FormatUUID(u [16]byte) string {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:36], u[10:16])
	return string(b[:])
}

// ParseUUID parses the canonical 8-4-4-4-12 form that FormatUUID writes
// (hex digits in either case). It is the inverse of FormatUUID.
func ParseUUID(s string) ([16]byte, error) {
	var u [16]byte
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, fmt.Errorf("pmem: parse uuid %q: want the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", s)
	}
	groups := [...]struct{ from, to, dst int }{{0, 8, 0}, {9, 13, 4}, {14, 18, 6}, {19, 23, 8}, {24, 36, 10}}
	for _, g := range groups {
		if _, err := hex.Decode(u[g.dst:], []byte(s[g.from:g.to])); err != nil {
			return [16]byte{}, fmt.Errorf("pmem: parse uuid %q: %w", s, err)
		}
	}
	return u, nil
}
