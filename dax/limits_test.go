package dax

// The documented limits - pins per block, label lengths, keys, file sizes,
// break policies, region sizes - each either work or are refused up front
// with a clear error and no state change.

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/daxstore/daxstore/journal"
)

// limitCase is one input at or past a limit. run applies it to a store that
// holds key "k" of two written blocks; want is nil when the input must work
// and otherwise the sentinel its refusal wraps.
type limitCase struct {
	name string
	run  func(s *Store, f *File) error
	want error
	// grows marks inputs that work and leave the store in a state a full
	// snapshot cannot read back cheaply (a 64 TiB sparse file).
	grows bool
}

func TestLimitsWorkOrAreRefusedUpFront(t *testing.T) {
	pin := func(off, n int64, label string) func(*Store, *File) error {
		return func(_ *Store, f *File) error {
			p, err := f.Pin(off, n, PinOptions{Label: label})
			if err == nil {
				return p.Unpin()
			}
			return err
		}
	}
	put := func(key string) func(*Store, *File) error {
		return func(s *Store, _ *File) error { return s.Put(key, []byte("v")) }
	}
	key := func(n int) string { return strings.Repeat("k", n) }
	cases := []limitCase{
		{name: "100,000 pins on one block", run: func(_ *Store, f *File) error {
			pins := make([]Pin, 0, 100_000)
			defer func() {
				for _, p := range pins {
					p.Unpin()
				}
			}()
			for range 100_000 {
				p, err := f.Pin(0, testBS, PinOptions{})
				if err != nil {
					return err
				}
				pins = append(pins, p)
			}
			return f.Truncate(0) // the break journals one record of 100,000 pins
		}},
		{name: "a pin label of MaxLabelLen bytes", run: pin(0, testBS, key(MaxLabelLen))},
		{name: "a pin label of MaxLabelLen+1 bytes", run: pin(0, testBS, key(MaxLabelLen+1)), want: ErrInvalidLabel},
		{name: "a pin label that is not UTF-8", run: pin(0, testBS, "\xc3\x28"), want: ErrInvalidLabel},
		{name: "a key of MaxKeyLen bytes", run: put(key(MaxKeyLen))},
		{name: "a key of MaxKeyLen+1 bytes", run: put(key(MaxKeyLen + 1)), want: ErrInvalidKey},
		{name: "an empty key", run: put(""), want: ErrInvalidKey},
		{name: "a key holding a NUL byte", run: put("a\x00b"), want: ErrInvalidKey},
		{name: "a key that is not UTF-8", run: put("a\xffb"), want: ErrInvalidKey},
		{name: "a rename to a key of MaxKeyLen+1 bytes", run: func(s *Store, _ *File) error { return s.Rename("k", key(MaxKeyLen+1)) }, want: ErrInvalidKey},
		{name: "a truncate to MaxFileSize", run: func(_ *Store, f *File) error { return f.Truncate(MaxFileSize) }, grows: true},
		{name: "a truncate to MaxFileSize+1", run: func(_ *Store, f *File) error { return f.Truncate(MaxFileSize + 1) }, want: ErrInvalidRange},
		{name: "a truncate to a negative size", run: func(_ *Store, f *File) error { return f.Truncate(-1) }, want: ErrInvalidRange},
		{name: "a write of the last byte a file may hold", run: func(_ *Store, f *File) error {
			_, err := f.WriteAt([]byte{1}, MaxFileSize-1)
			return err
		}, grows: true},
		{name: "a write past MaxFileSize", run: func(_ *Store, f *File) error {
			_, err := f.WriteAt([]byte{1, 2}, MaxFileSize-1)
			return err
		}, want: ErrInvalidRange},
		{name: "a write whose end overflows int64", run: func(_ *Store, f *File) error {
			_, err := f.WriteAt([]byte{1, 2}, math.MaxInt64)
			return err
		}, want: ErrInvalidRange},
		{name: "a read at the largest offset", run: func(_ *Store, f *File) error {
			_, err := f.ReadAt(make([]byte, 2), math.MaxInt64)
			return err
		}, want: ErrInvalidRange},
		{name: "a punch whose end overflows int64", run: func(_ *Store, f *File) error { return f.PunchHole(1, math.MaxInt64) }, want: ErrInvalidRange},
		{name: "a zero-range whose end overflows int64", run: func(_ *Store, f *File) error { return f.ZeroRange(1, math.MaxInt64) }, want: ErrInvalidRange},
		{name: "an allocate whose end overflows int64", run: func(_ *Store, f *File) error { return f.Allocate(1, math.MaxInt64) }, want: ErrInvalidRange},
		{name: "a pin whose end overflows int64", run: pin(math.MaxInt64-1, 10, ""), want: ErrInvalidRange},
		{name: "a pin past the end of the file", run: pin(testBS, 2*testBS, ""), want: ErrInvalidRange},
		{name: "a break policy outside the defined ones", run: func(_ *Store, f *File) error {
			return f.TruncateWith(context.Background(), 0, BreakOptions{Policy: PolicyFail + 1})
		}, want: ErrInvalidRange},
	}
	for _, c := range cases {
		verb := "works"
		if c.want != nil {
			verb = "is refused with " + c.want.Error() + " and changes nothing"
		}
		t.Run(c.name+" "+verb, func(t *testing.T) {
			s := newStore(t, 64*testBS, nil)
			mustPut(t, s, "k", pattern(1, 2*testBS))
			f := mustOpen(t, s, "k")
			defer f.Close()
			var before state
			if c.want != nil {
				before = snapshot(t, s)
			}
			err := c.run(s, f)
			if c.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if s.hasFailed.Load() {
					t.Fatalf("the store failed: %v", s.failed)
				}
				mustCheck(t, s)
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			wantErr(t, err, c.want)
			if prefixCount(err) != 1 {
				t.Errorf("error %q does not carry the daxstore: prefix once", err)
			}
			sameState(t, s, before)
		})
	}
}

func TestBreakPolicyOutsideTheDefinedOnesIsRefused(t *testing.T) {
	t.Run("Open refuses it and creates nothing", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "store")
		s, err := Open(dir, &Options{BreakPolicy: PolicyFail + 1, NoAdminSocket: true})
		if err == nil {
			s.Close()
			t.Fatal("Open accepted an undefined break policy")
		}
		wantErr(t, err, ErrInvalidRange)
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("Open left %s behind (%v)", dir, err)
		}
	})
	for _, op := range fullBreaks {
		t.Run(op.name+" refuses it over a pinned key and changes nothing", func(t *testing.T) {
			s := newStore(t, 64*testBS, nil)
			mustPut(t, s, "k", pattern(1, 2*testBS))
			f := mustOpen(t, s, "k")
			defer f.Close()
			p := mustPin(t, f, 0, testBS, PinOptions{Label: "holder"})
			defer p.Unpin()
			before := snapshot(t, s)
			bo := BreakOptions{Policy: BreakPolicy(200)}
			var err error
			switch op.name {
			case "Truncate":
				err = f.TruncateWith(t0(), 0, bo)
			case "PunchHole":
				err = f.PunchHoleWith(t0(), 0, 2*testBS, bo)
			case "ZeroRange":
				err = f.ZeroRangeWith(t0(), 0, 2*testBS, bo)
			case "Remove":
				err = s.RemoveWith(t0(), "k", bo)
			case "Put":
				err = s.PutWith(t0(), "k", pattern(2, testBS), bo)
			}
			wantErr(t, err, ErrInvalidRange)
			if !strings.Contains(err.Error(), "break policy 200") {
				t.Errorf("error %q does not name the policy", err)
			}
			sameState(t, s, before)
		})
	}
}

func TestRegionBeyondTheRefTableIsRefused(t *testing.T) {
	const blocks = 1<<38 + 1 // one more than the reference table covers
	t.Run("create refuses it before making a region", func(t *testing.T) {
		dir := t.TempDir()
		s, err := Open(dir, &Options{Size: blocks * 512, BlockSize: 512, NoAdminSocket: true})
		if err == nil {
			s.Close()
			t.Fatal("Open created a region of 2^38+1 blocks")
		}
		wantErr(t, err, ErrInvalidRange)
		if !strings.Contains(err.Error(), "exceeds the limit") {
			t.Errorf("error %q does not name the limit", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "region")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a region file was made (%v)", err)
		}
	})
	t.Run("open refuses a journal that describes one", func(t *testing.T) {
		dir := t.TempDir()
		s, err := Open(dir, &Options{Size: 64 * testBS, NoAdminSocket: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		j, err := journal.Open(filepath.Join(dir, "journal"), journal.Options{})
		if err != nil {
			t.Fatal(err)
		}
		st, err := j.Load()
		if err != nil {
			t.Fatal(err)
		}
		m := st.Meta
		m.BlockCount = blocks
		b := j.NewBatch()
		b.SetMeta(m)
		if err := b.Commit(true); err != nil {
			t.Fatal(err)
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		s, err = Open(dir, &Options{NoAdminSocket: true})
		if err == nil {
			s.Close()
			t.Fatal("Open accepted a region of 2^38+1 blocks")
		}
		wantErr(t, err, ErrInvalidRange)
		if !strings.Contains(err.Error(), "exceeds the limit") {
			t.Errorf("error %q does not name the limit", err)
		}
	})
}
