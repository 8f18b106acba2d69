package dax

// Faults on the region mapping: a region file that another process
// truncates or deletes under a running store must never kill the process.

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// shrinkRegion cuts the store's region file to 1/64 of its size, as another
// process could, so every access to the mapping past that point faults.
func shrinkRegion(t *testing.T, s *Store) {
	t.Helper()
	path := filepath.Join(s.Dir(), "region")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, fi.Size()/64); err != nil {
		t.Fatal(err)
	}
}

func TestRegionShrunkUnderTheStore(t *testing.T) {
	const size = 4 << 20 // the region keeps its first 64 KiB: 16 blocks
	val := bytes.Repeat([]byte("value..."), 32<<10)
	open := func(t *testing.T) (*Store, *File) {
		s := newStore(t, size, nil)
		if err := s.Put("k", val); err != nil {
			t.Fatal(err)
		}
		f, err := s.Open("k")
		if err != nil {
			t.Fatal(err)
		}
		shrinkRegion(t, s)
		return s, f
	}
	buf := make([]byte, 4096)
	tests := []struct {
		name string
		op   func(s *Store, f *File) error
		want error
	}{
		{"Get returns an error", func(s *Store, _ *File) error { _, err := s.Get("k"); return err }, ErrCorrupt},
		{"ReadAt returns an error", func(_ *Store, f *File) error { _, err := f.ReadAt(buf, 200<<10); return err }, ErrCorrupt},
		{"WriteAt over written blocks returns an error", func(_ *Store, f *File) error { _, err := f.WriteAt(buf, 200<<10); return err }, ErrCorrupt},
		{"WriteAt into new blocks returns an error", func(_ *Store, f *File) error { _, err := f.WriteAt(buf, 2<<20); return err }, ErrCorrupt},
		{"Put returns an error", func(s *Store, _ *File) error { return s.Put("new", val) }, ErrCorrupt},
		{"PunchHole of part of a block returns an error", func(_ *Store, f *File) error {
			return f.PunchHole(200<<10+100, 1000)
		}, ErrCorrupt},
		{"ZeroRange of part of a pinned block returns an error", func(_ *Store, f *File) error {
			p, err := f.Pin(200<<10, 4096, PinOptions{})
			if err != nil {
				return err
			}
			defer p.Unpin()
			return f.ZeroRange(200<<10+100, 1000)
		}, ErrCorrupt},
		{"Pin of a hole returns an error", func(_ *Store, f *File) error {
			if err := f.Truncate(2 << 20); err != nil {
				return err
			}
			p, err := f.Pin(1<<20, 4096, PinOptions{})
			if err == nil {
				_ = p.Unpin()
			}
			return err
		}, ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, f := open(t)
			err := tt.op(s, f)
			if !errors.Is(err, tt.want) {
				t.Fatalf("after the region shrank: %v, want an error wrapping %v", err, tt.want)
			}
			// The fault failed the store: it refuses changes from now on,
			// with the fault as the reason.
			if err := s.Put("other", []byte("x")); !errors.Is(err, ErrFailed) {
				t.Fatalf("Put after a fault: %v, want ErrFailed", err)
			}
			if _, err := f.ReadAt(buf, 200<<10); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("ReadAt after a fault: %v, want ErrCorrupt", err)
			}
			if err := s.Close(); err != nil {
				t.Fatalf("Close after a fault: %v", err)
			}
			// The region is short now: reopening says so.
			if s2, err := Open(s.Dir(), &Options{NoAdminSocket: true}); !errors.Is(err, ErrCorrupt) {
				if err == nil {
					_ = s2.Close()
				}
				t.Fatalf("reopen of a shrunk region: %v, want ErrCorrupt", err)
			}
		})
	}
}

// Unlinking the region file does not touch the mapping: the inode lives on
// until the store closes it, so the store goes on working; only a reopen
// finds the file gone.
func TestRegionDeletedUnderTheStore(t *testing.T) {
	s := newStore(t, 1<<20, nil)
	if err := s.Put("k", []byte("before")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(s.Dir(), "region")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put("k2", bytes.Repeat([]byte("after"), 1000)); err != nil {
		t.Fatalf("Put after the region file was deleted: %v", err)
	}
	for k, want := range map[string][]byte{"k": []byte("before"), "k2": bytes.Repeat([]byte("after"), 1000)} {
		if got, err := s.Get(k); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("Get %q after the region file was deleted: %q, %v", k, got, err)
		}
	}
	mustCheck(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s2, err := Open(s.Dir(), &Options{NoAdminSocket: true}); err == nil {
		_ = s2.Close()
		t.Fatal("reopen after the region file was deleted succeeded")
	}
}
