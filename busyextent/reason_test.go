package busyextent

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestReasonNames(t *testing.T) {
	tests := []struct {
		r    Reason
		name string
	}{
		{ReasonTruncate, "truncate"},
		{ReasonPunch, "punch"},
		{ReasonZero, "zero"},
		{ReasonRemove, "remove"},
		{ReasonOverwrite, "overwrite"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" round-trips through its name", func(t *testing.T) {
			if got := tt.r.String(); got != tt.name {
				t.Fatalf("String() = %q, want %q", got, tt.name)
			}
			got, err := ParseReason(tt.name)
			if err != nil || got != tt.r {
				t.Fatalf("ParseReason(%q) = %v, %v; want %v", tt.name, got, err, tt.r)
			}
			b, err := json.Marshal(tt.r)
			if err != nil || string(b) != `"`+tt.name+`"` {
				t.Fatalf("json.Marshal = %s, %v", b, err)
			}
			var back Reason
			if err := json.Unmarshal(b, &back); err != nil || back != tt.r {
				t.Fatalf("json.Unmarshal = %v, %v", back, err)
			}
		})
	}
}

func TestReasonUnknown(t *testing.T) {
	t.Run("unknown values print their number", func(t *testing.T) {
		for r, want := range map[Reason]string{0: "reason(0)", 6: "reason(6)", 255: "reason(255)"} {
			if got := r.String(); got != want {
				t.Errorf("Reason(%d).String() = %q, want %q", uint8(r), got, want)
			}
			if r.Valid() {
				t.Errorf("Reason(%d).Valid() = true", uint8(r))
			}
		}
	})
	t.Run("unknown names do not parse", func(t *testing.T) {
		for _, s := range []string{"", "Truncate", "reason(6)", "punch ", "delete"} {
			if r, err := ParseReason(s); !errors.Is(err, ErrInvalid) || r != 0 {
				t.Errorf("ParseReason(%q) = %v, %v; want 0 and ErrInvalid", s, r, err)
			}
		}
	})
	t.Run("a failed unmarshal leaves the value unchanged", func(t *testing.T) {
		r := ReasonZero
		if err := r.UnmarshalText([]byte("bogus")); !errors.Is(err, ErrInvalid) {
			t.Fatalf("UnmarshalText = %v, want ErrInvalid", err)
		}
		if r != ReasonZero {
			t.Fatalf("reason changed to %v", r)
		}
	})
}
