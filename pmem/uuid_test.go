// This file tests UUID generation, formatting and parsing.

package pmem

import (
	"regexp"
	"testing"
)

var canonicalV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestNewUUIDIsRandomVersion4(t *testing.T) {
	seen := make(map[[16]byte]bool)
	for range 100 {
		u, err := NewUUID()
		if err != nil {
			t.Fatalf("NewUUID: %v", err)
		}
		if s := FormatUUID(u); !canonicalV4.MatchString(s) {
			t.Fatalf("NewUUID gave %s, not a canonical RFC 4122 version 4 UUID", s)
		}
		if seen[u] {
			t.Fatalf("NewUUID repeated %s", FormatUUID(u))
		}
		seen[u] = true
	}
}

func TestFormatUUID(t *testing.T) {
	cases := []struct {
		name string
		u    [16]byte
		want string
	}{
		{"the zero UUID formats as zeros", [16]byte{}, "00000000-0000-0000-0000-000000000000"},
		{"the RFC 4122 example formats canonically", validSuperblock().UUID, "f81d4fae-7dec-41d0-a765-00a0c91e6bf6"},
		{"every byte lands in its group", [16]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 255},
			"00010203-0405-0607-0809-0a0b0c0d0eff"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := FormatUUID(tc.u); got != tc.want {
				t.Fatalf("FormatUUID = %s, want %s", got, tc.want)
			}
			back, err := ParseUUID(tc.want)
			if err != nil || back != tc.u {
				t.Fatalf("ParseUUID(%s) = %x, %v; want %x", tc.want, back, err, tc.u)
			}
		})
	}
}

func TestParseUUIDRejectsMalformedText(t *testing.T) {
	cases := []struct{ name, in string }{
		{"an empty string is rejected", ""},
		{"a UUID without dashes is rejected", "f81d4fae7dec41d0a76500a0c91e6bf6"},
		{"a misplaced dash is rejected", "f81d4fa-e7dec-41d0-a765-00a0c91e6bf6"},
		{"a non-hex digit is rejected", "f81d4fae-7dec-41d0-a765-00a0c91e6bfg"},
		{"braces are rejected", "{f81d4fae-7dec-41d0-a765-00a0c91e6bf}"},
		{"a trailing character is rejected", "f81d4fae-7dec-41d0-a765-00a0c91e6bf6 "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if u, err := ParseUUID(tc.in); err == nil {
				t.Fatalf("ParseUUID(%q) = %x, want an error", tc.in, u)
			}
		})
	}
	if u, err := ParseUUID("F81D4FAE-7DEC-41D0-A765-00A0C91E6BF6"); err != nil || u != validSuperblock().UUID {
		t.Fatalf("ParseUUID of upper case = %x, %v", u, err)
	}
}
