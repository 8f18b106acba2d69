// This file tests how an extent counts and labels the pins holding it:
// bounded labels for any number of pins.

package busyextent

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

func TestAddPinCountsEveryPinAndKeepsBoundedDistinctLabels(t *testing.T) {
	t.Run("100,000 unlabelled pins count 100,000 and keep one empty label", func(t *testing.T) {
		x := busy(1, 1, "k", 0)
		for range 100_000 {
			x.AddPin("")
		}
		if x.Pins != 100_000 || !slices.Equal(x.Labels, []string{""}) {
			t.Fatalf("pins %d labels %q", x.Pins, x.Labels)
		}
	})
	t.Run("repeated labels are kept once, in the order first seen", func(t *testing.T) {
		x := busy(1, 1, "k", 0)
		for _, l := range []string{"dma", "video", "dma", "", "video"} {
			x.AddPin(l)
		}
		if x.Pins != 5 || !slices.Equal(x.Labels, []string{"dma", "video", ""}) {
			t.Fatalf("pins %d labels %q", x.Pins, x.Labels)
		}
	})
	t.Run("distinct labels beyond MaxLabels are counted, not kept", func(t *testing.T) {
		x := busy(1, 1, "k", 0)
		for i := range MaxLabels + 100 {
			x.AddPin(fmt.Sprint("pin", i))
		}
		if x.Pins != MaxLabels+100 || len(x.Labels) != MaxLabels || x.Labels[MaxLabels-1] != fmt.Sprint("pin", MaxLabels-1) {
			t.Fatalf("pins %d, %d labels, last %q", x.Pins, len(x.Labels), x.Labels[len(x.Labels)-1])
		}
		s := NewSet()
		if _, err := s.Add(x); err != nil {
			t.Fatalf("Add of an extent labelled by AddPin: %v", err)
		}
		if got := s.All()[0]; got.Pins != x.Pins || !slices.Equal(got.Labels, x.Labels) {
			t.Fatalf("the set kept pins %d labels %q", got.Pins, got.Labels)
		}
	})
}

func TestAddRefusesUnboundedLabels(t *testing.T) {
	cases := []struct {
		name string
		x    Extent
	}{
		{"more than MaxLabels labels", func() Extent {
			x := busy(1, 1, "k", 0)
			for i := range MaxLabels + 1 {
				x.Labels = append(x.Labels, fmt.Sprint(i))
			}
			x.Pins = MaxLabels + 1
			return x
		}()},
		{"more labels than pins", func() Extent { x := busy(1, 1, "k", 0, "a", "b"); x.Pins = 1; return x }()},
	}
	for _, c := range cases {
		t.Run("an extent with "+c.name+" is refused and changes nothing", func(t *testing.T) {
			s := NewSet()
			if _, err := s.Add(c.x); !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			if s.Len() != 0 || s.Blocks() != 0 {
				t.Fatalf("the set changed: %d extents", s.Len())
			}
		})
	}
}
