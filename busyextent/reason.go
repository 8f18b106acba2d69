package busyextent

// This file exists to name why blocks were detached, so that the busy list
// shown to people and written to the journal says what broke the mapping.

import (
	"fmt"
	"strconv"
)

// Reason says which operation detached a busy extent from its file.
// The zero Reason is not valid.
type Reason uint8

// The operations that detach blocks. Their numeric values are written to the
// journal and must never change.
const (
	ReasonTruncate  Reason = iota + 1 // the file was truncated below the blocks
	ReasonPunch                       // a hole was punched over the blocks
	ReasonZero                        // a zero-range replaced the blocks with fresh zeroed ones
	ReasonRemove                      // the file was removed
	ReasonOverwrite                   // an atomic replace (Put) swapped in new blocks
)

var reasonNames = [...]string{
	ReasonTruncate:  "truncate",
	ReasonPunch:     "punch",
	ReasonZero:      "zero",
	ReasonRemove:    "remove",
	ReasonOverwrite: "overwrite",
}

// Valid reports whether r is one of the named reasons.
func (r Reason) Valid() bool { return r >= ReasonTruncate && r <= ReasonOverwrite }

// String returns the reason's lower-case name ("truncate", "punch", "zero",
// "remove", "overwrite"), or "reason(N)" for a value that has no name.
func (r Reason) String() string {
	if r.Valid() {
		return reasonNames[r]
	}
	return "reason(" + strconv.Itoa(int(r)) + ")"
}

// ParseReason returns the Reason whose String is s. Any other input, including
// the "reason(N)" form of unknown values, returns an error wrapping ErrInvalid.
func ParseReason(s string) (Reason, error) {
	for r := ReasonTruncate; r <= ReasonOverwrite; r++ {
		if reasonNames[r] == s {
			return r, nil
		}
	}
	return 0, fmt.Errorf("busyextent: parse reason %q: %w", s, ErrInvalid)
}

// MarshalText encodes r as its name, so that JSON snapshots of the busy set
// read "punch" rather than 2. Unknown values encode as "reason(N)".
func (r Reason) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText decodes a name written by MarshalText; it leaves r unchanged
// and returns an error wrapping ErrInvalid for anything else.
func (r *Reason) UnmarshalText(b []byte) error {
	v, err := ParseReason(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}
